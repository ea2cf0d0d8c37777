"""Read-your-writes: ``min_revision`` on checks (in the body) and on every
other API request (in the query)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from orgguard.api.app import create_app
from orgguard.platform_admin import PlatformAdmin
from orgguard.settings import Settings
from orgguard.storage.database import LOCK_TIMEOUT, WRITE_LOCK_KEY
from tests.conftest import OPERATOR, bearer, make_key, reopen, user_token

CHECK = {"user": "kim@acme.example", "company": "acme", "resource": "orders",
         "action": "checkout"}  # fmt: skip


@pytest.fixture
def quick(settings: Settings) -> Settings:
    """No background refresh; a short wait for min_revision."""
    settings.refresh_seconds = 3600
    settings.min_revision_wait_seconds = 0.3
    return settings


@pytest.fixture
def client(quick: Settings) -> Iterator[TestClient]:
    """The app as seller staff, hearing of other processes' writes only when
    asked to (no refresh, and on PostgreSQL no listener)."""
    with TestClient(create_app(quick)) as client:
        listener = client.app.state.listener  # type: ignore[attr-defined]
        if listener is not None:
            listener.stop()
        client.headers.update(bearer(make_key(client, "tests-admin")))
        yield client


def write_elsewhere(settings: Settings) -> int:
    """A write by another process: this app has not seen it."""
    return reopen(settings).set_member(OPERATOR, "acme", "kim@acme.example", ["buyer"])


@pytest.mark.parametrize("path", ["/v1/check", "/v1/check/batch"])
def test_a_check_with_min_revision_sees_another_process_s_write(
    client: TestClient, quick: Settings, path: str
) -> None:
    revision = write_elsewhere(quick)
    body: dict[str, Any] = {**CHECK} if path == "/v1/check" else {"checks": [CHECK]}

    stale = client.post(path, json=body).json()
    fresh = client.post(path, json={**body, "min_revision": revision}).json()

    allowed = (lambda a: a["allowed"]) if path == "/v1/check" else (
        lambda a: a["results"][0]["allowed"]
    )  # fmt: skip
    assert allowed(stale) is False and stale["revision"] < revision
    assert allowed(fresh) is True and fresh["revision"] == revision


def test_any_read_takes_min_revision_in_the_query(
    client: TestClient, quick: Settings
) -> None:
    revision = write_elsewhere(quick)
    path = "/v1/companies/acme/members/kim@acme.example"

    stale = client.get(path)
    fresh = client.get(f"{path}?min_revision={revision}")

    assert stale.status_code == 404
    assert fresh.status_code == 200 and fresh.json()["groups"] == [
        "buyer",
        "contact",
    ]


def test_a_revision_that_does_not_arrive_is_503_with_retry_after(
    client: TestClient, quick: Settings
) -> None:
    future = client.app.state.authorizer.revision + 5  # type: ignore[attr-defined]

    check = client.post("/v1/check", json={**CHECK, "min_revision": future})
    read = client.get(f"/v1/companies?min_revision={future}")

    for response in (check, read):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        body = response.json()
        assert body["error"] == "unavailable"
        assert body["fields"][0]["field"] == "min_revision"
        assert f"revision {future} did not arrive" in body["message"]


@pytest.mark.parametrize(
    "query",
    ["min_revision=abc", "min_revision=-1", "min_revision=1&min_revision=2",
     "min_revision=99999999999999999999", "min_revision=%EF%BC%91",
     "min_revision=", "min%5Frevision=x"],
)  # fmt: skip
def test_a_bad_min_revision_in_the_query_is_422_naming_it(
    client: TestClient, query: str
) -> None:
    response = client.get(f"/v1/companies?{query}")

    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "min_revision"


@pytest.mark.parametrize("value", [-1, "3", 1.5, 2**63, None, True])
def test_a_bad_min_revision_in_a_check_is_422_naming_it(
    client: TestClient, value: object
) -> None:
    response = client.post("/v1/check", json={**CHECK, "min_revision": value})

    if value is None:  # null: no minimum
        assert response.status_code == 200
        return
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "min_revision"


def test_min_revision_needs_a_credential_first(anonymous: TestClient) -> None:
    response = anonymous.get("/v1/companies?min_revision=abc")

    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/v1/check", "/v1/check/batch"])
def test_min_revision_also_decides_the_caller_s_own_rights(
    client: TestClient, quick: Settings, path: str
) -> None:
    """A person granted (then refused) the right to ask checks by another
    process: with min_revision the grant, and the revocation, count."""
    other = PlatformAdmin(reopen(quick))
    rita = bearer(user_token("rita@seller.example"))
    body: dict[str, Any] = {**CHECK} if path == "/v1/check" else {"checks": [CHECK]}

    granted = other.set_roles(OPERATOR, "rita@seller.example", ["seller-support"])
    with_grant = client.post(path, json={**body, "min_revision": granted}, headers=rita)
    revoked = other.set_roles(OPERATOR, "rita@seller.example", [])
    stale = client.post(path, json=body, headers=rita)
    with_revocation = client.post(
        path, json={**body, "min_revision": revoked}, headers=rita
    )

    assert with_grant.status_code == 200
    assert stale.status_code == 200  # this process has not heard yet
    assert with_revocation.status_code == 403


@pytest.mark.postgres_only
def test_a_writer_stuck_elsewhere_costs_bounded_waits(
    client: TestClient, quick: Settings
) -> None:
    """Another session holds the write lock and does not let go (a writer
    cut off mid-transaction): a write here fails with 503 within the lock
    timeout, and reads with min_revision keep their own deadline."""
    url = make_url(quick.database_url).set(drivername="postgresql")
    holder = psycopg.connect(url.render_as_string(hide_password=False))
    holder.execute(f"SELECT pg_advisory_lock({WRITE_LOCK_KEY})")
    results: dict[str, Any] = {}

    def write() -> None:
        started = time.monotonic()
        response = client.put(
            "/v1/companies/acme/members/kim@acme.example", json={"groups": []}
        )
        results["write"] = (response.status_code, time.monotonic() - started)

    writer = threading.Thread(target=write)
    try:
        writer.start()
        time.sleep(0.5)  # the write now waits for the lock
        started = time.monotonic()
        read = client.get("/v1/companies?min_revision=999999")
        read_took = time.monotonic() - started
        writer.join(30)
    finally:
        holder.close()

    assert read.status_code == 503 and read_took < 2
    status, took = results["write"]
    assert status == 503 and took < LOCK_TIMEOUT + 5
    assert client.get("/v1/companies/acme/members/kim@acme.example").status_code == 404
