"""Fixtures: a new database per test (SQLite, or PostgreSQL: see
``tests/databases.py``), the demo policy, the app over it.

``client`` calls the API as seller staff (a seller-admin API key); tests of who
may do what build their own callers with ``bearer`` and ``user_token``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from orgguard.access import Caller
from orgguard.api.app import create_app
from orgguard.bootstrap import open_authorizer
from orgguard.platform_admin import PlatformAdmin
from orgguard.service import Authorizer
from orgguard.settings import Settings
from tests import databases

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
MODEL = REPO / "model.conf"
JWT_SECRET = "test-secret-of-at-least-32-bytes-0123456789"
OPERATOR = Caller("cli:tests", "operator")


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Each pass leaves out the other backend's own tests (deselected and
    counted as such, never reported as passed)."""
    other = "sqlite_only" if databases.ON_POSTGRES else "postgres_only"
    left_out = [item for item in items if item.get_closest_marker(other)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker(other)]


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    url = databases.reusable_url(tmp_path)
    yield url
    databases.release(url)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        policy_dir=POLICIES,
        jwt_secret=JWT_SECRET,
    )


@pytest.fixture
def authorizer(settings: Settings) -> Iterator[Authorizer]:
    authorizer = open_authorizer(settings)
    yield authorizer
    authorizer.store.engine.dispose()


@pytest.fixture
def anonymous(settings: Settings) -> Iterator[TestClient]:
    """The app with no credential sent."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def client(anonymous: TestClient) -> TestClient:
    """The app as seller staff: every request carries a seller-admin key."""
    anonymous.headers.update(bearer(make_key(anonymous, "tests-admin")))
    return anonymous


def make_key(client: TestClient, name: str, role: str = "seller-admin") -> str:
    """A new API key, made by the operator on the app's own database."""
    platform: PlatformAdmin = client.app.state.platform  # type: ignore[attr-defined]
    return platform.create_key(OPERATOR, name, role).secret


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def user_token(
    user: str,
    *,
    secret: str = JWT_SECRET,
    # Long enough for tokens made at import time to outlive a slow suite.
    expires_in: timedelta = timedelta(hours=3),
    **claims: object,
) -> str:
    """A person's HS256 token, as the seller's identity provider would sign it."""
    now = datetime.now(UTC)
    payload = {"sub": user, "iat": now, "exp": now + expires_in, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def reopen(settings: Settings) -> Authorizer:
    """A fresh process's view: everything rebuilt from the database file."""
    return open_authorizer(settings, first_start_load=False)
