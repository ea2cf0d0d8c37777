"""Engine creation. SQLite gets the settings that make it a safe embedded store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

# Execution options of a connection that only reads.
READ_ONLY = {"orgguard_read_only": True}
# pg_advisory_xact_lock's key for orgguard's writes ("org").
WRITE_LOCK_KEY = 0x6F7267


# A database that stops answering must not stop the service: every wait on
# PostgreSQL is bounded (seconds).
CONNECT_TIMEOUT = 5
POOL_TIMEOUT = 5
LOCK_TIMEOUT = 10  # a write waiting for another writer's lock
IDLE_IN_TRANSACTION_TIMEOUT = 30  # a writer that vanished mid-transaction


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return _postgres_engine(postgres_driver(url))


def _postgres_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=POOL_TIMEOUT,
        connect_args=KEEPALIVES,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The server ends a session left in a transaction by a client that is
        # gone (a network cut), releasing the write lock it held.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}s'")
            cursor.execute(
                "SET idle_in_transaction_session_timeout = "
                f"'{IDLE_IN_TRANSACTION_TIMEOUT}s'"
            )
        dbapi_connection.commit()

    return engine


# libpq: give up connecting after CONNECT_TIMEOUT; notice a silent network cut
# within seconds (keepalives while waiting, tcp_user_timeout while sending).
KEEPALIVES = {
    "connect_timeout": CONNECT_TIMEOUT,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def postgres_driver(url: str) -> str:
    """A plain ``postgresql://`` URL means psycopg 3, the driver orgguard ships."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def lock_writes(connection: Connection) -> None:
    """Take the database's write lock for the connection's transaction: one
    writer at a time across every process. SQLite's BEGIN IMMEDIATE took it
    already; PostgreSQL takes an advisory lock, released at commit."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")


def _sqlite_engine(url: str) -> Engine:
    # Enough pooled connections for the worker threads: a connection beyond
    # the pool is opened and closed per use, and opening one runs the PRAGMAs.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        pool_size=20,
        max_overflow=20,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy decide when transactions start (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 10000")
        if ":memory:" not in url and "mode=memory" not in url:
            cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: an acknowledged write survives a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue instead of
        # one failing at commit time with "database is locked"; reads (marked
        # READ_ONLY) take no lock and never wait for a writer (WAL).
        if connection.get_execution_options().get("orgguard_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
