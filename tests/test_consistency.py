"""Read-your-writes: ``min_revision`` on checks (in the body) and on every
other API request (in the query)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orgguard.api.app import create_app
from orgguard.settings import Settings
from tests.conftest import OPERATOR, bearer, make_key, reopen

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
     "min_revision=99999999999999999999", "min_revision=%EF%BC%91"],
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
