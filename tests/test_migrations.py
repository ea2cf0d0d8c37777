"""Alembic owns the schema: what it builds equals the tables orgguard uses, an
outdated or unknown schema is refused with what to run, and ``orgguard db
upgrade`` brings any earlier orgguard database up, keeping its rows."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import IntegrityError

from orgguard.bootstrap import open_authorizer
from orgguard.errors import Unavailable
from orgguard.settings import Settings
from orgguard.storage import migrate
from orgguard.storage.database import make_engine
from orgguard.storage.schema import casbin_rule, changes, metadata
from tests import databases
from tests.conftest import JWT_SECRET, OPERATOR, POLICIES
from tests.servers import Place, cli


@pytest.fixture
def fresh(tmp_path: Path) -> str:
    """A database nobody has touched (never a reused one)."""
    return databases.database_url(tmp_path)


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, policy_dir=POLICIES, jwt_secret=JWT_SECRET)


def at_revision(url: str, revision: str) -> Engine:
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate._run(connection, revision)
    return engine


def test_the_migrated_schema_is_the_schema_orgguard_uses(fresh: str) -> None:
    engine = make_engine(fresh)
    assert migrate.upgrade(engine) == (None, migrate.head())
    with engine.connect() as connection, warnings.catch_warnings():
        # Alembic cannot compare the expression index over whole rules; it
        # says so in a warning. What it does is asserted below instead.
        warnings.simplefilter("ignore")
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    rule = {"ptype": "g", "v0": "u@x.example", "v1": "group:buyer", "v2": "acme"}
    with engine.begin() as connection:
        connection.execute(insert(casbin_rule), rule)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(casbin_rule), rule)  # v3..v5 NULL: still equal
    engine.dispose()

    assert [d for d in differences if "ux_casbin_rule_line" not in repr(d)] == []


def test_an_empty_database_is_migrated_at_first_start(fresh: str) -> None:
    authorizer = open_authorizer(settings_for(fresh))
    with authorizer.store.engine.connect() as connection:
        found = migrate.current(connection)
    authorizer.store.close()

    assert found == migrate.head()
    assert authorizer.revision > 0  # and the policy directory was loaded


def test_an_outdated_schema_is_refused_until_db_upgrade(
    fresh: str, tmp_path: Path
) -> None:
    at_revision(fresh, "0001").dispose()
    place = Place(tmp_path)
    place.url = fresh

    with pytest.raises(Unavailable, match="revision 0001, this orgguard needs"):
        open_authorizer(settings_for(fresh))
    before = cli(place, "db", "current")
    upgraded = cli(place, "db", "upgrade")
    again = cli(place, "db", "upgrade")
    after = cli(place, "db", "current")
    authorizer = open_authorizer(settings_for(fresh))
    authorizer.store.close()

    assert before.returncode == 6 and "database: 0001" in before.stdout
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"from 0001 to {migrate.head()}" in upgraded.stdout
    assert again.returncode == 0 and "already at" in again.stdout
    assert after.returncode == 0


def test_a_database_from_before_migrations_is_adopted_with_its_rows(
    fresh: str,
) -> None:
    # What orgguard made with create_all before it had migrations: revision
    # 0001's tables, rows in them, and no Alembic version.
    engine = at_revision(fresh, "0001")
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(
            text(
                "INSERT INTO changes (at, action, actor, detail) VALUES "
                "('2026-01-01 00:00:00+00', 'company.create', 'old', '{}')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO companies (id, name, parent, revision) "
                "VALUES ('oldco', 'Old Co', NULL, 1)"
            )
        )
    with pytest.raises(Unavailable, match="predates migrations"):
        migrate.require_current(engine)

    assert migrate.upgrade(engine) == ("0001", migrate.head())
    with engine.connect() as connection:
        old = connection.execute(select(changes.c.action, changes.c.ops)).all()
    engine.dispose()
    authorizer = open_authorizer(settings_for(fresh), first_start_load=False)
    authorizer.store.close()

    assert [tuple(row) for row in old] == [("company.create", None)]
    assert "oldco" in authorizer.index.companies


def test_unknown_tables_are_not_adopted(fresh: str) -> None:
    engine = make_engine(fresh)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE companies (id TEXT PRIMARY KEY)"))

    with pytest.raises(Unavailable, match="does not recognise"):
        migrate.upgrade(engine)
    engine.dispose()


def test_a_schema_from_a_newer_orgguard_is_refused(fresh: str) -> None:
    engine = make_engine(fresh)
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(Unavailable, match="unknown to this orgguard"):
        open_authorizer(settings_for(fresh))
    with pytest.raises(Unavailable, match="nothing was migrated"):
        migrate.upgrade(engine)
    engine.dispose()


def test_a_broken_version_table_is_refused_with_a_message(fresh: str) -> None:
    engine = make_engine(fresh)
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO alembic_version VALUES ('0001')"))

    with pytest.raises(Unavailable, match="cannot be read"):
        migrate.require_current(engine)
    with pytest.raises(Unavailable, match="cannot be read"):
        migrate.upgrade(engine)
    engine.dispose()


def test_a_stamp_without_tables_is_refused(fresh: str) -> None:
    engine = make_engine(fresh)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num TEXT)"))
        connection.execute(
            text(f"INSERT INTO alembic_version VALUES ('{migrate.head()}')")
        )

    with pytest.raises(Unavailable, match="lacks orgguard's tables"):
        migrate.require_current(engine)
    with pytest.raises(Unavailable, match="lacks orgguard's tables"):
        migrate.upgrade(engine)
    engine.dispose()


def test_writes_record_their_rows_in_the_change_log(fresh: str) -> None:
    authorizer = open_authorizer(settings_for(fresh))
    revision = authorizer.set_member(OPERATOR, "acme", "kim@acme.example", ["buyer"])
    with authorizer.store.engine.connect() as connection:
        ops = connection.execute(
            select(changes.c.ops).where(changes.c.revision == revision)
        ).scalar_one()
    authorizer.store.close()

    assert ops["add_rules"] == [
        ["g", "kim@acme.example", "group:buyer", "acme"],
        ["g", "kim@acme.example", "group:contact", "acme"],
    ]
    assert ops["remove_rules"] == []
