"""Several server processes over one database behave as one service.

On PostgreSQL (the production set-up) each replica hears the others' writes
through LISTEN/NOTIFY and replays the change log; these tests start real
``orgguard serve`` processes on one database, cut connections, and compare
what every replica answers. ``serve --workers`` runs on both backends.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url

from tests.servers import (
    Place,
    demo_key,
    free_port,
    request,
    start_server,
    stop,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


def check_body(user: str, company: str = "acme", **more: Any) -> dict[str, Any]:
    return {"user": user, "company": company, "resource": "orders",
            "action": "checkout", **more}  # fmt: skip


def eventually(probe: Callable[[], bool], seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.05)
    return probe()


@pytest.fixture
def place(tmp_path: Path) -> Place:
    return Place(tmp_path)


@pytest.fixture
def replicas(place: Place) -> Iterator[Callable[..., int]]:
    """Start replicas on the place's database; each call gives a new port."""
    started = []

    def start(*args: str, **settings: str) -> int:
        port = free_port()
        first = not started
        started.append(start_server(place, port, *args, demo=first, **settings))
        return port

    yield start
    stop(*started)


def members(port: int, key: str, company: str, revision: int) -> Any:
    path = f"/v1/companies/{company}/members?limit=1000&min_revision={revision}"
    status, body = request(port, "GET", path, None, key)
    assert status == 200, body
    return body


@pytest.mark.postgres_only
def test_a_write_on_one_replica_is_read_on_another_with_min_revision(
    place: Place, replicas: Callable[..., int]
) -> None:
    # A long refresh: only LISTEN/NOTIFY or min_revision can bring the write.
    a, b = replicas(refresh_seconds="600"), replicas(refresh_seconds="600")
    key = demo_key(place)

    status, written = request(
        a, "PUT", "/v1/companies/acme/members/kim@acme.example",
        {"groups": ["buyer"]}, key,
    )  # fmt: skip
    revision = written["revision"]
    status_b, on_b = request(
        b, "POST", "/v1/check", check_body("kim@acme.example", min_revision=revision),
        key,
    )  # fmt: skip
    listed = members(b, key, "acme", revision)

    assert status == 200
    assert status_b == 200 and on_b["allowed"] is True
    assert on_b["revision"] >= revision
    assert "kim@acme.example" in {m["user"] for m in listed["items"]}


@pytest.mark.postgres_only
def test_notifications_reach_replicas_without_min_revision(
    place: Place, replicas: Callable[..., int]
) -> None:
    a, b = replicas(refresh_seconds="600"), replicas(refresh_seconds="600")
    key = demo_key(place)
    request(a, "PUT", "/v1/companies/acme/members/lee@acme.example",
            {"groups": ["buyer"]}, key)  # fmt: skip

    def seen_on_b() -> bool:
        answer = request(b, "POST", "/v1/check", check_body("lee@acme.example"), key)
        return bool(answer[1]["allowed"])

    assert eventually(seen_on_b, seconds=5)


@pytest.mark.postgres_only
def test_a_replica_whose_listener_was_killed_reconnects_and_catches_up(
    place: Place, tmp_path: Path
) -> None:
    a_port, b_port = free_port(), free_port()
    a = start_server(place, a_port, refresh_seconds="600")
    b = start_server(place, b_port, demo=False, refresh_seconds="600")
    key = demo_key(place)
    try:
        killed = _terminate_listener(place.url, b.pid)
        # Written while b's listener is gone: only its reconnect can tell b.
        written = request(
            a_port, "PUT", "/v1/companies/acme/members/max@acme.example",
            {"groups": ["buyer"]}, key,
        )  # fmt: skip

        def seen_on_b() -> bool:
            body = check_body("max@acme.example")
            return bool(request(b_port, "POST", "/v1/check", body, key)[1]["allowed"])

        caught_up = eventually(seen_on_b)
        ready = request(b_port, "GET", "/readyz")
        with urllib.request.urlopen(f"http://127.0.0.1:{b_port}/metrics") as page:
            metrics = page.read().decode()
    finally:
        stop(a, b)

    assert killed == 1
    assert written[0] == 200
    assert caught_up
    assert ready == (200, {"status": "ready", "revision": written[1]["revision"]})
    assert "orgguard_listener_connected 1.0" in metrics
    assert "orgguard_listener_connections_total 2.0" in metrics
    assert 'orgguard_catch_ups_total{how="replayed"} 1.0' in metrics


def _terminate_listener(url: str, pid: int) -> int:
    """Kill the process's LISTEN connection from the server side."""
    conninfo = make_url(url).set(drivername="postgresql")
    name = f"orgguard-listener-{pid}"
    deadline = time.monotonic() + 10
    with psycopg.connect(
        conninfo.render_as_string(hide_password=False), autocommit=True
    ) as connection:
        while time.monotonic() < deadline:
            rows = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            ).fetchall()
            if rows:
                return len(rows)
            time.sleep(0.1)
    return 0


@pytest.mark.postgres_only
def test_soak_writers_on_one_replica_checkers_on_the_others_agree(
    place: Place, replicas: Callable[..., int]
) -> None:
    writer, *readers = (replicas() for _ in range(3))
    key = demo_key(place)
    users = [f"soak{n}@acme.example" for n in range(12)]
    acknowledged: dict[str, tuple[int, list[str]]] = {}
    failures: list[Any] = []
    stop_checking = threading.Event()
    lock = threading.Lock()

    def write(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(25):
            user = rng.choice(users[seed::2])  # each writer owns its users
            groups = rng.choice([["buyer"], ["requester"], [], ["buyer", "contact"]])
            status, body = request(
                writer, "PUT", f"/v1/companies/acme/members/{user}",
                {"groups": groups}, key,
            )  # fmt: skip
            if status != 200:
                failures.append(("write", status, body))
                continue
            with lock:
                acknowledged[user] = (body["revision"], sorted({"contact", *groups}))

    def check(port: int) -> None:
        rng = random.Random(port)
        while not stop_checking.is_set():
            status, body = request(
                port, "POST", "/v1/check", check_body(rng.choice(users)), key
            )
            if status != 200:
                failures.append(("check", port, status, body))

    writers = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    checkers = [threading.Thread(target=check, args=(p,)) for p in readers * 2]
    for thread in [*writers, *checkers]:
        thread.start()
    for thread in writers:
        thread.join()
    stop_checking.set()
    for thread in checkers:
        thread.join()

    assert failures == []
    final = max(revision for revision, _ in acknowledged.values())
    views = [members(port, key, "acme", final) for port in (writer, *readers)]
    assert views[0] == views[1] == views[2]
    held = {m["user"]: sorted(m["groups"]) for m in views[0]["items"]}
    for user, (_, groups) in acknowledged.items():
        assert held[user] == groups, user  # no acknowledged write lost


@pytest.mark.postgres_only
def test_database_outage_checks_answer_writes_fail_then_it_catches_up(
    place: Place, tmp_path: Path
) -> None:
    url = make_url(place.url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    cut_port, direct_port = free_port(), free_port()
    direct = start_server(place, direct_port, refresh_seconds="600")
    cut = start_server(
        place, cut_port, demo=False, url=through_proxy, refresh_seconds="0.2"
    )
    key = demo_key(place)
    alice = check_body("alice@acme.example")
    try:
        assert request(cut_port, "POST", "/v1/check", alice, key)[1]["allowed"]
        proxy.cut()
        during = request(cut_port, "POST", "/v1/check", alice, key)
        ready_during = request(cut_port, "GET", "/readyz")
        refused = request(
            cut_port, "PUT", "/v1/companies/acme/members/lost@acme.example",
            {"groups": ["buyer"]}, key,
        )  # fmt: skip
        elsewhere = request(
            direct_port, "PUT", "/v1/companies/acme/members/new@acme.example",
            {"groups": ["buyer"]}, key,
        )  # fmt: skip
        proxy.restore()

        def caught_up() -> bool:
            body = check_body("new@acme.example")
            answer = request(cut_port, "POST", "/v1/check", body, key)
            return answer[0] == 200 and bool(answer[1]["allowed"])

        recovered = eventually(caught_up)
        # Ready again once the listener has reconnected too (its pause grows).
        ready_again = eventually(
            lambda: request(cut_port, "GET", "/readyz")[1]["status"] == "ready"
        )
        lost = request(
            direct_port, "GET", "/v1/companies/acme/members/lost@acme.example",
            None, key,
        )  # fmt: skip
        audit = request(direct_port, "GET", "/v1/audit?company=acme&limit=3", None, key)
        again = request(
            cut_port, "PUT", "/v1/companies/acme/members/late@acme.example",
            {"groups": ["buyer"]}, key,
        )  # fmt: skip
    finally:
        stop(cut, direct)
        proxy.close()

    # During the outage: checks answer from the last good policy.
    assert during[0] == 200 and during[1]["allowed"] is True
    assert ready_during[0] == 200 and ready_during[1]["status"] == "degraded"
    # The write failed whole: 503, nothing stored, nothing in the audit trail.
    assert refused[0] == 503 and refused[1]["error"] == "unavailable"
    assert lost[0] == 404
    users_in_audit = [r["after"] and r["after"].get("user") for r in audit[1]["items"]]
    assert "lost@acme.example" not in users_in_audit
    # Back: it caught up with the write made elsewhere by itself, and writes.
    assert elsewhere[0] == 200
    assert recovered
    assert ready_again
    assert again[0] == 200


@pytest.mark.postgres_only
def test_a_stalled_database_never_holds_up_checks_or_readiness(
    place: Place,
) -> None:
    """The database stops answering without closing anything: checks go on
    from memory and /readyz answers at once, however often it is asked."""
    url = make_url(place.url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    port = free_port()
    server = start_server(place, port, url=through_proxy, refresh_seconds="0.2")
    key = demo_key(place)
    alice = check_body("alice@acme.example")
    try:
        assert request(port, "POST", "/v1/check", alice, key)[1]["allowed"]
        proxy.stall()
        time.sleep(0.5)  # the refresher and the listener are now stuck
        probes: list[Any] = []
        threads = [
            threading.Thread(
                target=lambda: probes.append(request(port, "GET", "/readyz"))
            )
            for _ in range(30)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        checks = [request(port, "POST", "/v1/check", alice, key) for _ in range(20)]
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        proxy.restore()
        recovered = eventually(
            lambda: request(port, "GET", "/readyz")[1]["status"] == "ready"
        )
    finally:
        stop(server)
        proxy.close()

    assert all(answer == 200 and body["allowed"] for answer, body in checks)
    assert len(probes) == 30
    assert all(status == 200 for status, _ in probes), probes
    assert {body["status"] for _, body in probes} == {"degraded"}
    assert elapsed < 8  # each probe waits at most a second
    assert recovered


def test_serve_workers_behave_as_one_service(
    place: Place, replicas: Callable[..., int]
) -> None:
    port = replicas("--workers", "2", refresh_seconds="600")
    key = demo_key(place)
    answers = []
    for n in range(10):
        user = f"w{n}@acme.example"
        status, written = request(
            port, "PUT", f"/v1/companies/acme/members/{user}",
            {"groups": ["buyer"]}, key,
        )  # fmt: skip
        assert status == 200
        body = check_body(user, min_revision=written["revision"])
        answers.append(request(port, "POST", "/v1/check", body, key))

    assert all(status == 200 and body["allowed"] for status, body in answers)
