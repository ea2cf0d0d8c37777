"""The database each test runs on: a new SQLite file, or with
``ORGGUARD_TEST_BACKEND=postgresql`` a new schema in a PostgreSQL database made
for this test session (``ORGGUARD_TEST_POSTGRES`` names the server; the
default is the machine's own). ``make test`` runs the suite once per backend.

Run as ``python -m tests.databases`` it runs the PostgreSQL pass of the suite
(see the Makefile), or says loudly that it cannot.
"""

from __future__ import annotations

import atexit
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from orgguard.storage.migrate import head
from orgguard.storage.schema import metadata

BACKEND = os.environ.get("ORGGUARD_TEST_BACKEND", "sqlite")
SERVER = os.environ.get(
    "ORGGUARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ON_POSTGRES = BACKEND == "postgresql"

_session_database: str | None = None


def database_url(folder: Path) -> str:
    """A new, empty database for one test."""
    if not ON_POSTGRES:
        return f"sqlite:///{folder / 'orgguard.db'}"
    schema = "t_" + uuid.uuid4().hex[:16]
    _run(f"CREATE SCHEMA {schema}")
    return _url(schema)


def reusable_url(folder: Path) -> str:
    """An empty database for one test, to hand back with ``release`` after it.

    On PostgreSQL, migrating a new schema costs a third of a second: a
    released schema that is at the current revision is emptied (TRUNCATE,
    sequences reset) and handed out again. Tables present, rows none:
    the service sees it as an empty database at the current schema.
    """
    if ON_POSTGRES and _reusable:
        return _url(_reusable.pop())
    return database_url(folder)


def release(url: str) -> None:
    """Hand a test's database back: emptied for the next test if it is at
    the current schema revision and nothing holds it; else left alone."""
    if not ON_POSTGRES:
        return
    found = _SCHEMA.search(url)
    assert found is not None
    schema = found.group(1)
    tables = ", ".join(f"{schema}.{table}" for table in sorted(metadata.tables))
    try:
        with _engine().begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '2s'"))
            versions = connection.execute(
                text(f"SELECT version_num FROM {schema}.alembic_version")
            ).scalars()
            if list(versions) != [head()]:
                return
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
    except DBAPIError:
        return  # no such table, or still in use
    _reusable.append(schema)


_reusable: list[str] = []
_SCHEMA = re.compile(r"search_path%3D(t_[0-9a-f]+)")


def _url(schema: str) -> str:
    url = make_url(SERVER).set(database=_database())
    rendered = url.render_as_string(hide_password=False)
    return f"{rendered}?options={quote(f'-csearch_path={schema}')}"


def _run(statement: str) -> None:
    """One statement in the session's database."""
    with _engine().begin() as connection:
        connection.execute(text(statement))


_engines: dict[str, Engine] = {}


def _engine() -> Engine:
    name = _database()
    if name not in _engines:
        _engines[name] = create_engine(make_url(SERVER).set(database=name))
    return _engines[name]


def _database() -> str:
    """One database per test session, dropped at its end: parallel sessions
    on one server never meet."""
    global _session_database
    if _session_database is None:
        name = f"orgguard_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _admin(f"CREATE DATABASE {name}")
        _session_database = name
        atexit.register(_drop, name)
    return _session_database


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A new database on the server, dropped at the end: its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE DATABASE {name}")
    try:
        yield make_url(SERVER).set(database=name).render_as_string(False)
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _drop(name: str) -> None:
    for engine in _engines.values():
        engine.dispose()
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _admin(statement: str) -> None:
    engine = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def _reachable() -> str | None:
    """None if the server answers, else why not."""
    try:
        _admin("SELECT 1")
    except Exception as error:
        return str(error).splitlines()[0]
    return None


def main() -> int:
    problem = _reachable()
    if problem is not None:
        message = f"PostgreSQL at {SERVER} is not reachable: {problem}"
        if os.environ.get("ORGGUARD_TEST_POSTGRES_REQUIRED"):
            print(f"error: {message}", file=sys.stderr)
            return 1
        print(
            f"\n*** NOT RUN: the PostgreSQL pass of the test suite. {message}. "
            "Start PostgreSQL or set ORGGUARD_TEST_POSTGRES. ***\n",
            file=sys.stderr,
        )
        return 0
    environment = {**os.environ, "ORGGUARD_TEST_BACKEND": "postgresql"}
    command = [sys.executable, "-m", "pytest", *sys.argv[1:]]
    return subprocess.call(command, env=environment)


if __name__ == "__main__":
    sys.exit(main())
