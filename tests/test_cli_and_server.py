"""The CLI and a real server process: check exit codes, load, kill -9 and restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import JWT_SECRET, POLICIES, REPO

ORGGUARD = [sys.executable, "-m", "orgguard"]


def env_for(database: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ORGGUARD_DATABASE_URL": f"sqlite:///{database}",
        "ORGGUARD_POLICY_DIR": str(POLICIES),
        "ORGGUARD_JWT_SECRET": JWT_SECRET,
        "ORGGUARD_REFRESH_SECONDS": "0.2",
    }


def cli(
    database: Path, *args: str, unset: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in env_for(database).items() if k != unset}
    return subprocess.run(
        [*ORGGUARD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    database = tmp_path_factory.mktemp("cli") / "db.sqlite"
    assert cli(database, "load", str(POLICIES)).returncode == 0
    return database


def test_cli_check_without_database_creates_nothing(tmp_path: Path) -> None:
    database = tmp_path / "missing.sqlite"

    result = cli(
        database, "check", "alice@acme.example", "orders", "read", "--company", "acme"
    )

    assert result.returncode == 4
    assert "no database at" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "code", "output"),
    [
        (["alice@acme.example", "orders", "read", "--company", "acme"], 0, "allowed"),
        (["carol@acme.example", "orders", "read", "--company", "acme"], 1, "denied"),
        (
            [
                "carol@acme.example",
                "orders",
                "read",
                "--company",
                "acme",
                "--owner",
                "carol@acme.example",
            ],
            0,
            "own resource",
        ),
        (
            ["alice@acme.example", "orders", "read", "--company", "nowhere"],
            1,
            "unknown company",
        ),
        (["alice@acme.example", "orders", "read", "--company", "*"], 2, "company"),
        (["a,b", "orders", "read", "--company", "acme"], 2, "user"),
    ],
)
def test_cli_check_exit_codes(
    loaded: Path, args: list[str], code: int, output: str
) -> None:
    result = cli(loaded, "check", *args)

    assert result.returncode == code, result.stderr
    assert output in result.stdout + result.stderr


def test_cli_load_refuses_a_second_load_and_bad_files(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite"
    bad = tmp_path / "bad"
    (bad / "companies").mkdir(parents=True)
    (bad / "catalogue.csv").write_text("p2, orders, read, maybe\n")
    (bad / "templates.csv").write_text("p, group:boss, *, orders, read, company\n")
    (bad / "companies" / "x.csv").write_text("# company: x\n# name: X\n")

    first = cli(database, "load", str(POLICIES))
    second = cli(database, "load", str(POLICIES))
    broken = cli(tmp_path / "other.sqlite", "load", str(bad))

    assert first.returncode == 0 and "7 companies" in first.stdout
    assert second.returncode == 5 and "already holds" in second.stderr
    assert broken.returncode == 2
    assert "catalogue.csv:1: ownable must be 'yes' or 'no'" in broken.stderr
    assert "templates.csv:1: 'boss' is not a predefined group" in broken.stderr


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
    database: Path,
    port: int,
    *,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
    **settings: str,
) -> subprocess.Popen[bytes]:
    """``orgguard serve --demo-key`` in the database's folder, which then holds
    the demo seller-admin key (see ``demo_key``); ``settings`` are more
    ``ORGGUARD_*`` variables."""
    process = subprocess.Popen(
        [*ORGGUARD, "serve", "--port", str(port), "--demo-key"],
        env={**env_for(database), **settings},
        cwd=database.parent,
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


def demo_key(database: Path) -> str:
    return (database.parent / "demo-admin.key").read_text().strip()


@pytest.mark.slow
def test_server_keeps_acknowledged_writes_across_kill_9(tmp_path: Path) -> None:
    database, port = tmp_path / "db.sqlite", free_port()
    check = {
        "user": "kim@x.example",
        "company": "newco",
        "resource": "orders",
        "action": "checkout",
    }
    server = start_server(database, port)
    key = demo_key(database)
    try:
        created = request(
            port, "POST", "/v1/companies", {"id": "newco", "name": "N"}, key
        )
        member = request(
            port,
            "PUT",
            "/v1/companies/newco/members/kim@x.example",
            {"groups": ["buyer"]},
            key,
        )
        before = request(port, "POST", "/v1/check", check, key)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()

    server = start_server(database, port)
    try:
        stale = request(port, "POST", "/v1/check", check, key)
        after = request(port, "POST", "/v1/check", check, demo_key(database))
        docs = request(port, "GET", "/openapi.json")
    finally:
        server.terminate()
        server.wait()

    assert created[0] == 201 and member[0] == 200
    assert before == (
        200,
        {
            "allowed": True,
            "reason": "granted by group 'buyer' in 'newco'",
            "revision": member[1]["revision"],
        },
    )
    # The restart replaced the demo key (two writes), so the revision moved on.
    assert after[0] == 200
    assert after[1]["allowed"] and after[1]["reason"] == before[1]["reason"]
    assert after[1]["revision"] == member[1]["revision"] + 2
    assert stale[0] == 401  # the restart replaced the demo key
    assert "/v1/check" in docs[1]["paths"]


@pytest.mark.slow
def test_cli_keys_and_roles_reach_a_running_server_at_once(tmp_path: Path) -> None:
    database, port = tmp_path / "db.sqlite", free_port()
    check = {"user": "alice@acme.example", "company": "acme", "resource": "orders",
             "action": "read"}  # fmt: skip
    server = start_server(database, port)
    try:
        created = cli(database, "keys", "create", "--name", "pos", "--role", "checker")
        key = created.stdout.splitlines()[-1]
        with_new_key = request(port, "POST", "/v1/check", check, key)
        listed = cli(database, "keys", "list")

        revoked = cli(database, "keys", "revoke", "pos")
        after_revoke = request(port, "POST", "/v1/check", check, key)

        token = cli(database, "token", "rita@seller.example").stdout.strip()
        before_role = request(port, "GET", "/v1/companies", None, token)
        granted = cli(
            database, "roles", "grant", "rita@seller.example", "seller-support"
        )
        deadline, after_role = time.monotonic() + 10, before_role
        while after_role[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            after_role = request(port, "GET", "/v1/companies", None, token)
        audit = cli(database, "audit", "--limit", "3")
    finally:
        server.terminate()
        server.wait()

    assert created.returncode == 0 and key.startswith("ogk_")
    assert with_new_key[0] == 200
    assert "pos\tchecker" in listed.stdout and key not in listed.stdout
    assert revoked.returncode == 0
    assert after_revoke[0] == 401
    assert before_role[0] == 403
    assert granted.returncode == 0 and after_role[0] == 200
    records = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [r["action"] for r in records] == ["roles.set", "key.revoke", "key.create"]
    assert records[0]["actor"].startswith("cli:")


def test_cli_refuses_bad_key_and_role_input(loaded: Path) -> None:
    bad_role = cli(loaded, "keys", "create", "--name", "x", "--role", "emperor")
    bad_name = cli(loaded, "keys", "create", "--name", "a b", "--role", "checker")
    missing = cli(loaded, "keys", "revoke", "nobody")
    no_secret = cli(loaded, "token", "alice@acme.example", unset="ORGGUARD_JWT_SECRET")

    assert bad_role.returncode == 2 and "no platform role 'emperor'" in bad_role.stderr
    assert bad_name.returncode == 2 and "name must be" in bad_name.stderr
    assert missing.returncode == 4
    assert no_secret.returncode == 2 and "ORGGUARD_JWT_SECRET" in no_secret.stderr


def test_cli_audit_refuses_an_out_of_range_revision(loaded: Path) -> None:
    result = cli(loaded, "audit", "--before", "99999999999999999999")
    assert result.returncode == 2
    assert "before must be" in result.stderr


def test_serve_on_a_busy_port_fails_before_touching_anything(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*ORGGUARD, "serve", "--port", str(port), "--demo-key"],
            env=env_for(database),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 6
    assert "stop the server already there" in result.stderr
    assert not database.exists() and not (tmp_path / "demo-admin.key").exists()


def test_a_short_jwt_secret_is_refused_naming_the_setting(loaded: Path) -> None:
    result = subprocess.run(
        [*ORGGUARD, "token", "alice@acme.example"],
        env={**env_for(loaded), "ORGGUARD_JWT_SECRET": "short"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ORGGUARD_JWT_SECRET" in result.stderr and "32 bytes" in result.stderr
