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
        (
            "companies/initech.csv",
            ["p, group:admin, initech, reports, read, company"],
            "'admin' is a predefined group: its permissions are the shared template",
        ),
        ("companies/globex.csv", ["# group bad*: Bad"], "'bad*' is not a valid group"),
        ("companies/globex.csv", ["# group x:"], "the name of group 'x' must be"),
        ("companies/globex.csv", ["# name: Again"], "a second '# name:' line"),
        ("companies/globex.csv", ["# parent: a*b"], "'a*b' is not a valid company"),
        ("companies/globex.csv", ["# company: initech"], "a second '# company:'"),
        ("platform.csv", ["g2, key:storefront, role:checker"], "an API key gets"),
        ("platform.csv", ["g2, kim@x.example, role:nobody"], "'nobody' has no p3"),
        ("platform.csv", ["p3, role:checker, orders, read"], "unknown admin action"),
        ("platform.csv", ["p, group:admin, *, orders, read, company"], "only p3 and"),
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


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("a,b.csv", "# company: a,b\n# name: AB\n", "a,b.csv: the file name is not"),
        ("newco.csv", "# company: other\n# name: N\n", "newco.csv:1: the header must"),
        ("newco.csv", "# name: N\n", "newco.csv:1: the header must say"),
        ("newco.csv", "# company: newco\n# name:  \n", "newco.csv:2: header '# name:'"),
        ("newco.csv", "# company: newco\n", "newco.csv: header '# name:' name must"),
        (
            "newco.csv",
            "# company: newco\n# name: N\n# revision: 3a\n",
            "newco.csv:3: '# revision:' must be a whole number",
        ),
    ],
)
def test_read_policy_dir_reports_header_problem(
    policy: Path, name: str, text: str, problem: str
) -> None:
    (policy / "companies" / name).write_text(text, encoding="utf-8")

    with pytest.raises(PolicyFileError) as raised:
        read_policy_dir(policy)

    assert any(problem in p for p in raised.value.problems), raised.value.problems


def test_read_policy_dir_reports_every_problem_with_its_line(policy: Path) -> None:
    add_lines(
        policy / "companies" / "globex.csv",
        "# group admin: Mine",
        "# parent: nowhere",
        "g, bob, group:buyer, globex",
    )
    lines = len((policy / "companies" / "globex.csv").read_text().splitlines())

    with pytest.raises(PolicyFileError) as raised:
        read_policy_dir(policy)

    where = f"{policy / 'companies' / 'globex.csv'}"
    assert raised.value.problems == [
        f"{where}:{lines - 2}: 'admin' is a predefined group id",
        f"{where}:{lines}: 'bob' is a member but not in group contact",
        f"{where}:{lines - 1}: parent 'nowhere' does not exist",
    ]


def test_read_policy_dir_accepts_parents_stored_elsewhere(policy: Path) -> None:
    (policy / "companies" / "acme.csv").unlink()
    with pytest.raises(PolicyFileError):
        read_policy_dir(policy)

    snapshot = read_policy_dir(policy, other_companies=["acme"])

    assert "acme" not in {c.id for c in snapshot.companies}


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


@pytest.mark.parametrize("breaker", ["\u2028", "\r", "\x85", "\x0c", "\x1e", "\x00"])
def test_a_rule_hidden_in_a_comment_by_an_odd_line_break_is_refused(
    tmp_path: Path, breaker: str
) -> None:
    """Casbin splits files at "\\n" only: a line that other readers would
    break elsewhere (and so read a rule where Casbin reads a comment) is
    refused, naming the character."""
    policy = tmp_path / "policies"
    shutil.copytree(POLICIES, policy)
    with (policy / "companies" / "globex.csv").open("a", encoding="utf-8") as file:
        file.write(f"# reviewed{breaker}g, evil@x.example, group:admin, globex\n")

    with pytest.raises(PolicyFileError) as raised:
        read_policy_dir(policy)

    [problem] = raised.value.problems
    assert f"holds the control character U+{ord(breaker):04X}" in problem


def test_crlf_and_a_byte_order_mark_are_read_as_casbin_reads_them(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policies"
    shutil.copytree(POLICIES, policy)
    path = policy / "companies" / "globex.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))

    assert read_policy_dir(policy) == read_policy_dir(POLICIES)
