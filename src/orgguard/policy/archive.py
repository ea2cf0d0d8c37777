"""Policy files in one archive, tar.gz or zip, as the API sends and takes them.

Packing is deterministic (names sorted, no times, owners or modes of the
machine), so the same policy gives the same bytes. Unpacking writes only the
policy's own files (``catalogue.csv``, ``templates.csv``, ``platform.csv``,
``companies/<id>.csv``) and skips anything else in the archive (tests,
``model.conf``, a README); a name can never reach outside the directory,
because only those names are ever written.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Final, Literal

from orgguard.errors import InvalidInput

ArchiveFormat = Literal["tar.gz", "zip"]
MEDIA_TYPES: Final[dict[str, str]] = {
    "tar.gz": "application/gzip",
    "zip": "application/zip",
}
# The 10,000-company bench policy unpacks to about 60 MiB.
MAX_UNPACKED_BYTES: Final = 128 * 1024 * 1024
_POLICY_FILE = re.compile(
    r"(?:\./)?(catalogue|templates|platform|companies/[^/]+)\.csv"
)
_ZIP_TIME: Final = (1980, 1, 1, 0, 0, 0)  # the earliest time zip can say


def pack(files: Mapping[str, str], form: ArchiveFormat) -> bytes:
    buffer = io.BytesIO()
    if form == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(files):
                entry = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, files[name].encode("utf-8"))
        return buffer.getvalue()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name in sorted(files):
            data = files[name].encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack(data: bytes, into: Path) -> None:
    """Write the archive's policy files below ``into``; InvalidInput (field
    ``body``) when it is not a readable tar.gz or zip or unpacks too large."""
    written: set[str] = set()
    total = 0
    try:
        for name, content in _entries(data):
            match = _POLICY_FILE.fullmatch(name)
            if match is None:
                continue
            relative = match.group(1) + ".csv"
            if relative in written:
                raise InvalidInput(
                    f"body: the archive holds {relative} twice", field="body"
                )
            total += len(content)
            if total > MAX_UNPACKED_BYTES:
                raise InvalidInput(
                    f"body: the archive unpacks to more than {MAX_UNPACKED_BYTES} "
                    "bytes",
                    field="body",
                )
            written.add(relative)
            target = into / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        # zipfile: an unsupported compression method, an encrypted entry.
        NotImplementedError,
        RuntimeError,
    ) as error:
        raise InvalidInput(
            f"body: not a readable archive ({error})", field="body"
        ) from error
    (into / "companies").mkdir(exist_ok=True)


def _refuse_odd_names(name: str) -> None:
    """A name that would be a policy file but for its spelling (a Windows
    backslash, say) is refused, never skipped: skipping it would drop a
    company (and, with prune, delete it)."""
    if name.lower().endswith(".csv") and not _POLICY_FILE.fullmatch(name):
        raise InvalidInput(
            f"body: the archive holds {name!r}, which is not a policy file "
            "name (catalogue.csv, templates.csv, platform.csv, "
            "companies/<id>.csv)",
            field="body",
        )


def _entries(data: bytes) -> Iterator[tuple[str, bytes]]:
    if data[:2] == b"\x1f\x8b":
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                if member.isfile():
                    _refuse_odd_names(member.name)
                if member.isfile() and _POLICY_FILE.fullmatch(member.name):
                    yield member.name, _read_limited(archive.extractfile(member))
        return
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    _refuse_odd_names(info.filename)
                if not info.is_dir() and _POLICY_FILE.fullmatch(info.filename):
                    with archive.open(info) as file:
                        yield info.filename, _read_limited(file)
        return
    raise InvalidInput(
        "body: send the policy files as a tar.gz or zip archive "
        "(as GET /v1/policy/export gives them)",
        field="body",
    )


def _read_limited(file: IO[bytes] | None) -> bytes:
    if file is None:
        return b""
    content = file.read(MAX_UNPACKED_BYTES + 1)
    if len(content) > MAX_UNPACKED_BYTES:
        raise InvalidInput(
            f"body: a file unpacks to more than {MAX_UNPACKED_BYTES} bytes",
            field="body",
        )
    return content
