"""Policy files: every problem reported with its file and line, all at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orgguard.errors import PolicyFileError
from orgguard.policy.files import read_policy_dir
from tests.conftest import POLICIES


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(POLICIES, copy)
    return copy


def add_lines(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("file", "lines", "problem"),
    [
        (
            "companies/initech.csv",
            ["g, bob, group:buyer"],
            "has 3 fields, this one has 2",
        ),
        ("companies/initech.csv", ["g, bob*, group:buyer, initech"], "user must be"),
        (
            "companies/initech.csv",
            ["g, bob, group:nope, initech"],
            "unknown group 'nope'",
        ),
        ("companies/initech.csv", ["g, bob, group:buyer, acme"], "must be in company"),
        ("companies/initech.csv", ["g, bob, buyer, initech"], "a group is written"),
        (
            "companies/initech.csv",
            [
                "g, bob, group:buyer, initech",
                "g, bob, group:admin, initech",
                "g, bob, group:contact, initech",
            ],
            "holds admin and buyer",
        ),
        (
            "companies/initech.csv",
            ["g, bob, group:buyer, initech"],
            "not in group contact",
        ),
        (
            "companies/initech.csv",
            ["p, group:x, initech, orders, read, company"],
            "custom group 'x' has no header line",
        ),
        (
            "companies/globex.csv",
            ["p, group:approvers, globex, orders, fly, company"],
            "unknown permission orders:fly",
        ),
        (
            "companies/globex.csv",
            ["p, group:approvers, globex, users, manage, own"],
            "cannot be limited to own",
        ),
        (
            "companies/globex.csv",
            ["p, group:approvers, globex, orders, read, company"],
            "duplicate of the rule at",
        ),
        ("companies/globex.csv", ["# group admin: Mine"], "is a predefined group id"),
        (
            "companies/globex.csv",
            ["# parent: nowhere"],
            "parent 'nowhere' does not exist",
        ),
        (
            "templates.csv",
            ["p, group:admin, acme, orders, read, company"],
            "templates hold only p rules with domain *",
        ),
        ("catalogue.csv", ["p2, orders, read"], "has 3 fields, this one has 2"),
    ],
)
def test_read_policy_dir_reports_problem(
    policy: Path, file: str, lines: list[str], problem: str
) -> None:
    add_lines(policy / file, *lines)

    with pytest.raises(PolicyFileError) as raised:
        read_policy_dir(policy)

    assert any(problem in p for p in raised.value.problems), raised.value.problems
    assert all(p.startswith(str(policy)) for p in raised.value.problems)


def test_read_policy_dir_finds_parent_cycles(policy: Path) -> None:
    add_lines(policy / "companies" / "globex.csv", "# parent: initech")
    add_lines(policy / "companies" / "initech.csv", "# parent: globex")

    with pytest.raises(PolicyFileError) as raised:
        read_policy_dir(policy)

    assert sum("cycle" in p for p in raised.value.problems) == 2


def test_read_policy_dir_orders_parents_first() -> None:
    snapshot = read_policy_dir(POLICIES)

    seen: set[str] = set()
    for company in snapshot.companies:
        assert company.parent is None or company.parent in seen
        seen.add(company.id)
