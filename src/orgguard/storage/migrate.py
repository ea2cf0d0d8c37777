"""The schema belongs to Alembic: ``orgguard db upgrade`` moves a database to the
revision this orgguard needs, and the service refuses any other.

Migrations run through Alembic's Python API in one transaction that also holds
orgguard's write lock, so two processes starting at once cannot both migrate.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, inspect

from orgguard.errors import Unavailable
from orgguard.storage.database import lock_writes
from orgguard.storage.schema import metadata

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# The revision whose tables orgguard made with create_all before migrations.
BEFORE_MIGRATIONS = "0001"


@cache
def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    revision = _script().get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    """The database's schema revision; None for an unmigrated database."""
    try:
        return MigrationContext.configure(connection).get_current_revision()
    except CommandError as error:  # e.g. several rows in alembic_version
        raise Unavailable(
            f"the database's schema revision cannot be read ({error}); repair "
            "its alembic_version table"
        ) from error


def _known(revision: str) -> bool:
    return revision in {script.revision for script in _script().walk_revisions()}


def upgrade(engine: Engine, *, adopt: bool = True) -> tuple[str | None, str]:
    """Migrate to the head revision; the revisions before and after.

    ``adopt``: a database that orgguard made before it had migrations (its
    tables, no Alembic version) is stamped as such and upgraded from there.
    """
    with engine.begin() as connection:
        lock_writes(connection)
        tables = set(inspect(connection).get_table_names())
        before = current(connection)
        if before is None and tables & set(metadata.tables):
            if not adopt or not _made_before_migrations(connection):
                raise Unavailable(
                    f"the database at {engine.url!r} holds tables orgguard does "
                    "not recognise; it cannot be migrated (for the demo database, "
                    "run 'make clean' and start again)"
                )
            _run(connection, BEFORE_MIGRATIONS, stamp=True)
            before = BEFORE_MIGRATIONS
        if before is not None and not _known(before):
            raise Unavailable(_unknown(engine, before))
        if before == head() and not set(metadata.tables) <= tables:
            raise Unavailable(_stamped_without_tables(engine))
        if before != head():
            _run(connection, "head")
            log.info("database schema upgraded from %s to %s", before, head())
        return before, head()


def is_empty(engine: Engine) -> bool:
    with engine.connect() as connection:
        return not set(inspect(connection).get_table_names()) & set(metadata.tables)


def require_current(engine: Engine) -> None:
    """Refuse a database whose schema is not the one this orgguard needs."""
    with engine.connect() as connection:
        found = current(connection)
        tables = set(inspect(connection).get_table_names())
    if found == head():
        if not set(metadata.tables) <= tables:
            raise Unavailable(_stamped_without_tables(engine))
        return
    if found is not None and not _known(found):
        raise Unavailable(_unknown(engine, found))
    if found is None:
        problem = "has no migration revision (it predates migrations)"
    else:
        problem = f"has schema revision {found}, this orgguard needs {head()}"
    raise Unavailable(
        f"the database at {engine.url!r} {problem}; run 'orgguard db upgrade'"
    )


def _unknown(engine: Engine, revision: str) -> str:
    return (
        f"the database at {engine.url!r} has schema revision {revision!r}, "
        "unknown to this orgguard (a newer orgguard wrote it?): run that "
        "orgguard, or restore the database; nothing was migrated"
    )


def _stamped_without_tables(engine: Engine) -> str:
    return (
        f"the database at {engine.url!r} says schema revision {head()} but "
        "lacks orgguard's tables; repair it (or empty it) before starting"
    )


def _made_before_migrations(connection: Connection) -> bool:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    if not set(metadata.tables) <= tables:
        return False
    columns = {column["name"] for column in inspector.get_columns("changes")}
    return {"actor", "request_id", "before", "after"} <= columns and "ops" not in (
        columns
    )


def _run(connection: Connection, destination: str, *, stamp: bool = False) -> None:
    script = _script()

    def steps(revision: Any, _context: MigrationContext) -> Any:
        if stamp:
            return script._stamp_revs(destination, revision)
        return script._upgrade_revs(destination, revision)

    with EnvironmentContext(
        _config(), script, fn=steps, destination_rev=destination
    ) as environment:
        environment.configure(connection=connection, target_metadata=metadata)
        with environment.begin_transaction():
            environment.run_migrations()
