"""GET /v1/policy/export and POST /v1/policy/import: archives, the gate, errors."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest
from fastapi.testclient import TestClient

from tests.conftest import bearer, make_key, user_token

TAR = "application/gzip"


def untar(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {
            m.name: archive.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in archive
        }


def tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def exported(client: TestClient) -> dict[str, str]:
    response = client.get("/v1/policy/export")
    assert response.status_code == 200, response.text
    return untar(response.content)


def test_export_is_an_archive_of_the_canonical_files(client: TestClient) -> None:
    first = client.get("/v1/policy/export")
    second = client.get("/v1/policy/export")
    zipped = client.get("/v1/policy/export?format=zip")

    assert first.status_code == 200
    assert first.headers["content-type"] == TAR
    assert first.headers["orgguard-revision"] == "2"  # the demo, then the key
    assert first.content == second.content  # byte for byte
    files = untar(first.content)
    assert len(files) == 10
    assert files["companies/acme.csv"].startswith("# company: acme\n")
    assert zipped.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert {i.filename: archive.read(i).decode() for i in archive.infolist()} == (
            files
        )


def test_import_dry_run_then_import(client: TestClient) -> None:
    files = exported(client)
    files["companies/stark.csv"] += "g, zed@stark.example, group:contact, stark\n"
    body = tar(files)

    dry = client.post("/v1/policy/import?dry_run=true", content=body)
    unchanged = exported(client)
    applied = client.post("/v1/policy/import", content=body)

    assert dry.status_code == 200, dry.text
    assert dry.json() == {
        "dry_run": True,
        "applied": False,
        "revision": 2,
        "companies": ["stark"],
        "added": ["companies/stark.csv: + g, zed@stark.example, group:contact, stark"],
        "removed": [],
        "access": [
            {
                "company": "stark",
                "user": "zed@stark.example",
                "gains": ["company:read"],
                "loses": [],
            }
        ],
    }
    assert "zed@" not in unchanged["companies/stark.csv"]
    assert applied.status_code == 200, applied.text
    assert applied.json()["applied"] is True
    assert applied.json()["revision"] == 3
    assert "zed@stark.example" in exported(client)["companies/stark.csv"]


def test_import_with_prune_over_the_api(client: TestClient) -> None:
    files = exported(client)
    del files["companies/umbrella.csv"]

    merged = client.post("/v1/policy/import", content=tar(files))
    pruned = client.post("/v1/policy/import?prune=true", content=tar(files))

    assert merged.json()["applied"] is False
    assert pruned.json()["applied"] is True
    assert client.get("/v1/companies/umbrella").status_code == 404


def test_import_of_bad_files_lists_every_problem_and_changes_nothing(
    client: TestClient,
) -> None:
    files = exported(client)
    files["companies/stark.csv"] += "g, zoe, group:nope, stark\ng, x\n"
    files["catalogue.csv"] += "p2, orders\n"

    response = client.post("/v1/policy/import", content=tar(files))

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_policy_files"
    problems = [f["message"] for f in body["fields"]]
    assert {f["field"] for f in body["fields"]} == {"files"}
    assert problems[0].startswith("catalogue.csv:")
    assert any(p.startswith("companies/stark.csv:") and "'nope'" in p for p in problems)
    assert any("a g rule has 3 fields" in p for p in problems)
    assert len(problems) == 3
    assert client.get("/v1/policy/export").headers["orgguard-revision"] == "2"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/policy/import", b"not an archive", "body"),
        ("/v1/policy/import", b"\x1f\x8bbroken", "body"),
        ("/v1/policy/import", b"PK\x03\x04broken", "body"),
        ("/v1/policy/import?dry_run=maybe", b"", "query.dry_run"),
        ("/v1/policy/import?prune=perhaps", b"", "query.prune"),
    ],
)
def test_import_bad_input_is_422_naming_the_field(
    client: TestClient, path: str, body: bytes, field: str
) -> None:
    response = client.post(path, content=body)

    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == field


def test_export_bad_format_is_422(client: TestClient) -> None:
    response = client.get("/v1/policy/export?format=rar")

    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "query.format"


def test_import_skips_files_that_are_not_policy_files(client: TestClient) -> None:
    files = exported(client)
    files["tests/demo.yaml"] = "cases: []\n"
    files["README.txt"] = "not policy\n"

    response = client.post("/v1/policy/import?dry_run=true", content=tar(files))

    assert response.status_code == 200, response.text
    assert response.json()["added"] == []


@pytest.mark.parametrize(
    "name",
    ["../escape.csv", "companies/../../escape.csv", "companies\\acme.csv",
     "Companies/acme.csv", "companies/sub/acme.csv"],
)  # fmt: skip
def test_import_refuses_csv_files_outside_the_policy_layout(
    client: TestClient, name: str
) -> None:
    """A .csv name that is not a policy file is refused, never skipped: a
    company file under another spelling would otherwise be dropped (and,
    with prune, its company deleted)."""
    files = exported(client)
    files[name] = "p2, x, y, no\n"

    response = client.post("/v1/policy/import?dry_run=true", content=tar(files))

    assert response.status_code == 422, response.text
    assert "not a policy file name" in response.json()["message"]


def test_policy_endpoints_pass_the_gate(anonymous: TestClient) -> None:
    support = bearer(make_key(anonymous, "support", "seller-support"))
    checker = bearer(make_key(anonymous, "storefront", "checker"))
    company_admin = bearer(user_token("alice@acme.example"))
    archive = anonymous.get("/v1/policy/export", headers=support).content

    assert anonymous.get("/v1/policy/export").status_code == 401
    assert anonymous.get("/v1/policy/export", headers=checker).status_code == 403
    assert anonymous.get("/v1/policy/export", headers=company_admin).status_code == 403
    dry = anonymous.post(
        "/v1/policy/import?dry_run=true", content=archive, headers=support
    )
    assert dry.status_code == 200
    refused = anonymous.post("/v1/policy/import", content=archive, headers=support)
    assert refused.status_code == 403
    assert refused.json()["fields"] == [
        {"field": "permission", "message": "lacks policy:write"}
    ]


def test_import_takes_a_zip_and_prunes_in_a_dry_run(client: TestClient) -> None:
    files = exported(client)
    del files["companies/stark.csv"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)

    response = client.post(
        "/v1/policy/import?dry_run=true&prune=true", content=buffer.getvalue()
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["applied"] is False
    assert body["removed"][0] == "companies/stark.csv: - # company: stark"
    assert {a["company"] for a in body["access"]} == {"stark"}
    assert all(a["gains"] == [] for a in body["access"])
    assert client.get("/v1/companies/stark").status_code == 200


def test_import_of_an_archive_without_the_shared_files_is_refused(
    client: TestClient,
) -> None:
    files = exported(client)
    only_one = {"companies/stark.csv": files["companies/stark.csv"]}

    response = client.post("/v1/policy/import", content=tar(only_one))

    assert response.status_code == 422
    problems = [f["message"] for f in response.json()["fields"]]
    assert problems[:3] == [
        "catalogue.csv: missing: the permission catalogue",
        "templates.csv: missing: the predefined group templates",
        "platform.csv: missing: the platform roles",
    ]
    # Without a catalogue, the company's own rules name unknown permissions.
    assert all("unknown permission" in p for p in problems[3:])


@pytest.mark.parametrize("body", [b"not an archive", b"PK\x03\x04" + b"\x00" * 64])
def test_import_refuses_a_caller_without_the_right_before_reading_the_body(
    anonymous: TestClient, body: bytes
) -> None:
    checker = bearer(make_key(anonymous, "storefront", "checker"))
    support = bearer(make_key(anonymous, "support", "seller-support"))

    as_checker = anonymous.post("/v1/policy/import?dry_run=true", content=body,
                                headers=checker)  # fmt: skip
    as_support = anonymous.post("/v1/policy/import", content=body, headers=support)

    assert as_checker.status_code == 403
    assert as_support.status_code == 403  # dry runs only


def test_a_zip_it_cannot_decompress_is_422_not_500(client: TestClient) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("catalogue.csv", "p2, orders, read, no\n")
    data = bytearray(buffer.getvalue())
    # Say compression method 99 in both the local and the central header.
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.find(header)
        offset = at + (8 if header == b"PK\x03\x04" else 10)
        data[offset : offset + 2] = (99).to_bytes(2, "little")

    response = client.post("/v1/policy/import?dry_run=true", content=bytes(data))

    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "body"
