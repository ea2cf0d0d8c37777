"""Acknowledged writes survive a restart; failed writes change nothing anywhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from orgguard.errors import Conflict, InvalidInput, Unavailable
from orgguard.policy.model import Permission
from orgguard.service import Authorizer
from orgguard.settings import Settings
from orgguard.storage.schema import casbin_rule, changes, companies
from tests.conftest import OPERATOR, reopen


def state(authorizer: Authorizer) -> dict[str, Any]:
    """Everything a caller can observe, in comparable form."""
    index = authorizer.index
    return {
        "companies": dict(index.companies),
        "groups": {c: dict(g) for c, g in index.groups.items()},
        "members": {c: dict(m) for c, m in index.members.items() if m},
        "custom": {k: dict(v) for k, v in index.custom.items() if v},
        "templates": {k: dict(v) for k, v in index.templates.items()},
        "catalogue": dict(index.catalogue),
        "user_companies": {u: set(c) for u, c in index.user_companies.items()},
        "platform": dict(index.platform),
        "roles": dict(index.roles),
        "revision": index.revision,
    }


def decisions(authorizer: Authorizer) -> list[bool]:
    users = [*sorted(authorizer.index.user_companies), "ghost@x.example"]
    companies_ = sorted(authorizer.index.companies)
    permissions: list[Permission] = sorted(authorizer.index.catalogue)
    return [
        authorizer.check(user, company, p.resource, p.action, owner).allowed
        for user in users
        for company in companies_
        for p in permissions
        for owner in (None, user)
    ]


def write_a_lot(authorizer: Authorizer) -> None:
    authorizer.create_company(OPERATOR, "newco", "New Co", "globex")
    authorizer.create_group(
        OPERATOR, "newco", "ops", "Ops", ["orders:read:own", "reports:read"]
    )
    authorizer.set_member(OPERATOR, "newco", "pat@newco.example", ["buyer", "ops"])
    authorizer.set_member(OPERATOR, "globex", "pat@newco.example", ["admin"])
    authorizer.update_group(
        OPERATOR, "globex", "approvers", "Approvers", ["orders:read"]
    )
    authorizer.delete_member(OPERATOR, "acme", "carol@acme.example")
    authorizer.delete_group(OPERATOR, "acme", "finance")
    authorizer.delete_company(OPERATOR, "acme-north", cascade=False)


def test_writes_survive_restart_with_identical_decisions(
    authorizer: Authorizer, settings: Settings
) -> None:
    write_a_lot(authorizer)

    restarted = reopen(settings)

    assert state(restarted) == state(authorizer)
    assert decisions(restarted) == decisions(authorizer)
    assert restarted.check("pat@newco.example", "newco", "reports", "read").allowed


def test_concurrent_identical_writes_store_one_row(
    authorizer: Authorizer, settings: Settings
) -> None:
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def create_and_join() -> None:
        barrier.wait()
        try:
            authorizer.create_company(OPERATOR, "race", "Race", None)
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")
        authorizer.set_member(OPERATOR, "race", "sam@race.example", ["buyer"])

    threads = [threading.Thread(target=create_and_join) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["conflict"] * 7 + ["created"]
    with authorizer.store.engine.connect() as connection:
        memberships = connection.execute(
            select(func.count()).where(
                casbin_rule.c.ptype == "g", casbin_rule.c.v0 == "sam@race.example"
            )
        ).scalar()
        rows = connection.execute(
            select(func.count()).where(companies.c.id == "race")
        ).scalar()
    assert (memberships, rows) == (2, 1)  # buyer and contact, once each
    assert state(reopen(settings)) == state(authorizer)


def test_a_write_first_catches_up_with_another_process(
    authorizer: Authorizer, settings: Settings
) -> None:
    other = reopen(settings)  # a second process on the same database (the CLI)
    other.set_member(OPERATOR, "initech", "kim@initech.example", ["buyer"])
    other.create_company(OPERATOR, "elsewhere", "Made elsewhere", None)
    assert "elsewhere" not in authorizer.index.companies  # not yet seen

    revision = authorizer.set_member(
        OPERATOR, "initech", "kim@initech.example", ["buyer"]
    )

    # It validated against the other process's writes: the same membership is
    # a no-op, not a conflict, and the other company is there.
    assert revision == other.revision
    assert "elsewhere" in authorizer.index.companies
    assert state(authorizer) == state(reopen(settings))


def test_refresh_replays_another_process_s_changes_from_the_log(
    authorizer: Authorizer, settings: Settings
) -> None:
    index = authorizer.index
    assert authorizer.refresh() is False  # nothing new

    other = reopen(settings)
    other.delete_member(OPERATOR, "acme", "carol@acme.example")
    other.create_company(OPERATOR, "newco", "New Co", "acme")
    other.set_member(OPERATOR, "newco", "kim@newco.example", ["buyer"])

    assert authorizer.refresh() is True
    assert authorizer.index is index  # replayed in place, not reloaded
    assert authorizer.revision == other.revision
    assert state(authorizer) == state(reopen(settings))


def test_a_change_stored_without_its_rows_makes_readers_reload(
    authorizer: Authorizer, settings: Settings
) -> None:
    """The log keeps no rows for a very large change (or one written before
    the log had them): a replica reloads the whole policy then."""
    index = authorizer.index
    other = reopen(settings)
    other.delete_member(OPERATOR, "acme", "carol@acme.example")
    with other.store.engine.begin() as connection:
        connection.execute(update(changes).values(ops=None))

    assert authorizer.refresh() is True
    assert authorizer.index is not index  # swapped whole
    assert "carol@acme.example" in index.members["acme"]  # old readers unharmed
    assert state(authorizer) == state(reopen(settings))


def test_two_processes_demoting_each_others_admins_leave_one(
    authorizer: Authorizer, settings: Settings
) -> None:
    """Two servers on one database, each asked to remove the other admin at the
    same moment: the guard holds across processes because each write decides
    inside the database's write transaction, on state caught up in it."""
    other = reopen(settings)
    rounds = 12
    for n in range(rounds):
        company = f"duel-{n}"
        authorizer.create_company(OPERATOR, company, "Duel", None)
        for admin in ("a1@x.example", "a2@x.example"):
            authorizer.set_member(OPERATOR, company, admin, ["admin"])

    outcomes: list[str] = []

    def remove(
        server: Authorizer, company: str, user: str, go: threading.Barrier
    ) -> None:
        go.wait()
        try:
            server.delete_member(OPERATOR, company, user)
            outcomes.append("removed")
        except Conflict:
            outcomes.append("refused")

    for n in range(rounds):
        go = threading.Barrier(2)
        threads = [
            threading.Thread(
                target=remove, args=(authorizer, f"duel-{n}", "a1@x.example", go)
            ),
            threading.Thread(
                target=remove, args=(other, f"duel-{n}", "a2@x.example", go)
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(outcomes) == ["refused"] * rounds + ["removed"] * rounds
    fresh = reopen(settings)
    for n in range(rounds):
        admins = [
            u for u, g in fresh.index.members[f"duel-{n}"].items() if "admin" in g
        ]
        assert len(admins) == 1
    # Neither process skipped the other's writes.
    authorizer.refresh()
    other.refresh()
    assert state(authorizer) == state(other) == state(fresh)


def test_a_commit_never_skips_another_process_write(
    authorizer: Authorizer, settings: Settings
) -> None:
    other = reopen(settings)
    other.set_member(OPERATOR, "initech", "kim@initech.example", ["buyer"])

    authorizer.set_member(OPERATOR, "globex", "pat@x.example", ["buyer"])

    # No refresh: the write itself caught up before committing.
    assert "kim@initech.example" in authorizer.index.members["initech"]
    assert state(authorizer) == state(reopen(settings))


@pytest.fixture
def fail_on(authorizer: Authorizer) -> Iterator[list[str]]:
    """Make the database fail the first statement containing any listed text."""
    triggers: list[str] = []

    def before_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        for trigger in triggers:
            if trigger in statement:
                triggers.remove(trigger)
                raise RuntimeError(f"injected failure on: {statement[:60]}")

    engine = authorizer.store.engine
    event.listen(engine, "before_cursor_execute", before_execute)
    yield triggers
    event.remove(engine, "before_cursor_execute", before_execute)


@pytest.mark.parametrize(
    ("trigger", "write"),
    [
        # Company creation: the change-log row is written, then the company row.
        (
            "INSERT INTO companies",
            lambda a: a.create_company(OPERATOR, "x", "X", "acme"),
        ),
        # Setting groups: old rules removed, then new ones inserted.
        (
            "INSERT INTO casbin_rule",
            lambda a: a.set_member(OPERATOR, "acme", "carol@acme.example", ["admin"]),
        ),
        # Cascade delete: many rule deletes, then the company rows.
        (
            "DELETE FROM companies",
            lambda a: a.delete_company(OPERATOR, "acme", cascade=True),
        ),
        (
            "INSERT INTO casbin_rule",
            lambda a: a.create_group(OPERATOR, "acme", "g", "G", ["orders:read"]),
        ),
    ],
)
def test_failure_mid_write_changes_nothing(
    authorizer: Authorizer,
    settings: Settings,
    fail_on: list[str],
    trigger: str,
    write: Any,
) -> None:
    before = state(authorizer)
    fail_on.append(trigger)

    with pytest.raises((Unavailable, RuntimeError)):
        write(authorizer)

    assert fail_on == []  # the failure did happen, in the middle of the write
    assert state(authorizer) == before
    assert state(reopen(settings)) == before
    write(authorizer)  # and the same write succeeds once the fault is gone
    assert state(reopen(settings)) == state(authorizer)


@pytest.mark.parametrize(
    "row",
    [
        ("g", "bad user!", "group:buyer", "acme", None),
        ("g", "x@acme.example", "buyer", "acme", None),
        ("g", "x@acme.example", "group:buyer", "acme", "extra"),
        ("g", "x@acme.example", "group:buyer", "*", None),
        ("p", "group:buyer", "acme", "orders", "read", "forever"),
        ("p9", "x", None, None, None),
    ],
)
def test_a_tampered_row_in_the_database_is_refused_at_load(
    authorizer: Authorizer, settings: Settings, row: tuple[str | None, ...]
) -> None:
    """The load path decodes memberships inline for speed; it still validates
    every row, and names the bad one."""
    values = dict(zip(("ptype", "v0", "v1", "v2", "v3", "v4"), row, strict=False))
    with authorizer.store.engine.begin() as connection:
        connection.execute(casbin_rule.insert().values(**values))

    with pytest.raises(InvalidInput, match="stored rule"):
        reopen(settings)


def test_a_failed_commit_says_the_outcome_is_unknown_and_is_caught_up(
    authorizer: Authorizer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops after the database committed but before it said
    so: the caller is told the write may be stored, memory is left alone, and
    the next catch-up brings in whatever the database holds."""
    dialect = authorizer.store.engine.dialect
    real_commit = dialect.do_commit

    def commit_then_fail(dbapi_connection: Any) -> None:
        real_commit(dbapi_connection)
        raise dialect.loaded_dbapi.OperationalError("connection lost")

    monkeypatch.setattr(dialect, "do_commit", commit_then_fail)
    before = authorizer.revision
    with pytest.raises(Unavailable, match="may or may not be stored"):
        authorizer.set_member(OPERATOR, "acme", "kim@acme.example", ["buyer"])
    monkeypatch.undo()

    assert authorizer.revision == before
    assert "kim@acme.example" not in authorizer.index.members["acme"]
    assert authorizer.refresh() is True
    assert authorizer.index.members["acme"]["kim@acme.example"] == (
        "buyer",
        "contact",
    )
