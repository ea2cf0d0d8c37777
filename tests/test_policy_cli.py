"""``orgguard policy ...`` as a person runs it: exit codes and what it prints."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import POLICIES
from tests.servers import Place, cli


def test_cli_policy_validate_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    policy = tmp_path / "policies"
    shutil.copytree(POLICIES, policy)
    with (policy / "companies" / "stark.csv").open("a", encoding="utf-8") as file:
        file.write("g, bob, group:nope, stark\ng, eve, group:buyer\n")

    unused = Place(tmp_path / "db")
    unused.folder.mkdir()
    bad = cli(unused, "policy", "validate", str(policy))
    good = cli(unused, "policy", "validate", str(POLICIES))

    assert bad.returncode == 1
    assert "2 problem(s)" in bad.stderr
    assert "stark.csv:24: unknown group 'nope'" in bad.stderr
    assert "stark.csv:25: a g rule has 3 fields, this one has 2" in bad.stderr
    assert good.returncode == 0, good.stderr
    assert "valid (7 companies" in good.stdout
    assert list(unused.folder.iterdir()) == []  # no database file made


def test_cli_policy_round_trip(tmp_path: Path) -> None:
    database = Place(tmp_path)
    out = tmp_path / "out"
    assert cli(database, "load", str(POLICIES)).returncode == 0
    exported = cli(database, "policy", "export", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "exported revision 1" in exported.stdout
    umbrella = out / "companies" / "umbrella.csv"
    text = umbrella.read_text(encoding="utf-8")
    umbrella.write_text(
        text.replace("g, ", "g, zoe@umbrella.example, group:contact, umbrella\ng, ", 1),
        encoding="utf-8",
    )

    diff = cli(database, "policy", "diff", str(out))
    dry = cli(database, "policy", "import", str(out), "--dry-run")
    applied = cli(database, "policy", "import", str(out))
    again = cli(database, "policy", "diff", str(out))

    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.splitlines() == [
        "rules:",
        "  companies/umbrella.csv: + g, zoe@umbrella.example, group:contact, umbrella",
        "access:",
        "  umbrella:",
        "    zoe@umbrella.example gains company:read",
    ]
    assert dry.stdout.endswith("dry run: nothing changed (revision 1)\n")
    assert applied.stdout.endswith(f"imported {out} as revision 2\n")
    assert again.stdout == "no changes\n"
    audit = cli(database, "audit", "--limit", "1")
    assert '"action": "policy.import"' in audit.stdout


def test_cli_policy_import_of_bad_files_changes_nothing(tmp_path: Path) -> None:
    database = Place(tmp_path)
    policy = tmp_path / "policies"
    shutil.copytree(POLICIES, policy)
    assert cli(database, "load", str(POLICIES)).returncode == 0
    (policy / "companies" / "globex.csv").write_text("g, x\n", encoding="utf-8")

    result = cli(database, "policy", "import", str(policy))

    assert result.returncode == 2
    assert "globex.csv:1: a g rule has 3 fields" in result.stderr
    assert "globex.csv:1: the header must say '# company: globex'" in result.stderr
    assert cli(database, "policy", "diff", str(POLICIES)).stdout == "no changes\n"
