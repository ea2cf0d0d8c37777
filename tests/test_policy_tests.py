"""Policy tests: the YAML runner, and policies/tests/ run over the demo policy.

``make test`` runs this file, so the demo's policy tests hold at every commit,
decided from the files and from the service's database alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orgguard.errors import PolicyFileError
from orgguard.policy.files import read_policy_dir
from orgguard.policy.index import PolicyIndex
from orgguard.policy.testing import read_tests, run_tests
from orgguard.service import Authorizer
from tests.conftest import POLICIES
from tests.servers import Place, cli

TEST_FILES = sorted((POLICIES / "tests").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "case.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_has_policy_tests() -> None:
    names = [path.name for path in TEST_FILES]
    assert "predefined-groups.yaml" in names and "demo.yaml" in names
    assert len(read_tests(TEST_FILES)) >= 40


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda path: path.name)
def test_demo_policy_tests_pass_on_files_and_database(
    path: Path, authorizer: Authorizer
) -> None:
    checks = read_tests([path])
    from_files = PolicyIndex.from_snapshot(read_policy_dir(POLICIES)).decide

    for decide in (from_files, authorizer.check):
        failures = [o.report() for o in run_tests(decide, checks) if not o.passed]
        assert failures == []


def test_failing_case_fails_with_the_reason(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cases:\n"
        "  - name: buyers read every order\n"
        "    user: carol@acme.example\n"
        "    company: acme\n"
        "    resource: orders\n"
        "    action: read\n"
        "    expect: allow\n",
    )
    decide = PolicyIndex.from_snapshot(read_policy_dir(POLICIES)).decide

    [outcome] = run_tests(decide, read_tests([path]))

    assert not outcome.passed
    assert outcome.report() == (
        f"FAIL {path}:2 buyers read every order: carol@acme.example orders:read "
        "in acme: expected allow, denied: group 'buyer' grants orders:read only on "
        "resources 'carol@acme.example' owns, and no owner was given"
    )


def test_table_expands_one_case_over_many_users(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cases:\n"
        "  - {company: acme, resource: orders, action: read, owner: $user,\n"
        "     expect: {allow: [carol@acme.example, omar@acme.example],\n"
        "              deny: [heidi@acme.example]}}\n"
        "  - {company: acme, resource: company, action: read, expect: allow,\n"
        "     users: [alice@acme.example, heidi@acme.example]}\n",
    )

    checks = read_tests([path])

    assert [(c.user, c.owner, c.allowed) for c in checks] == [
        ("carol@acme.example", "carol@acme.example", True),
        ("omar@acme.example", "omar@acme.example", True),
        ("heidi@acme.example", "heidi@acme.example", False),
        ("alice@acme.example", None, True),
        ("heidi@acme.example", None, True),
    ]
    assert {c.where for c in checks} == {f"{path}:2", f"{path}:5"}


BASE = "company: acme, resource: orders, action: read"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("cases: [{user: a@x, " + BASE + ", expect: allow, color: red}]", "color"),
        (
            "cases: [{user: a@x, resource: orders, action: read, expect: allow}]",
            "company is",
        ),
        ("cases: [{user: a@x, " + BASE + ", expect: maybe}]", "expect must be"),
        (
            "cases: [{user: a@x, users: [b@x], " + BASE + ", expect: deny}]",
            "one of user",
        ),
        ("cases: [{" + BASE + ", expect: deny}]", "give one of user or users"),
        ("cases: [{user: 'a b', " + BASE + ", expect: deny}]", "user[0] must be"),
        ("cases: [{user: a@x, " + BASE + ", owner: '*', expect: deny}]", "owner must"),
        (
            "cases: [{user: a@x, company: '*', resource: o, action: r, expect: deny}]",
            "company must",
        ),
        (
            "cases: [{" + BASE + ", expect: {maybe: [a@x]}}]",
            "allow and/or deny",
        ),
        (
            "cases: [{user: a@x, " + BASE + ", expect: {allow: [a@x]}}]",
            "not also as user",
        ),
        ("cases: [plain]", "a case is a mapping"),
        ("cases: {}", "a list of 'cases'"),
        ("cases: [", "not valid YAML"),
        ("cases: [{user: a@x, " + BASE + ", expect: [allow]}]", "expect must be"),
        ("cases: [{user: a@x, " + BASE + ", expect: allow}]\ncases: []", "once"),
        (
            "b: &b {cases: [{user: a@x, " + BASE + ", expect: allow}]}\n<<: *b",
            "once",
        ),
    ],
)
def test_malformed_test_file_is_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, text + "\n")

    with pytest.raises(PolicyFileError) as raised:
        read_tests([path])

    [reported] = raised.value.problems
    assert reported.startswith(f"{path}:"), reported
    assert problem in reported, reported


def test_cli_policy_test_exit_codes(tmp_path: Path) -> None:
    database = Place(tmp_path)
    failing = write(
        tmp_path,
        "cases:\n  - {user: heidi@acme.example, company: acme, resource: orders,\n"
        "     action: checkout, expect: allow}\n",
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("cases: [1]\n", encoding="utf-8")
    demo = [str(path) for path in TEST_FILES]

    passed = cli(database, "policy", "test", *demo, "--policy", str(POLICIES))
    failed = cli(database, "policy", "test", str(failing), "--policy", str(POLICIES))
    refused = cli(database, "policy", "test", str(broken), "--policy", str(POLICIES))

    assert passed.returncode == 0, passed.stdout
    assert passed.stdout.endswith(" passed, 0 failed\n")
    assert failed.returncode == 1
    assert f"FAIL {failing}:2 " in failed.stdout
    assert "no group of 'heidi@acme.example' in 'acme' grants" in failed.stdout
    assert failed.stdout.endswith("0 passed, 1 failed\n")
    assert refused.returncode == 2
    assert "broken.yaml:1: a case is a mapping" in refused.stderr
