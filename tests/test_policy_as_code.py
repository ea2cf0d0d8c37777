"""Policy as code: export, validate, diff and import, through the service.

The round trip of the issue: export, edit the files as a person would, validate,
diff, import, export again; untouched files come back byte for byte and the
access diff is exactly what the edit means.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from orgguard.access import Caller
from orgguard.errors import Forbidden, PolicyFileError
from orgguard.platform_admin import PlatformAdmin
from orgguard.policy.diff import AccessChange
from orgguard.policy.files import read_policy_dir, write_policy_dir
from orgguard.policy_admin import PolicyAdmin
from orgguard.service import Authorizer
from orgguard.settings import Settings
from orgguard.storage.store import AuditQuery
from tests.conftest import OPERATOR, POLICIES, reopen
from tests.test_parity import files_enforcer

ADMIN = ["audit:read", "groups:read", "groups:write", "members:read"]
ADMIN += ["members:write", "orders:read", "quotes:read", "users:manage"]


@pytest.fixture
def admin(authorizer: Authorizer) -> PolicyAdmin:
    return PolicyAdmin(authorizer)


@pytest.fixture
def exported(admin: PolicyAdmin, tmp_path: Path) -> Path:
    directory = tmp_path / "exported"
    write_policy_dir(directory, admin.export(OPERATOR).files)
    return directory


def texts(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): path.read_text(encoding="utf-8")
        for path in sorted(directory.rglob("*.csv"))
    }


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def audit_count(authorizer: Authorizer) -> int:
    return len(authorizer.store.audit(AuditQuery(limit=10_000)))


def test_export_is_canonical_and_reads_back(admin: PolicyAdmin, exported: Path) -> None:
    again = admin.export(OPERATOR).files

    assert texts(exported) == again
    assert sorted(again) == [
        "catalogue.csv",
        "companies/acme-north.csv",
        "companies/acme-south.csv",
        "companies/acme.csv",
        "companies/globex.csv",
        "companies/initech.csv",
        "companies/stark.csv",
        "companies/umbrella.csv",
        "platform.csv",
        "templates.csv",
    ]
    assert again["companies/acme-south.csv"].startswith(
        "# company: acme-south\n# name: ACME Sud S.à r.l.\n# parent: acme\n"
        "# revision: 1\n# group finance: Comptabilité\n\n"
        "p, group:finance, acme-south, invoices, pay, company\n"
    )
    rows = [line for line in again["catalogue.csv"].splitlines() if line[:1] == "p"]
    assert rows == sorted(rows)
    # The files hold the same policy as the demo they were loaded from.
    ours, source = read_policy_dir(exported), read_policy_dir(POLICIES)
    for part in ("catalogue", "grants", "groups", "platform", "roles"):
        assert sorted(map(repr, getattr(ours, part))) == sorted(
            map(repr, getattr(source, part))
        ), part
    assert sorted(ours.memberships()) == sorted(source.memberships())
    assert sorted(map(repr, ours.companies)) == sorted(map(repr, source.companies))


def test_export_leaves_out_api_keys(admin: PolicyAdmin) -> None:
    from orgguard.platform_admin import PlatformAdmin

    PlatformAdmin(admin.authorizer).create_key(OPERATOR, "storefront", "checker")

    files = admin.export(OPERATOR).files

    assert "key:" not in files["platform.csv"]


def test_exported_files_decide_as_the_service_in_pycasbin(
    authorizer: Authorizer, admin: PolicyAdmin, tmp_path: Path
) -> None:
    # Writes through the service first, so the export is more than the demo.
    authorizer.create_company(OPERATOR, "newco", "New Co", "globex")
    authorizer.create_group(
        OPERATOR, "newco", "ap", "Accounts payable", ["invoices:pay", "orders:read:own"]
    )
    authorizer.set_member(OPERATOR, "newco", "kim@newco.example", ["ap", "buyer"])
    authorizer.set_member(OPERATOR, "acme", "carol@acme.example", ["admin"])
    directory = tmp_path / "out"
    write_policy_dir(directory, admin.export(OPERATOR).files)
    enforcer = files_enforcer(tmp_path, directory)
    snapshot = read_policy_dir(directory)
    users = sorted({m.user for m in snapshot.memberships()})
    companies = [c.id for c in snapshot.companies]
    permissions = [entry.permission for entry in snapshot.catalogue]

    mismatches, allowed, total = [], 0, 0
    for user, company, permission in itertools.product(users, companies, permissions):
        for owner in (None, user):
            request = (user, company, permission.resource, permission.action, owner)
            ours = authorizer.check(*request).allowed
            theirs = enforcer.enforce(*request[:4], owner or "")
            total += 1
            allowed += ours
            if ours != theirs:
                mismatches.append(request)
    assert mismatches == []
    assert 500 < allowed < total - 500


def test_round_trip_changes_only_what_was_edited(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path, tmp_path: Path
) -> None:
    before = texts(exported)
    south = exported / "companies" / "acme-south.csv"
    edit(
        south,
        "g, jonas@acme.example, group:buyer, acme-south",
        "g, jonas@acme.example, group:admin, acme-south",
    )
    edit(south, "g, trent@acme.example, group:contact, acme-south\n", "")
    (exported / "companies" / "newco.csv").write_text(
        "# company: newco\n# name: New Co\n# parent: acme\n"
        "# group ap: Accounts payable\n\n"
        "p, group:ap, newco, invoices, pay, company\n\n"
        "g, kim@newco.example, group:ap, newco\n"
        "g, kim@newco.example, group:contact, newco\n",
        encoding="utf-8",
    )
    edited = texts(exported)
    read_policy_dir(exported)  # valid

    diff = admin.diff(OPERATOR, exported, prune=False)

    assert diff.removed == [
        "companies/acme-south.csv: - g, jonas@acme.example, group:buyer, acme-south",
        "companies/acme-south.csv: - g, trent@acme.example, group:contact, acme-south",
    ]
    assert diff.added == [
        "companies/acme-south.csv: + g, jonas@acme.example, group:admin, acme-south",
        "companies/newco.csv: + # company: newco (name 'New Co', parent 'acme')",
        "companies/newco.csv: + # group ap: Accounts payable",
        "companies/newco.csv: + g, kim@newco.example, group:ap, newco",
        "companies/newco.csv: + g, kim@newco.example, group:contact, newco",
        "companies/newco.csv: + p, group:ap, newco, invoices, pay, company",
    ]
    assert diff.access == [
        AccessChange(
            "acme-south",
            "jonas@acme.example",
            tuple(ADMIN),
            ("orders:read:own", "quotes:read:own"),
        ),
        AccessChange("acme-south", "trent@acme.example", (), ("company:read",)),
        AccessChange(
            "newco", "kim@newco.example", ("company:read", "invoices:pay"), ()
        ),
    ]
    records = audit_count(authorizer)

    result = admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)

    assert result.applied and result.revision == 2
    assert audit_count(authorizer) == records + 1
    record = authorizer.store.audit(AuditQuery(limit=1))[0]
    assert (record.action, record.company, record.revision) == (
        "policy.import",
        None,
        2,
    )
    assert record.after["companies"] == ["acme-south", "newco"]
    assert authorizer.check("jonas@acme.example", "acme-south", "users", "manage")[0]
    assert not authorizer.check("trent@acme.example", "acme-south", "company", "read")[
        0
    ]
    assert authorizer.check("kim@newco.example", "newco", "invoices", "pay")[0]

    again = tmp_path / "again"
    write_policy_dir(again, admin.export(OPERATOR).files)
    after = texts(again)
    assert sorted(after) == sorted(edited)
    for name in before:
        if name != "companies/acme-south.csv":
            assert after[name] == before[name], name
    assert after["companies/acme-south.csv"] == edited[
        "companies/acme-south.csv"
    ].replace("# revision: 1", "# revision: 2")
    assert after["companies/newco.csv"] == edited["companies/newco.csv"].replace(
        "# parent: acme\n", "# parent: acme\n# revision: 2\n"
    )
    assert admin.diff(OPERATOR, again, prune=False).is_empty()


def test_import_of_the_same_files_changes_nothing(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    records = audit_count(authorizer)

    result = admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)

    assert not result.applied
    assert result.revision == authorizer.revision == 1
    assert audit_count(authorizer) == records


def test_dry_run_changes_nothing(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    shutil.rmtree(exported / "companies")
    (exported / "companies").mkdir()
    before = admin.export(OPERATOR).files
    records = audit_count(authorizer)

    result = admin.import_policy(OPERATOR, exported, prune=True, dry_run=True)

    assert not result.applied
    assert len(result.diff.change.remove_companies) == 7
    assert authorizer.revision == authorizer.store.revision() == 1
    assert audit_count(authorizer) == records
    assert admin.export(OPERATOR).files == before
    assert authorizer.check("alice@acme.example", "acme", "orders", "read")[0]


def test_import_merges_by_company_unless_prune(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    companies = exported / "companies"
    for name in ("acme-north", "acme-south", "globex", "initech", "stark"):
        (companies / f"{name}.csv").unlink()
    edit(companies / "umbrella.csv", "# revision: 1\n", "")

    merged = admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)

    assert not merged.applied
    assert len(authorizer.index.companies) == 7

    pruned = admin.import_policy(OPERATOR, exported, prune=True, dry_run=False)

    assert pruned.applied
    assert sorted(authorizer.index.companies) == ["acme", "umbrella"]
    assert sorted(pruned.diff.change.remove_companies) == [
        "acme-north",
        "acme-south",
        "globex",
        "initech",
        "stark",
    ]
    assert not authorizer.check("erin@initech.example", "initech", "company", "read")[0]
    losers = {(a.company, a.user) for a in pruned.diff.access}
    assert ("initech", "erin@initech.example") in losers
    assert all(a.gains == () for a in pruned.diff.access)
    # The database agrees with memory: a fresh load sees the same companies.
    assert sorted(c.id for c in authorizer.store.load().companies) == [
        "acme",
        "umbrella",
    ]


def test_prune_removes_subsidiaries_before_their_parent(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    companies = exported / "companies"
    for name in ("acme", "acme-north", "acme-south"):
        (companies / f"{name}.csv").unlink()

    result = admin.import_policy(OPERATOR, exported, prune=True, dry_run=False)

    removed = result.diff.change.remove_companies
    assert removed.index("acme") > removed.index("acme-north")
    assert removed.index("acme") > removed.index("acme-south")
    assert "acme" not in authorizer.index.companies


def test_partial_directory_may_name_a_stored_parent_unless_prune(
    admin: PolicyAdmin, exported: Path
) -> None:
    (exported / "companies" / "acme.csv").unlink()

    assert admin.diff(OPERATOR, exported, prune=False).is_empty()
    with pytest.raises(PolicyFileError) as raised:
        admin.diff(OPERATOR, exported, prune=True)
    assert [p.split(": ", 1)[1] for p in raised.value.problems] == [
        "parent 'acme' does not exist",
        "parent 'acme' does not exist",
    ]


def test_template_change_reaches_every_company(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    edit(
        exported / "templates.csv",
        "p, group:contact, *, company, read, company\n",
        "p, group:contact, *, company, read, company\n"
        "p, group:contact, *, reports, read, company\n",
    )

    result = admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)

    assert result.diff.added == [
        "templates.csv: + p, group:contact, *, reports, read, company"
    ]
    companies = {a.company for a in result.diff.access}
    assert companies == set(authorizer.index.companies)
    # Everyone is a contact; those who read reports already gain nothing.
    assert all(a.gains == ("reports:read",) and not a.loses for a in result.diff.access)
    assert result.diff.companies == []


def test_platform_roles_import(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    edit(
        exported / "platform.csv",
        "g2, sam@seller.example, role:seller-support",
        "g2, sam@seller.example, role:seller-admin",
    )

    admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)

    assert authorizer.index.roles["sam@seller.example"] == {"seller-admin"}


def test_bad_files_are_refused_with_every_problem_and_nothing_changes(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    companies = exported / "companies"
    edit(companies / "acme.csv", "g, alice@acme.example, group:contact, acme\n", "")
    edit(
        companies / "globex.csv",
        "# company: globex\n",
        "# company: globex\ng, bob*, group:buyer, globex\n",
    )
    (companies / "newco.csv").write_text(
        "# company: newco\n# name: New\n# parent: nowhere\n", encoding="utf-8"
    )
    before = admin.export(OPERATOR).files

    with pytest.raises(PolicyFileError) as raised:
        admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)

    problems = raised.value.problems
    assert len(problems) == 3, problems
    assert "acme.csv:" in problems[0] and "not in group contact" in problems[0]
    assert "globex.csv:2: user must be" in problems[1]
    assert problems[2].endswith("newco.csv:3: parent 'nowhere' does not exist")
    assert authorizer.revision == authorizer.store.revision() == 1
    assert admin.export(OPERATOR).files == before


@pytest.mark.parametrize(
    ("file", "old", "new", "problem"),
    [
        (
            "catalogue.csv",
            "p2, widgets, make, yes\n",
            "",
            "catalogue.csv: the stored catalogue holds 'p2, widgets, make, yes'",
        ),
        (
            "catalogue.csv",
            "p2, widgets, make, yes",
            "p2, widgets, make, no",
            "cannot remove or change one yet",
        ),
        (
            "platform.csv",
            "p3, role:checker, decisions, check\n",
            "",
            "cannot remove one yet",
        ),
        (
            "companies/acme.csv",
            "# name: ACME Industries, Inc.",
            "# name: ACME",
            "companies/acme.csv: changes the company's name or parent",
        ),
        (
            "companies/globex.csv",
            "# name: Globex Corporation\n",
            "# name: Globex Corporation\n# parent: acme\n",
            "import cannot change those yet",
        ),
    ],
)
def test_import_refuses_what_it_cannot_write(
    authorizer: Authorizer,
    admin: PolicyAdmin,
    exported: Path,
    file: str,
    old: str,
    new: str,
    problem: str,
) -> None:
    # A catalogue entry no rule uses, so the files stay valid without it.
    edit(exported / "catalogue.csv", "p2, users,", "p2, widgets, make, yes\np2, users,")
    assert admin.import_policy(OPERATOR, exported, prune=False, dry_run=False).applied
    edit(exported / file, old, new)

    with pytest.raises(PolicyFileError) as raised:
        admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)

    assert any(problem in p for p in raised.value.problems), raised.value.problems
    assert authorizer.revision == 2


def test_custom_group_rename_and_removal(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    acme = exported / "companies" / "acme.csv"
    edit(acme, "# group finance: Finance team", "# group finance: Treasury")
    text = acme.read_text(encoding="utf-8")
    acme.write_text(
        "\n".join(line for line in text.splitlines() if "auditors" not in line) + "\n",
        encoding="utf-8",
    )

    result = admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)

    assert authorizer.index.groups["acme"]["finance"].name == "Treasury"
    assert "auditors" not in authorizer.index.groups["acme"]
    assert authorizer.check("liam@acme.example", "acme", "invoices", "pay")[0]
    assert not authorizer.check("hana@acme.example", "acme", "reports", "read")[0]
    assert "companies/acme.csv: - # group auditors: External auditors" in (
        result.diff.removed
    )


def test_policy_actions_are_gated(authorizer: Authorizer, exported: Path) -> None:
    from orgguard.access import Caller

    admin = PolicyAdmin(authorizer)
    support = Caller("sam@seller.example", "user")
    company_admin = Caller("alice@acme.example", "user")

    assert admin.export(support).files
    assert admin.import_policy(support, exported, prune=False, dry_run=True)
    with pytest.raises(Forbidden):
        admin.import_policy(support, exported, prune=False, dry_run=False)
    with pytest.raises(Forbidden):
        admin.export(company_admin)


def test_failure_in_the_middle_of_an_import_changes_nothing(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path, settings: Settings
) -> None:
    edit(
        exported / "companies" / "acme.csv",
        "g, carol@acme.example, group:buyer, acme",
        "g, carol@acme.example, group:admin, acme",
    )
    before = admin.export(OPERATOR).files
    failed: list[str] = []

    def fail_insert(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The buyer row is deleted by then; the admin row never arrives.
        if statement.startswith("INSERT INTO casbin_rule") and not failed:
            failed.append(statement)
            raise RuntimeError("injected failure")

    event.listen(authorizer.store.engine, "before_cursor_execute", fail_insert)
    try:
        with pytest.raises(RuntimeError):
            admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)
    finally:
        event.remove(authorizer.store.engine, "before_cursor_execute", fail_insert)

    assert failed
    assert admin.export(OPERATOR).files == before
    assert PolicyAdmin(reopen(settings)).export(OPERATOR).files == before
    assert authorizer.index.members["acme"]["carol@acme.example"][0] == "buyer"
    assert admin.import_policy(OPERATOR, exported, prune=False, dry_run=False).applied


def test_export_over_a_directory_removes_companies_no_longer_stored(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    (exported / "tests").mkdir()
    (exported / "tests" / "mine.yaml").write_text("cases: []\n", encoding="utf-8")
    authorizer.delete_company(OPERATOR, "umbrella", cascade=False)

    write_policy_dir(exported, admin.export(OPERATOR).files)

    assert not (exported / "companies" / "umbrella.csv").exists()
    assert (exported / "companies" / "stark.csv").exists()
    assert (exported / "tests" / "mine.yaml").exists()


@pytest.mark.parametrize("company", ["initech", "umbrella"])
def test_a_write_between_the_diff_and_the_commit(
    authorizer: Authorizer,
    admin: PolicyAdmin,
    exported: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    company: str,
) -> None:
    """Import compares before it takes the write lock; if another process
    wrote meanwhile, it compares again under the lock: a write to a company
    the files name makes its file stale (refused), any other write stays."""
    import orgguard.policy_admin as policy_admin

    (exported / "companies" / "umbrella.csv").unlink()
    edit(
        exported / "companies" / "stark.csv",
        "# revision: 1\n",
        "# revision: 1\n# group ops: Operations\n",
    )
    compared: list[int] = []
    real_diff = policy_admin._diff

    def diff_then_another_process_writes(*args: Any) -> Any:
        compared.append(len(compared))
        found = real_diff(*args)
        if len(compared) == 1:
            other = reopen(settings)
            other.set_member(OPERATOR, company, "pat@x.example", ["buyer"])
            other.store.engine.dispose()
        return found

    monkeypatch.setattr(policy_admin, "_diff", diff_then_another_process_writes)

    if company == "initech":
        with pytest.raises(PolicyFileError) as raised:
            admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)
        assert [p.split("/")[-1] for p in raised.value.problems] == [
            "initech.csv:3: company 'initech' changed at revision 2, after this "
            "file's revision 1: export it again and redo the edit"
        ]
        assert "ops" not in authorizer.index.groups["stark"]
    else:
        result = admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)
        assert result.revision == 3
        assert "ops" in authorizer.index.groups["stark"]
    assert compared == [0, 1]
    assert "pat@x.example" in authorizer.index.members[company]


def promote_carol(exported: Path) -> None:
    edit(
        exported / "companies" / "acme.csv",
        "g, carol@acme.example, group:buyer, acme",
        "g, carol@acme.example, group:admin, acme",
    )


def refused(admin: PolicyAdmin, exported: Path) -> list[str]:
    """The problems an import of ``exported`` is refused with, by file name."""
    with pytest.raises(PolicyFileError) as raised:
        admin.import_policy(OPERATOR, exported, prune=False, dry_run=False)
    return [problem.split("/")[-1] for problem in raised.value.problems]


def test_a_stale_file_is_refused(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    authorizer.set_member(OPERATOR, "acme", "zed@acme.example", ["buyer"])
    promote_carol(exported)

    assert refused(admin, exported) == [
        "acme.csv:3: company 'acme' changed at revision 2, after this file's "
        "revision 1: export it again and redo the edit",
    ]
    assert "zed@acme.example" in authorizer.index.members["acme"]
    # A stale file that changes nothing is no problem: nothing is undone.
    edit(
        exported / "companies" / "acme.csv",
        "g, carol@acme.example, group:admin, acme",
        "g, carol@acme.example, group:buyer, acme\n"
        "g, zed@acme.example, group:buyer, acme\n"
        "g, zed@acme.example, group:contact, acme",
    )
    assert admin.diff(OPERATOR, exported, prune=False).is_empty()


def test_a_file_from_a_later_revision_is_refused(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    """An export states the revision that last changed each company, which
    only grows: a later one means the file did not come from this database
    (a restored backup, an edited line)."""
    edit(exported / "companies" / "acme.csv", "# revision: 1", "# revision: 999")
    promote_carol(exported)

    assert refused(admin, exported) == [
        "acme.csv:3: company 'acme' last changed at revision 1, not 999: this "
        "file was not exported from this database (or its revision line was "
        "edited); export it again",
    ]
    assert "admin" not in authorizer.index.members["acme"]["carol@acme.example"]


def test_a_company_admin_sees_its_part_of_an_import_in_its_audit_trail(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    """One record for the import; each company's admins find it in their
    trail, showing only their company and its lines."""
    edit(
        exported / "companies" / "acme-south.csv",
        "g, jonas@acme.example, group:buyer, acme-south",
        "g, jonas@acme.example, group:requester, acme-south",
    )
    edit(
        exported / "companies" / "globex.csv",
        "g, ava@globex.example, group:buyer, globex",
        "g, ava@globex.example, group:requester, globex",
    )
    revision = admin.import_policy(
        OPERATOR, exported, prune=False, dry_run=False
    ).revision
    carol = Caller("carol@acme.example", "user")  # admin of acme-south only

    hers = PlatformAdmin(authorizer).audit(carol, None, None, None, None, None, 10)
    everything = authorizer.store.audit(AuditQuery(limit=1))

    [record] = [r for r in hers if r.revision == revision]
    assert record.after["companies"] == ["acme-south"]
    assert record.after["added"] == [
        "companies/acme-south.csv: + g, jonas@acme.example, group:requester, acme-south"
    ]
    assert all("globex" not in line for line in record.after["removed"])
    assert everything[0].after["companies"] == ["acme-south", "globex"]


def test_an_import_that_leaves_a_company_without_an_admin_is_refused(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    # acme-south has one admin, carol.
    edit(
        exported / "companies" / "acme-south.csv",
        "g, carol@acme.example, group:admin, acme-south",
        "g, carol@acme.example, group:buyer, acme-south",
    )

    problems = refused(admin, exported)

    assert problems == [
        "acme-south.csv: company 'acme-south' would be left without an admin "
        "(it has carol@acme.example); make another member admin"
    ]
    assert "admin" in authorizer.index.members["acme-south"]["carol@acme.example"]


def test_prune_does_not_delete_a_company_the_export_never_saw(
    authorizer: Authorizer, admin: PolicyAdmin, exported: Path
) -> None:
    authorizer.create_company(OPERATOR, "newco", "New Co", None)

    with pytest.raises(PolicyFileError) as raised:
        admin.import_policy(OPERATOR, exported, prune=True, dry_run=True)

    [problem] = raised.value.problems
    assert "--prune would delete company 'newco', changed at revision 2" in problem
    assert "newco" in authorizer.index.companies
