"""Faults of the Casbin SQLAlchemy adapter that orgguard works around.

Each test pins the adapter's behaviour as it is in the pinned version, beside
the store's behaviour for the same operation. If an upgrade fixes a fault, its
test fails: then the workaround in orgguard.storage.store can be reconsidered.
"""

from __future__ import annotations

from pathlib import Path

import casbin
import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy_adapter import Adapter

from orgguard.errors import Unavailable
from orgguard.policy.model import Change, Company, Membership
from orgguard.storage.schema import casbin_rule
from orgguard.storage.store import PolicyStore
from tests.conftest import MODEL


def rows(url: str) -> set[tuple[str | None, ...]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = {
            tuple(row)
            for row in connection.execute(
                select(
                    casbin_rule.c.ptype,
                    casbin_rule.c.v0,
                    casbin_rule.c.v1,
                    casbin_rule.c.v2,
                )
            )
        }
    engine.dispose()
    return found


def test_adapter_remove_policies_deletes_the_cross_product(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'adapter.db'}"
    adapter = Adapter(url)
    keep = ["alice", "group:admin", "globex"]  # another company's admin
    batch = [["alice", "group:buyer", "acme"], ["bob", "group:admin", "globex"]]
    adapter.add_policies("g", "g", [*batch, keep])

    adapter.remove_policies("g", "g", batch)

    # Fault: the row of another company that was never named is gone too.
    assert ("g", *keep) not in rows(url)


def test_store_removes_exactly_the_named_rules(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = PolicyStore(create_engine(url))
    store.prepare_schema()
    setup = Change(
        "setup",
        add_companies=[Company("acme", "A", None), Company("globex", "G", None)],
    )
    keep = Membership("globex", "alice", "admin")
    batch = [Membership("acme", "alice", "buyer"), Membership("globex", "bob", "admin")]
    setup.add_members = [*batch, keep]
    store.apply(setup)

    store.apply(Change("remove", remove_members=batch))

    assert rows(url) == {("g", "alice", "group:admin", "globex")}


def test_adapter_add_policies_is_not_atomic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'adapter.db'}"
    adapter = Adapter(url)
    inserts = 0

    def fail_third_insert(*_args: object) -> None:
        nonlocal inserts
        if _args[2].startswith("INSERT"):
            inserts += 1
            if inserts == 3:
                raise RuntimeError("disk full")

    event.listen(adapter._engine, "before_cursor_execute", fail_third_insert)
    batch = [
        ["u1", "group:buyer", "acme"],
        ["u2", "group:buyer", "acme"],
        ["u3", "group:buyer", "acme"],
    ]

    with pytest.raises(RuntimeError):
        adapter.add_policies("g", "g", batch)

    # Fault: half of a failed batch stays committed.
    assert len(rows(url)) == 2


def test_store_failed_batch_leaves_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = PolicyStore(create_engine(url))
    store.prepare_schema()
    store.apply(Change("setup", add_companies=[Company("acme", "A", None)]))
    engine = store.engine

    def fail(*args: object) -> None:
        if str(args[2]).startswith("INSERT INTO casbin_rule"):
            raise RuntimeError("disk full")

    event.listen(engine, "before_cursor_execute", fail)
    batch = [Membership("acme", f"u{i}", "buyer") for i in range(3)]

    with pytest.raises((Unavailable, RuntimeError)):
        store.apply(Change("add", add_members=batch))

    event.remove(engine, "before_cursor_execute", fail)
    assert rows(url) == set()
    assert store.revision() == 1


def test_adapter_load_splits_values_on_commas(tmp_path: Path) -> None:
    """Why ids may never hold a comma: the adapter's load re-parses joined text."""
    url = f"sqlite:///{tmp_path / 'adapter.db'}"
    adapter = Adapter(url)
    adapter.add_policy("g", "g", ["mallory, group:admin", "group:contact", "acme"])

    enforcer = casbin.Enforcer(str(MODEL), adapter)

    # The one stored value came back as two fields: a different, longer rule.
    assert enforcer.get_grouping_policy() == [
        ["mallory", "group:admin", "group:contact", "acme"]
    ]


def test_adapter_stores_duplicate_rules(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'adapter.db'}"
    adapter = Adapter(url)
    rule = ["alice", "group:buyer", "acme"]

    adapter.add_policy("g", "g", rule)
    adapter.add_policy("g", "g", rule)

    engine = create_engine(url)
    with engine.connect() as connection:
        count = len(list(connection.execute(select(casbin_rule.c.id))))
    engine.dispose()
    assert count == 2  # Fault: no uniqueness, two rows for one rule.
