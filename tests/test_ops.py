"""Health, readiness and metrics: what operators and load balancers read."""

from __future__ import annotations

from fastapi.testclient import TestClient

from orgguard.api.app import create_app
from orgguard.errors import Unavailable
from orgguard.settings import Settings
from tests.conftest import OPERATOR, bearer, reopen

CHECK = {"user": "alice@acme.example", "company": "acme", "resource": "orders",
         "action": "read"}  # fmt: skip


def metric(text: str, name: str) -> float:
    """The value of one sample, ``name`` with its labels as printed."""
    for line in text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


def test_healthz_and_readyz_need_no_credential(anonymous: TestClient) -> None:
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_readyz_says_behind_until_the_process_catches_up(settings: Settings) -> None:
    settings.refresh_seconds = 3600  # no background refresh during the test
    with TestClient(create_app(settings)) as client:
        listener = client.app.state.listener  # type: ignore[attr-defined]
        if listener is not None:  # PostgreSQL: it would catch up at once
            listener.stop()
        reopen(settings).set_member(OPERATOR, "acme", "new@acme.example", ["buyer"])

        behind = client.get("/readyz")
        client.app.state.authorizer.refresh()  # type: ignore[attr-defined]
        ready = client.get("/readyz")

    assert behind.status_code == 503
    assert behind.headers["Retry-After"] == "1"
    assert "behind the database by 1" in behind.json()["reason"]
    assert ready.status_code == 200


def test_readyz_says_degraded_when_the_database_fails(client: TestClient) -> None:
    store = client.app.state.authorizer.store  # type: ignore[attr-defined]

    def broken(*_args: object) -> int:
        raise Unavailable("cannot read the policy: disk I/O error")

    store.revision = broken
    response = client.get("/readyz")

    # Still in rotation: checks answer from the policy in memory.
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert "database unreachable" in response.json()["reason"]
    assert client.post("/v1/check", json=CHECK).json()["allowed"] is True
    assert "orgguard_revision_lag -1.0" in client.get("/metrics").text


def test_metrics_count_decisions_writes_and_latency(client: TestClient) -> None:
    before = client.get("/metrics").text
    for _ in range(70):
        assert client.post("/v1/check", json=CHECK).json()["allowed"]
    denied = {**CHECK, "company": "initech"}
    for _ in range(5):
        assert not client.post("/v1/check", json=denied).json()["allowed"]
    client.put("/v1/companies/acme/members/m@acme.example", json={"groups": []})

    after = client.get("/metrics")

    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    allowed = 'orgguard_decisions_total{result="allowed"}'
    assert metric(text, allowed) - metric(before, allowed) == 70
    denied_total = 'orgguard_decisions_total{result="denied"}'
    assert metric(text, denied_total) - metric(before, denied_total) == 5
    assert metric(text, 'orgguard_writes_total{action="member.set"}') == 1
    assert metric(text, "orgguard_check_seconds_count") >= 1  # 1 in 64 is timed
    revision = client.app.state.authorizer.revision  # type: ignore[attr-defined]
    assert metric(text, "orgguard_revision") == revision
    assert metric(text, "orgguard_revision_lag") == 0


def test_metrics_say_nothing_about_companies(client: TestClient) -> None:
    client.post("/v1/check", json=CHECK)
    text = client.get("/metrics", headers=bearer("nothing")).text
    assert "acme" not in text and "alice" not in text
