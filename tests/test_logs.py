"""Log lines: JSON objects (or plain text) with the request id, one per write
and per refused admin action, decisions only at debug."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orgguard.api.app import create_app
from orgguard.logs import REQUEST_ID, LogFormat, make_handler
from orgguard.settings import Settings
from tests.conftest import bearer, make_key
from tests.servers import (
    ORGGUARD,
    Place,
    demo_key,
    free_port,
    request,
    start_server,
)

CHECK = {"user": "alice@acme.example", "company": "acme", "resource": "orders",
         "action": "read"}  # fmt: skip


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing JSON lines to a buffer."""
    stream = io.StringIO()
    logger = logging.getLogger("orgguard.tests.logs")
    handler = make_handler("json", stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def in_request(request_id: str, write: Callable[[], object]) -> None:
    """Call ``write`` as the Edge middleware would while serving a request."""

    def serve() -> None:
        REQUEST_ID.set(request_id)
        write()

    contextvars.copy_context().run(serve)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_name_time_level_logger_message_and_request_id(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = lines

    in_request("abc", lambda: logger.info("loaded %d companies", 7))
    logger.warning("outside any request", extra={"revision": 3})

    inside, outside = parsed(stream)
    assert inside.keys() == {"time", "level", "logger", "message", "request_id"}
    assert inside["level"] == "INFO"
    assert inside["logger"] == "orgguard.tests.logs"
    assert inside["message"] == "loaded 7 companies"
    assert inside["request_id"] == "abc"
    assert inside["time"].endswith("+00:00")
    assert outside == {
        "time": outside["time"],
        "level": "WARNING",
        "logger": "orgguard.tests.logs",
        "message": "outside any request",
        "revision": 3,
    }


def test_a_line_naming_its_request_id_keeps_it_and_none_means_no_field(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = lines

    in_request("abc", lambda: logger.info("named", extra={"request_id": "xyz"}))
    logger.info("none", extra={"request_id": None})

    named, none = parsed(stream)
    assert named["request_id"] == "xyz"
    assert "request_id" not in none


def test_an_exception_line_carries_its_traceback(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = lines

    try:
        raise ValueError("the index broke")
    except ValueError:
        logger.exception("decision failed")

    [line] = parsed(stream)
    assert line["level"] == "ERROR"
    assert line["message"] == "decision failed"
    assert line["exc_info"].startswith("Traceback (most recent call last):")
    assert line["exc_info"].endswith("ValueError: the index broke")


@pytest.mark.parametrize(
    ("log_format", "expected"),
    [
        ("json", '"message": "write member.set", "revision": 4, "request_id": "abc"'),
        ("text", "INFO orgguard.tests.logs write member.set revision=4 request_id=abc"),
    ],
)
def test_both_formats_carry_the_fields_of_a_line(
    log_format: LogFormat, expected: str
) -> None:
    stream = io.StringIO()
    handler = make_handler(log_format, stream)
    record = logging.LogRecord(
        "orgguard.tests.logs", logging.INFO, __file__, 1, "write %s", ("member.set",),
        None,
    )  # fmt: skip
    record.revision = 4

    in_request("abc", lambda: handler.handle(record))

    assert expected in stream.getvalue()
    assert stream.getvalue().count("\n") == 1


def server_lines(path: Path) -> list[dict[str, Any]]:
    """Every line the server wrote to stderr, each parsed as one JSON object."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def serve_and_call(tmp_path: Path, **settings: str) -> list[dict[str, Any]]:
    """A real server with ``settings``: checks (one and a batch) with request
    id ``chk``, a write with ``abc``, an admin action refused to a checker key
    with ``no``; its stderr, line by line."""
    database, port, stderr = Place(tmp_path), free_port(), tmp_path / "err"
    with stderr.open("wb") as sink:
        server = start_server(database, port, stderr=sink, **settings)
        key = demo_key(database)
        try:
            checker = request(
                port, "POST", "/v1/keys", {"name": "pos", "role": "checker"}, key
            )[1]["key"]
            checked = request(port, "POST", "/v1/check", CHECK, checker, "chk")
            batch = {"checks": [CHECK, {**CHECK, "company": "initech"}]}
            batched = request(port, "POST", "/v1/check/batch", batch, checker, "chk")
            written = request(
                port,
                "PUT",
                "/v1/companies/acme/members/kim@acme.example",
                {"groups": ["buyer"]},
                key,
                "abc",
            )
            refused = request(port, "GET", "/v1/companies", None, checker, "no")
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert checked[0] == batched[0] == written[0] == 200
    assert refused[0] == 403
    return server_lines(stderr)


@pytest.mark.slow
def test_server_logs_json_lines_a_write_and_a_refusal_and_no_decision_at_info(
    tmp_path: Path,
) -> None:
    lines = serve_and_call(tmp_path, log_level="info")

    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "orgguard.service", "orgguard.access"} <= loggers
    [write] = [line for line in lines if line.get("request_id") == "abc"]
    assert write["level"] == "INFO" and write["logger"] == "orgguard.service"
    assert write["action"] == "member.set" and write["company"] == "acme"
    assert write["actor"] == "key:demo-admin"
    assert write["revision"] == 4  # load, demo key, checker key, this write
    [refusal] = [line for line in lines if line.get("request_id") == "no"]
    assert refusal["level"] == "WARNING"
    assert refusal["actor"] == "key:pos"
    assert refusal["missing"] == ["companies:read"]
    # Three allowed or denied checks, and not one line for them.
    assert not [line for line in lines if line.get("request_id") == "chk"]
    assert "orgguard.decisions" not in loggers


@pytest.mark.slow
def test_server_logs_each_decision_at_debug_and_requests_with_access_log(
    tmp_path: Path,
) -> None:
    lines = serve_and_call(tmp_path, log_level="debug", access_log="true")

    checks = [line for line in lines if line.get("request_id") == "chk"]
    decisions = [line for line in checks if line["logger"] == "orgguard.decisions"]
    accesses = [line for line in checks if line["logger"] == "uvicorn.access"]
    assert [a["message"].split('"')[1] for a in accesses] == [
        "POST /v1/check HTTP/1.1",
        "POST /v1/check/batch HTTP/1.1",
    ]
    assert [(d["logger"], d["level"], d["allowed"]) for d in decisions] == [
        ("orgguard.decisions", "DEBUG", True),
        ("orgguard.decisions", "DEBUG", True),
        ("orgguard.decisions", "DEBUG", False),
    ]
    assert decisions[0]["user"] == "alice@acme.example"
    assert decisions[0]["permission"] == "orders:read"
    assert decisions[2]["company"] == "initech"
    assert decisions[2]["message"].startswith("denied: ")


@pytest.mark.slow
def test_serve_with_text_logs_writes_plain_lines(tmp_path: Path) -> None:
    database, port, stderr = Place(tmp_path), free_port(), tmp_path / "err"
    with stderr.open("wb") as sink:
        server = start_server(database, port, stderr=sink, log_format="text")
        server.terminate()
        assert server.wait(timeout=30) == 0

    text = stderr.read_text(encoding="utf-8")
    utc = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")
    assert all(utc.match(line) for line in text.splitlines())
    assert " INFO uvicorn.error Application startup complete." in text
    assert " INFO orgguard.service write key.create at revision 2 " in text
    assert not [line for line in text.splitlines() if line.startswith("{")]


def test_a_bad_log_format_is_refused_naming_the_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [*ORGGUARD, "serve"],
        env={**os.environ, "ORGGUARD_LOG_FORMAT": "yaml"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert result.returncode == 2
    assert "ORGGUARD_LOG_FORMAT" in result.stderr


@pytest.mark.parametrize("fast_check", [True, False])
def test_both_check_paths_log_each_decision_at_debug_only(
    settings: Settings, caplog: pytest.LogCaptureFixture, fast_check: bool
) -> None:
    denied = {**CHECK, "company": "initech"}
    with TestClient(create_app(settings, fast_check=fast_check)) as client:
        client.headers.update(bearer(make_key(client, "tests-admin")))
        with caplog.at_level(logging.INFO):
            client.post("/v1/check", json=CHECK)
        at_info = [r for r in caplog.records if r.name == "orgguard.decisions"]
        with caplog.at_level(logging.DEBUG, logger="orgguard.decisions"):
            client.post("/v1/check", json=denied)
            client.post("/v1/check/batch", json={"checks": [CHECK, denied]})

    decisions = [r for r in caplog.records if r.name == "orgguard.decisions"]
    assert at_info == []
    assert [(r.levelname, r.allowed, r.company) for r in decisions] == [  # type: ignore[attr-defined]
        ("DEBUG", False, "initech"),
        ("DEBUG", True, "acme"),
        ("DEBUG", False, "initech"),
    ]


def test_lines_of_a_failing_request_carry_its_id_and_the_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    handler = make_handler("json", stream)
    logging.getLogger("orgguard").addHandler(handler)
    route_log = logging.getLogger("orgguard.tests.route")

    def broken(*_args: object) -> None:
        route_log.warning("about to fail")  # in the route's worker thread
        raise RuntimeError("the page broke")

    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            key = make_key(client, "tests-admin")
            authorizer = client.app.state.authorizer  # type: ignore[attr-defined]
            monkeypatch.setattr(authorizer, "list_companies", broken)
            response = client.get(
                "/v1/companies", headers={**bearer(key), "X-Request-ID": "boom"}
            )
    finally:
        logging.getLogger("orgguard").removeHandler(handler)

    lines = [line for line in parsed(stream) if line.get("request_id") == "boom"]
    assert response.status_code == 500
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("orgguard.tests.route", "WARNING"),
        ("orgguard.api.app", "ERROR"),
    ]
    assert lines[1]["message"] == "unexpected error on GET /v1/companies"
    assert lines[1]["exc_info"].endswith("RuntimeError: the page broke")


def test_configure_turns_python_warnings_into_json_lines() -> None:
    code = (
        "import warnings\n"
        "from orgguard import logs\n"
        "logs.configure('info', 'json')\n"
        "warnings.warn('the old setting is deprecated')\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )

    [line] = [json.loads(text) for text in result.stderr.splitlines()]
    assert line["logger"] == "py.warnings" and line["level"] == "WARNING"
    assert "UserWarning: the old setting is deprecated" in line["message"]
