"""Real orgguard processes for tests: the CLI, and servers on real ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from tests import databases
from tests.conftest import JWT_SECRET, POLICIES, REPO

ORGGUARD = [sys.executable, "-m", "orgguard"]


class Place:
    """A test's database and the folder the CLI and the server run in (where
    ``serve --demo-key`` writes its key)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = databases.database_url(folder)


def env_for(place: Place) -> dict[str, str]:
    return {
        **os.environ,
        "ORGGUARD_DATABASE_URL": place.url,
        "ORGGUARD_POLICY_DIR": str(POLICIES),
        "ORGGUARD_JWT_SECRET": JWT_SECRET,
        "ORGGUARD_REFRESH_SECONDS": "0.2",
    }


def cli(place: Place, *args: str, unset: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in env_for(place).items() if k != unset}
    return subprocess.run(
        [*ORGGUARD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = None,
    request_id: str | None = None,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    if request_id is not None:
        headers["x-request-id"] = request_id
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def start_server(
    place: Place,
    port: int,
    *args: str,
    demo: bool = True,
    url: str | None = None,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
    **settings: str,
) -> subprocess.Popen[bytes]:
    """``orgguard serve`` in the place's folder; with ``demo`` it writes the
    demo seller-admin key there (see ``demo_key``). ``url`` overrides the
    database URL (a proxy in front of it, say); ``settings`` are more
    ``ORGGUARD_*`` variables, by their lower-case name; ``stderr`` takes the
    server's log lines."""
    env = env_for(place)
    if url is not None:
        env["ORGGUARD_DATABASE_URL"] = url
    env.update({f"ORGGUARD_{name.upper()}": value for name, value in settings.items()})
    command = [*ORGGUARD, "serve", "--port", str(port), *args]
    process = subprocess.Popen(
        [*command, "--demo-key"] if demo else command,
        env=env,
        cwd=place.folder,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/openapi.json")[0] == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not start")


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def demo_key(place: Place) -> str:
    return (place.folder / "demo-admin.key").read_text().strip()
