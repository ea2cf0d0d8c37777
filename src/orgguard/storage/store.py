"""Reads and writes the policy in the database, each write one transaction.

This replaces the write path of the Casbin SQLAlchemy adapter, which commits each
rule of a batch on its own, deletes the cross product of a batch's fields in
``remove_policies`` and rebuilds every rule from comma-joined text on load (see
README, "The SQLAlchemy adapter"). The table layout stays the adapter's.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    String,
    and_,
    delete,
    false,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import RootTransaction
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout

from orgguard.errors import Conflict, InvalidInput, NotFound, Unavailable
from orgguard.policy import casbin_rules, changelog
from orgguard.policy.model import (
    IMPORT_ACTION,
    ApiKey,
    Change,
    Company,
    CustomGroup,
    Membership,
    Snapshot,
)
from orgguard.storage import migrate
from orgguard.storage.database import READ_ONLY, lock_writes
from orgguard.storage.schema import (
    api_keys,
    casbin_rule,
    changes,
    companies,
    custom_groups,
)

log = logging.getLogger(__name__)

# PostgreSQL's LISTEN/NOTIFY channel: the revision of each committed change.
CHANNEL = "orgguard_changes"

_FIELDS = ("v0", "v1", "v2", "v3", "v4", "v5")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime, field: str = "time") -> datetime:
    """Aware UTC; a naive time (as SQLite returns it) is taken to be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:
        raise InvalidInput(f"{field} is out of range in UTC", field=field) from error


@dataclass(frozen=True, slots=True)
class AuditRecord:
    revision: int
    at: datetime
    actor: str
    action: str
    company: str | None
    request_id: str | None
    before: Any
    after: Any


MAX_REVISION = 2**63 - 1
_KEYS_KEPT = 10_000  # found keys kept at most (unknown ids are never kept)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit records to read, newest first. ``companies`` None: all of
    them, platform records included; else only records of those companies,
    each from the revision given (a company id can be reused after a delete;
    a company admin sees only its company's own life)."""

    companies: dict[str, int] | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_revision: int | None = None
    limit: int = 100


class PolicyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        database = engine.url.database or ""
        on_disk = engine.dialect.name == "sqlite" and database not in ("", ":memory:")
        self._key_reader = _SqliteKeyReader(database) if on_disk else None
        # Other databases: keys found, kept until ``forget_keys`` (the
        # authorizer calls it whenever the revision moves; key changes are
        # revisions like any other).
        self._keys: dict[str, ApiKey] = {}
        self._keys_generation = 0  # bumped by forget_keys

    def prepare_schema(self, *, create: bool = True) -> None:
        """An empty database gets the current schema (Alembic, to the head
        revision), or with ``create=False`` is NotFound; any other must be at
        that revision already, or this raises Unavailable saying to run
        ``orgguard db upgrade``."""
        if migrate.is_empty(self.engine):
            if not create:
                raise NotFound(
                    f"the database at {self.engine.url!r} holds no orgguard "
                    "schema (run 'orgguard serve', 'orgguard load' or "
                    "'orgguard db upgrade' first)"
                )
            migrate.upgrade(self.engine)
        else:
            migrate.require_current(self.engine)

    def revision(self, connection: Connection | None = None) -> int:
        if connection is not None:
            return _revision(connection)
        with self.reading() as own:
            return _revision(own)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads, in one transaction that sees one state of
        the database (PostgreSQL: REPEATABLE READ; SQLite: a read transaction)."""
        try:
            with self.engine.connect() as connection:
                connection = connection.execution_options(**READ_ONLY)
                if connection.dialect.name == "postgresql":
                    connection = connection.execution_options(
                        isolation_level="REPEATABLE READ"
                    )
                with connection.begin():
                    yield connection
        except (DBAPIError, SQLAlchemyTimeout) as error:
            raise _unreachable("read", error) from error

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction that holds the database's write lock from its
        first statement (SQLite: BEGIN IMMEDIATE), so what is read in it is what
        the write applies to, whichever process writes. Database errors become
        Conflict (a constraint) or Unavailable; nothing is left half-written."""
        try:
            connection = self.engine.connect()
        except (DBAPIError, SQLAlchemyTimeout) as error:
            raise _unreachable("write", error) from error
        with connection:
            try:
                with connection.begin() as transaction:
                    lock_writes(connection)
                    yield connection
                    # Committed here, not by the block's exit: a failure of
                    # the commit itself leaves the outcome unknown.
                    _commit(transaction)
            except _CommitFailed as failed:
                log.error("commit failed: %s", failed.__cause__)
                raise Unavailable(
                    "the database connection failed while committing: the write "
                    "may or may not be stored; read it back (or the audit trail) "
                    "before retrying"
                ) from failed.__cause__
            except IntegrityError as error:
                raise Conflict(
                    "the write conflicts with the stored policy; nothing was changed"
                ) from error
            except (DBAPIError, SQLAlchemyTimeout) as error:
                log.warning("write failed, rolled back: %s", error)
                raise Unavailable(
                    "the database could not complete the write; nothing was changed"
                ) from error

    def load(self, connection: Connection | None = None) -> Snapshot:
        """The whole policy in one read: plain rows, no ORM object per row."""
        if connection is None:
            with self.reading() as own:
                return self.load(own)
        snapshot = Snapshot()
        try:
            snapshot.revision = _revision(connection)
            for row in connection.execute(
                select(companies.c.id, companies.c.name, companies.c.parent).order_by(
                    companies.c.revision, companies.c.id
                )
            ):
                snapshot.companies.append(Company(row.id, row.name, row.parent))
            for row in connection.execute(select(custom_groups)):
                snapshot.groups.append(CustomGroup(row.company, row.id, row.name))
            _load_rules(connection, snapshot)
        except (DBAPIError, SQLAlchemyTimeout) as error:
            raise _unreachable("read", error) from error
        except connection.dialect.loaded_dbapi.Error as error:
            raise _unreachable("read", error) from error
        return snapshot

    @property
    def key_lookup_blocks(self) -> bool:
        """False when ``find_key`` is a local read of microseconds (SQLite),
        which an event loop may call directly."""
        return self._key_reader is None

    def find_key(self, key_id: str) -> ApiKey | None:
        """A key by its public id, revoked or not. On SQLite read from the file
        whenever any process committed since the last read; elsewhere kept from
        the last read until ``forget_keys``, so a revocation counts as soon as
        this process sees its revision, and a known key still authenticates
        while the database is unreachable."""
        if self._key_reader is not None:
            return self._key_reader.find(key_id)
        known = self._keys.get(key_id)
        if known is not None:
            return known
        generation = self._keys_generation
        try:
            with self.reading() as connection:
                row = connection.execute(
                    select(api_keys).where(api_keys.c.id == key_id)
                ).first()
        except (DBAPIError, SQLAlchemyTimeout) as error:
            raise _unreachable("read", error) from error
        if row is None:
            return None
        key = _api_key(row._mapping)
        if len(self._keys) >= _KEYS_KEPT:
            self._keys.clear()
        if generation == self._keys_generation:  # else it may predate a change
            self._keys[key_id] = key
        return key

    def key_known(self, key_id: str) -> bool:
        """Whether ``find_key`` answers without touching the database."""
        return self._key_reader is not None or key_id in self._keys

    def forget_keys(self) -> None:
        self._keys_generation += 1
        self._keys.clear()

    def close(self) -> None:
        if self._key_reader is not None:
            self._key_reader.close()
        self.engine.dispose()

    def list_keys(self) -> list[ApiKey]:
        with self.reading() as connection:
            rows = connection.execute(
                select(api_keys).order_by(api_keys.c.name, api_keys.c.created_at)
            )
            return [_api_key(row._mapping) for row in rows]

    def created_at_revision(self, company_ids: Iterable[str]) -> dict[str, int]:
        """The revision at which each existing company was created."""
        with self.reading() as connection:
            rows = connection.execute(
                select(companies.c.id, companies.c.revision).where(
                    companies.c.id.in_(sorted(company_ids))
                )
            )
            return {row.id: int(row.revision) for row in rows}

    def audit(self, query: AuditQuery) -> list[AuditRecord]:
        """Records, newest first. With ``query.companies``, an import's record
        (one for many companies) counts for each company it changed, and
        shows only that company's part."""
        statement = select(changes).order_by(changes.c.revision.desc())
        if query.companies is not None:
            statement = statement.where(
                or_(
                    false(),
                    *(
                        and_(changes.c.company == company, changes.c.revision >= since)
                        for company, since in sorted(query.companies.items())
                    ),
                    and_(
                        changes.c.company.is_(None),
                        changes.c.action == IMPORT_ACTION,
                    ),
                )
            )
        if query.actor is not None:
            statement = statement.where(changes.c.actor == query.actor)
        if query.since is not None:
            statement = statement.where(changes.c.at >= as_utc(query.since))
        if query.until is not None:
            statement = statement.where(changes.c.at < as_utc(query.until))
        if query.before_revision is not None:
            statement = statement.where(changes.c.revision < query.before_revision)
        found: list[AuditRecord] = []
        with self.reading() as connection:
            streamed = connection.execution_options(yield_per=200)
            with streamed.execute(statement) as rows:
                for row in rows:
                    record: AuditRecord | None = _audit_record(row)
                    if query.companies is not None and row.company is None:
                        record = _import_part(_audit_record(row), query.companies)
                    if record is not None:
                        found.append(record)
                    if len(found) == query.limit:
                        break
        return found

    def changes_after(
        self, revision: int, connection: Connection, limit: int
    ) -> list[tuple[int, Change | None]] | None:
        """The changes committed after ``revision``, in order, to replay; None
        if there are more than ``limit``. A change stored without its rows
        comes as None: the reader reloads the policy instead."""
        rows = connection.execute(
            select(changes.c.revision, changes.c.action, changes.c.ops)
            .where(changes.c.revision > revision)
            .order_by(changes.c.revision)
            .limit(limit + 1)
        ).all()
        if len(rows) > limit:
            return None
        return [
            (
                int(row.revision),
                None if row.ops is None else changelog.decode(row.action, row.ops),
            )
            for row in rows
        ]

    def changes_until(self, moment: datetime) -> list[tuple[int, Change | None]]:
        """Every change from the first up to the last made at or before
        ``moment`` (in revision order), to rebuild the policy as it was."""
        statement = (
            select(changes.c.revision, changes.c.action, changes.c.ops)
            .where(changes.c.at <= as_utc(moment))
            .order_by(changes.c.revision)
        )
        with self.reading() as connection:
            return [
                (
                    int(row.revision),
                    None if row.ops is None else changelog.decode(row.action, row.ops),
                )
                for row in connection.execute(statement)
            ]

    def undone_since(
        self, moment: datetime
    ) -> tuple[Snapshot, int, list[tuple[int, Change | None]]]:
        """The policy now, the revision it had at ``moment``, and the changes
        made after ``moment``, newest first, each as the change that undoes
        it (None where the log cannot say): read in one transaction."""
        with self.reading() as connection:
            snapshot = self.load(connection)
            then = connection.execute(
                select(func.max(changes.c.revision)).where(
                    changes.c.at <= as_utc(moment)
                )
            ).scalar()
            rows = connection.execute(
                select(changes.c.revision, changes.c.action, changes.c.ops)
                .where(changes.c.at > as_utc(moment))
                .order_by(changes.c.revision.desc())
            )
            undone: list[tuple[int, Change | None]] = []
            for row in rows:
                undo = None if row.ops is None else changelog.undo(row.ops)
                change = None if undo is None else changelog.decode(row.action, undo)
                undone.append((int(row.revision), change))
        return snapshot, int(then or 0), undone

    def rule_ids(self, rows: Iterable[casbin_rules.Row]) -> dict[casbin_rules.Row, int]:
        """The stored id of each rule found (the ``id`` of ``casbin_rule``)."""
        found = {}
        with self.reading() as connection:
            for row in rows:
                rule_id = connection.execute(
                    select(casbin_rule.c.id).where(*_rule_conditions(row))
                ).scalar()
                if rule_id is not None:
                    found[row] = int(rule_id)
        return found

    def membership_since(
        self, company: str, user: str, group: str, *, scan: int = 10_000
    ) -> AuditRecord | None:
        """The change that last added the user to the group in the company,
        from the change log's rows (None if the log cannot say: the change was
        stored without its rows, or lies beyond the last ``scan`` changes)."""
        wanted = list(casbin_rules.to_row(Membership(company, user, group)))
        statement = (
            select(changes)
            .where(or_(changes.c.company == company, changes.c.company.is_(None)))
            .order_by(changes.c.revision.desc())
            .limit(scan)
        )
        with self.reading() as connection:
            for row in connection.execute(statement):
                if row.ops is not None and wanted in row.ops["add_rules"]:
                    return _audit_record(row)
        return None

    def apply(self, change: Change, connection: Connection | None = None) -> int:
        """Write the change and return its revision: in ``connection``'s open
        transaction, or in a transaction of its own."""
        if connection is not None:
            return _write(connection, change)
        with self.transaction() as own:
            return _write(own, change)


class _CommitFailed(Exception):
    """The database failed while committing: the outcome is unknown."""


def _commit(transaction: RootTransaction) -> None:
    try:
        transaction.commit()
    except (DBAPIError, SQLAlchemyTimeout) as error:
        raise _CommitFailed from error


def _unreachable(what: str, error: Exception) -> Unavailable:
    """An error for callers that names no host, port or driver detail (those
    go to the service log)."""
    log.warning("cannot %s the database: %s", what, error)
    return Unavailable(f"the database cannot be reached to {what}; see the log")


def _import_part(record: AuditRecord, companies: dict[str, int]) -> AuditRecord | None:
    """An import's record as the given companies' admins see it: only their
    companies it changed (since each was created), and only their files'
    lines; None if it changed none of them."""
    after = record.after
    if not isinstance(after, dict):
        return None
    mine = sorted(
        company
        for company in after.get("companies", ())
        if company in companies and record.revision >= companies[company]
    )
    if not mine:
        return None
    files = tuple(f"companies/{company}.csv: " for company in mine)
    part = {
        "companies": mine,
        "prune": after.get("prune"),
        "added": [line for line in after.get("added", ()) if line.startswith(files)],
        "removed": [
            line for line in after.get("removed", ()) if line.startswith(files)
        ],
    }
    return dataclasses.replace(record, before=None, after=part)


def _audit_record(row: Any) -> AuditRecord:
    return AuditRecord(
        revision=row.revision,
        at=as_utc(row.at),
        actor=row.actor,
        action=row.action,
        company=row.company,
        request_id=row.request_id,
        before=row.before,
        after=row.after,
    )


def _revision(connection: Connection) -> int:
    value = connection.execute(
        select(changes.c.revision).order_by(changes.c.revision.desc()).limit(1)
    ).scalar()
    return int(value or 0)


def _load_rules(connection: Connection, snapshot: Snapshot) -> None:
    """Millions of rows: one scan in table order, as plain DBAPI tuples, in the
    caller's transaction (so they match the revision it read)."""
    decoder = casbin_rules.RowDecoder()
    cursor = connection.connection.cursor()
    try:
        cursor.execute(
            "SELECT ptype, v0, v1, v2, v3, v4, v5 FROM casbin_rule ORDER BY id"
        )
        while rows := cursor.fetchmany(10_000):
            decoder.add_rows(snapshot, rows)
    finally:
        cursor.close()


class _SqliteKeyReader:
    """Keys are read on every request. On SQLite they are read through one
    plain sqlite3 connection in autocommit mode, so each read sees the latest
    commit of any process, without a pool round trip.

    A key found once is kept until the database changes: SQLite's
    ``PRAGMA data_version`` moves whenever any other connection, in any
    process, commits, and reading it is cheaper than the key's row. So a
    revocation anywhere still counts at the very next request.
    """

    _QUERY = (
        "SELECT id, name, role, salt, digest, created_at, created_by, revoked_at "
        "FROM api_keys WHERE id = ?"
    )

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._version = -1
        self._found: dict[str, ApiKey] = {}

    def find(self, key_id: str) -> ApiKey | None:
        try:
            with self._lock:
                if self._connection is None:
                    self._connection = self._connect()
                version = self._connection.execute("PRAGMA data_version").fetchone()
                if version[0] != self._version:
                    self._version = version[0]
                    self._found.clear()
                known = self._found.get(key_id)
                if known is not None:
                    return known
                row = self._connection.execute(self._QUERY, (key_id,)).fetchone()
                if row is None:
                    return None
                key = self._found[key_id] = _api_key(row)
                if len(self._found) > _KEYS_KEPT:
                    self._found.clear()
                return key
        except sqlite3.Error as error:
            raise Unavailable(f"cannot read API keys: {error}") from error

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._path, check_same_thread=False, isolation_level=None
        )
        connection.row_factory = sqlite3.Row  # rows by column name, as below
        connection.execute("PRAGMA busy_timeout = 10000")
        connection.execute("PRAGMA query_only = ON")
        return connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _api_key(row: Any) -> ApiKey:
    """A key from its row, by column name: a SQLAlchemy row mapping, or a
    sqlite3.Row (which gives times as ISO text)."""
    revoked = row["revoked_at"]
    return ApiKey(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        salt=row["salt"],
        digest=row["digest"],
        created_at=_moment(row["created_at"]),
        created_by=row["created_by"],
        revoked_at=None if revoked is None else _moment(revoked),
    )


def _moment(value: datetime | str) -> datetime:
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _write(connection: Connection, change: Change) -> int:
    now = utcnow()
    # The removed companies' records, so the log can undo the change too.
    dropped = (
        [
            Company(row.id, row.name, row.parent)
            for row in connection.execute(
                select(companies.c.id, companies.c.name, companies.c.parent).where(
                    companies.c.id.in_(change.remove_companies)
                )
            )
        ]
        if change.remove_companies
        else []
    )
    inserted = connection.execute(
        insert(changes).values(
            at=now,
            action=change.action,
            company=change.company,
            actor=change.actor,
            request_id=change.request_id,
            before=change.before,
            after=change.after,
            detail=change.summary(),
            ops=changelog.encode(change, dropped),
        )
    ).inserted_primary_key
    assert inserted is not None
    revision = inserted[0]
    if connection.dialect.name == "postgresql":
        # Delivered to every listening replica when (and only if) this commits.
        connection.execute(
            text("SELECT pg_notify(:channel, :revision)"),
            {"channel": CHANNEL, "revision": str(revision)},
        )

    for key_id in change.revoke_keys:
        revoked = connection.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        if revoked != 1:
            raise Conflict(f"API key {key_id} is not active; nothing was changed")
    if change.add_keys:
        connection.execute(
            insert(api_keys),
            [
                {
                    "id": key.id,
                    "name": key.name,
                    "role": key.role,
                    "salt": key.salt,
                    "digest": key.digest,
                    "created_at": key.created_at,
                    "created_by": key.created_by,
                }
                for key in change.add_keys
            ],
        )

    removed: list[casbin_rules.Rule] = [
        *change.remove_roles,
        *change.remove_members,
        *change.remove_grants,
    ]
    for rule in removed:
        _delete_rule(connection, casbin_rules.to_row(rule))
    for group in change.remove_groups:
        connection.execute(
            delete(custom_groups).where(
                custom_groups.c.company == group.company,
                custom_groups.c.id == group.id,
            )
        )
    for company_id in change.remove_companies:
        connection.execute(delete(companies).where(companies.c.id == company_id))

    if change.add_companies:
        connection.execute(
            insert(companies),
            [
                {"id": c.id, "name": c.name, "parent": c.parent, "revision": revision}
                for c in change.add_companies
            ],
        )
    if change.add_groups:
        connection.execute(
            insert(custom_groups),
            [
                {"company": g.company, "id": g.id, "name": g.name}
                for g in change.add_groups
            ],
        )
    added: list[casbin_rules.Rule] = [
        *change.add_catalogue,
        *change.add_grants,
        *change.add_members,
        *change.add_platform,
        *change.add_roles,
    ]
    if added:
        connection.execute(
            insert(casbin_rule), [_row_values(casbin_rules.to_row(r)) for r in added]
        )
    return int(revision)


def _row_values(row: casbin_rules.Row) -> dict[str, str | None]:
    values: dict[str, str | None] = dict.fromkeys(_FIELDS)
    values["ptype"] = row[0]
    values.update(zip(_FIELDS, row[1:], strict=False))
    return values


def _rule_conditions(row: casbin_rules.Row) -> list[ColumnElement[bool]]:
    """The rule, as the expressions of ux_casbin_rule_line, with '' as a
    literal (not a bound parameter), so both databases find it by that index."""
    values = _row_values(row)
    empty = literal_column("''", String)
    conditions = [casbin_rule.c.ptype == values.pop("ptype")]
    conditions += [
        func.coalesce(casbin_rule.c[name], empty) == (value or "")
        for name, value in values.items()
    ]
    return conditions


def _delete_rule(connection: Connection, row: casbin_rules.Row) -> None:
    conditions = _rule_conditions(row)
    deleted = connection.execute(delete(casbin_rule).where(and_(*conditions))).rowcount
    if deleted != 1:
        # Memory and database disagree: refuse rather than write on a stale view.
        raise Conflict(
            f"rule {casbin_rules.format_row(row)!r} is not stored; nothing was changed"
        )
