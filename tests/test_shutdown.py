"""SIGTERM to a real ``orgguard serve``: new connections are refused, the
request in flight is answered, the process exits 0."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Place, demo_key, free_port, start_server

CHECK = {"user": "alice@acme.example", "company": "acme", "resource": "orders",
         "action": "read"}  # fmt: skip


def begin_batch(port: int, key: str) -> tuple[socket.socket, bytes]:
    """A connection carrying the head and half the body of a 1,000-check
    batch, so the request stays in flight; the rest of the body."""
    body = json.dumps({"checks": [CHECK] * 1000}).encode()
    head = (
        "POST /v1/check/batch HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    half = len(body) // 2
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(head + body[:half])
    return client, body[half:]


def refuses_connections(port: int, seconds: float) -> bool:
    """Whether the port refuses a new connection within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def answer(client: socket.socket) -> tuple[int, Any]:
    response = http.client.HTTPResponse(client)
    response.begin()
    return response.status, json.loads(response.read())


def error_lines(stderr: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.read_text().splitlines()]
    return [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]


@pytest.mark.slow
def test_sigterm_answers_the_request_in_flight_then_exits_0(tmp_path: Path) -> None:
    database, port, stderr = Place(tmp_path), free_port(), tmp_path / "err"
    with stderr.open("wb") as sink:
        server = start_server(database, port, stderr=sink)
    try:
        client, rest = begin_batch(port, demo_key(database))
        with client:
            time.sleep(0.5)  # the server has read the head: the request has begun
            server.send_signal(signal.SIGTERM)
            refused = refuses_connections(port, 10)
            time.sleep(0.5)  # the server waits for the body, however slow
            waiting = server.poll() is None
            client.sendall(rest)
            status, body = answer(client)
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    assert refused and waiting
    assert status == 200
    assert [r["allowed"] for r in body["results"]] == [True] * 1000
    assert code == 0
    assert error_lines(stderr) == []  # the refresher and the rest stopped cleanly


@pytest.mark.slow
def test_sigterm_gives_a_stalled_request_the_shutdown_timeout_then_exits_0(
    tmp_path: Path,
) -> None:
    database, port, stderr = Place(tmp_path), free_port(), tmp_path / "err"
    with stderr.open("wb") as sink:
        server = start_server(database, port, stderr=sink, shutdown_seconds="1")
    try:
        client, _never_sent = begin_batch(port, demo_key(database))
        with client:
            time.sleep(0.5)
            signalled = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=30)
            took = time.monotonic() - signalled
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise

    assert code == 0
    assert 1 <= took < 5
    # uvicorn says it cancels the request, then logs the cancellation.
    cancelling, cancelled = error_lines(stderr)
    assert "timeout graceful shutdown exceeded" in cancelling["message"]
    assert cancelled["exc_info"].endswith(
        "CancelledError: Task cancelled, timeout graceful shutdown exceeded"
    )
