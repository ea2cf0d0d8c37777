"""The service decides exactly as plain pycasbin does, on the files and on the DB."""

from __future__ import annotations

import itertools
from pathlib import Path

import casbin
from casbin.core_enforcer import EnforceContext
from sqlalchemy_adapter import Adapter

from orgguard.access import Caller
from orgguard.policy.actions import ADMIN_ACTIONS, COMPANY_ACTIONS
from orgguard.policy.files import read_policy_dir
from orgguard.service import Authorizer
from orgguard.settings import Settings
from tests.conftest import MODEL, POLICIES


def policy_files(directory: Path = POLICIES) -> list[Path]:
    return [
        directory / "catalogue.csv",
        directory / "templates.csv",
        directory / "platform.csv",
        *sorted((directory / "companies").glob("*.csv")),
    ]


def files_enforcer(tmp_path: Path, directory: Path = POLICIES) -> casbin.Enforcer:
    """Plain pycasbin over the model and a policy directory's files."""
    combined = tmp_path / "all.csv"
    combined.write_text(
        "\n".join(path.read_text(encoding="utf-8") for path in policy_files(directory)),
        encoding="utf-8",
    )
    return casbin.Enforcer(str(MODEL), str(combined))


def demo_requests() -> list[tuple[str, str, str, str, str | None]]:
    snapshot = read_policy_dir(POLICIES)
    users = [*sorted({m.user for m in snapshot.members}), "stranger@nowhere.example"]
    companies = [c.id for c in snapshot.companies] + ["no-such-company"]
    permissions = [e.permission for e in snapshot.catalogue]
    permissions.append(type(permissions[0])("orders", "delete"))
    requests = []
    for user, company, permission in itertools.product(users, companies, permissions):
        for owner in (None, user, "someone-else@x.example"):
            requests.append(
                (user, company, permission.resource, permission.action, owner)
            )
    return requests


def test_demo_is_large_enough() -> None:
    snapshot = read_policy_dir(POLICIES)
    parents = [c.parent for c in snapshot.companies if c.parent]
    users = {m.user for m in snapshot.members}
    companies_of: dict[str, set[str]] = {}
    for m in snapshot.members:
        companies_of.setdefault(m.user, set()).add(m.company)
    groups_by_user_company = {
        (m.user, m.company): m.group for m in snapshot.members if m.group != "contact"
    }
    multi = [u for u, cs in companies_of.items() if len(cs) > 1]

    assert len(snapshot.companies) >= 6
    assert max(parents.count(p) for p in parents) >= 2
    assert len(users) >= 40
    assert len(snapshot.groups) >= 3
    assert any(
        len({groups_by_user_company.get((u, c)) for c in companies_of[u]}) > 1
        for u in multi
    )


def test_check_equals_pycasbin_on_files_and_database(
    tmp_path: Path, authorizer: Authorizer, settings: Settings
) -> None:
    from_files = files_enforcer(tmp_path)
    from_database = casbin.Enforcer(str(MODEL), Adapter(settings.database_url))
    requests = demo_requests()
    assert len(requests) > 5000

    mismatches = []
    allowed = 0
    for request in requests:
        user, company, resource, action, owner = request
        ours = authorizer.check(user, company, resource, action, owner).allowed
        rvals = (user, company, resource, action, owner or "")
        if not ours == from_files.enforce(*rvals) == from_database.enforce(*rvals):
            mismatches.append(request)
        allowed += ours
    assert mismatches == []
    # Both answers occur, in numbers, so the comparison says something.
    assert 500 < allowed < len(requests) - 500


def test_admin_decisions_equal_pycasbin(
    tmp_path: Path, authorizer: Authorizer, settings: Settings
) -> None:
    """The gate: platform roles by m2, company admins by m in the company or,
    with inheritance, in one of its parents (the gate's only addition)."""
    authorizer.store.engine.dispose()
    from_database = casbin.Enforcer(str(MODEL), Adapter(settings.database_url))
    platform = EnforceContext("r2", "p3", "e2", "m2")
    snapshot = read_policy_dir(POLICIES)
    parents = {c.id: c.parent for c in snapshot.companies}
    people = sorted(
        {m.user for m in snapshot.members} | {r.subject for r in snapshot.roles}
    )
    companies = [*parents, "no-such-company"]
    index = authorizer.index

    mismatches, allowed, total = [], 0, 0
    for user, action in itertools.product(people, sorted(ADMIN_ACTIONS)):
        caller = Caller(user, "user")
        on_platform = from_database.enforce(
            platform, user, action.resource, action.action
        )
        for company in [None, *companies]:
            chain, current = [], company
            while current is not None:
                chain.append(current)
                current = parents.get(current)
            expected = on_platform or (
                action in COMPANY_ACTIONS
                and any(
                    from_database.enforce(user, c, action.resource, action.action, "")
                    for c in chain
                )
            )
            ours = authorizer.gate.allows(index, caller, action, company)
            total += 1
            allowed += ours
            if ours != expected:
                mismatches.append((user, str(action), company))
    assert mismatches == []
    assert 200 < allowed < total - 200
