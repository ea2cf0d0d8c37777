"""Fixtures: a real SQLite file per test, the demo policy, the app over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orgguard.api.app import create_app
from orgguard.bootstrap import open_authorizer
from orgguard.service import Authorizer
from orgguard.settings import Settings

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
MODEL = REPO / "model.conf"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'orgguard.db'}", policy_dir=POLICIES
    )


@pytest.fixture
def authorizer(settings: Settings) -> Iterator[Authorizer]:
    authorizer = open_authorizer(settings)
    yield authorizer
    authorizer.store.engine.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def reopen(settings: Settings) -> Authorizer:
    """A fresh process's view: everything rebuilt from the database file."""
    return open_authorizer(settings, first_start_load=False)
