"""What importing a policy directory would change: rules and access.

``diff_policy`` compares the stored policy with the policy read from files and
gives one ``Change`` that turns the first into the second, merged by company:
a company absent from the files is left alone unless ``prune``. It also says
the change twice for people: as rule lines added and removed, file by file,
and as access, which users gain or lose which permissions in which company
(effective permissions before and after, as ``decide`` would answer).

Refused, every one listed: differences the service has no write for yet
(removing or changing a catalogue entry or a platform role's action, which
only grow; changing an existing company's name or parent), and stale files
(a company file that would change its company but states a ``# revision:``
older than the company's last change).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from orgguard.errors import PolicyFileError
from orgguard.ids import case_twin
from orgguard.policy import casbin_rules
from orgguard.policy.files import (
    CATALOGUE_FILE,
    PLATFORM_FILE,
    company_file,
    file_of,
    group_header,
)
from orgguard.policy.index import PolicyIndex
from orgguard.policy.model import (
    ADMIN,
    IMPORT_ACTION,
    KEY_PREFIX,
    Change,
    Membership,
    Snapshot,
)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, order=True)
class AccessChange:
    """A user's effective permissions that appear or go in one company."""

    company: str
    user: str
    gains: tuple[str, ...]
    loses: tuple[str, ...]


@dataclass
class PolicyDiff:
    change: Change
    # Lines of the policy files: "<file>: + <row>" and "<file>: - <row>".
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    access: list[AccessChange] = field(default_factory=list)
    # The companies whose own file changes (added, edited or pruned).
    companies: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return self.change.is_empty()


def diff_policy(
    current: Snapshot,
    files: Snapshot,
    *,
    prune: bool,
    source: Path,
    revisions: Mapping[str, int] | None = None,
) -> PolicyDiff:
    """The change from ``current`` (stored) to ``files``; PolicyFileError lists
    every difference the service cannot write, and every stale file.

    ``revisions`` gives the revision that last changed each stored company: a
    file that would change its company but states an older ``# revision:``
    was edited from an export that a later write has overtaken, and applying
    it would silently undo that write.
    """
    problems = _unsupported(current, files, source)
    if problems:
        raise PolicyFileError(problems)

    change = Change(IMPORT_ACTION)
    change.add_catalogue = _added(files.catalogue, current.catalogue)
    change.add_platform = _added(files.platform, current.platform)
    people = [r for r in current.roles if not r.subject.startswith(KEY_PREFIX)]
    change.remove_roles = _added(people, files.roles)
    change.add_roles = _added(files.roles, people)

    known = {company.id for company in current.companies}
    named = {company.id for company in files.companies}
    change.add_companies = [c for c in files.companies if c.id not in known]
    taken = set(known)
    for company in change.add_companies:
        twin = case_twin(company.id, taken)
        if twin is not None:
            raise PolicyFileError(
                [
                    f"{source / company_file(company.id)}: company '{company.id}' "
                    f"differs from '{twin}' only in case; their files would "
                    "collide on many file systems"
                ]
            )
        taken.add(company.id)
    # Templates, and the companies the files name; the others stay as they are.
    stored_grants = [
        g for g in current.grants if g.company is None or g.company in named
    ]
    stored_groups = [g for g in current.groups if g.company in named]
    stored_members = _members_in(current, named)
    change.remove_grants = _added(stored_grants, files.grants)
    change.add_grants = _added(files.grants, stored_grants)
    change.remove_groups = _added(stored_groups, files.groups)
    change.add_groups = _added(files.groups, stored_groups)
    change.remove_members = _added(stored_members, files.memberships())
    change.add_members = _added(files.memberships(), stored_members)
    if prune:
        _prune(change, current, known - named)

    diff = PolicyDiff(change)
    _describe(diff)
    refused = _stale(diff.companies, files, revisions or {})
    refused += _without_admins(current, change, source)
    if prune:
        refused += _pruned_unseen(known - named, files, revisions or {}, source)
    if refused:
        raise PolicyFileError(refused)
    diff.access = access_changes(current, change)
    return diff


def _unsupported(current: Snapshot, files: Snapshot, source: Path) -> list[str]:
    problems: list[str] = []
    for entry in _added(current.catalogue, files.catalogue):
        problems.append(
            f"{source / CATALOGUE_FILE}: the stored catalogue holds "
            f"'{_line(entry)}'; import adds catalogue entries but cannot remove "
            "or change one yet: keep the line"
        )
    for grant in _added(current.platform, files.platform):
        problems.append(
            f"{source / PLATFORM_FILE}: the stored policy holds '{_line(grant)}'; "
            "import adds platform role actions but cannot remove one yet: keep "
            "the line"
        )
    stored = {company.id: company for company in current.companies}
    for company in files.companies:
        before = stored.get(company.id)
        if before is not None and before != company:
            problems.append(
                f"{source / company_file(company.id)}: changes the "
                f"company's name or parent (stored: name '{before.name}', parent "
                f"'{before.parent or '-'}'); import cannot change those yet"
            )
    return problems


def _stale(
    changed: Iterable[str], files: Snapshot, revisions: Mapping[str, int]
) -> list[str]:
    problems = []
    for company in changed:
        stated, where = files.stated_revisions.get(company, (None, ""))
        stored = revisions.get(company, 0)
        if stated is not None and stored > stated:
            problems.append(
                f"{where}: company '{company}' changed at revision {stored}, after "
                f"this file's revision {stated}: export it again and redo the edit"
            )
        elif stated is not None and stored < stated:
            # An export states the revision that last changed the company,
            # which only grows: this file was not exported from this database.
            problems.append(
                f"{where}: company '{company}' last changed at revision {stored}, "
                f"not {stated}: this file was not exported from this database "
                "(or its revision line was edited); export it again"
            )
    return problems


def _pruned_unseen(
    doomed: set[str], files: Snapshot, revisions: Mapping[str, int], source: Path
) -> list[str]:
    """Prune deletes the companies the files do not name; one created or
    changed after the export was made (after the newest revision its files
    state) was never seen by whoever made the files, and is not deleted."""
    stated = [revision for revision, _ in files.stated_revisions.values()]
    if not stated:
        return []  # files written by hand: nothing says when
    newest = max(stated)
    return [
        f"{source}: --prune would delete company '{company}', changed at "
        f"revision {revisions[company]}, after these files (newest revision "
        f"{newest}): export again, or keep it"
        for company in sorted(doomed)
        if revisions.get(company, 0) > newest
    ]


def _without_admins(current: Snapshot, change: Change, source: Path) -> list[str]:
    """A company that has admins keeps at least one, as with every other
    write (the API answers 409): files that would leave none are refused."""
    admins: dict[str, set[str]] = defaultdict(set)
    for membership in current.memberships():
        if membership.group == ADMIN:
            admins[membership.company].add(membership.user)
    after = {company: set(users) for company, users in admins.items()}
    for membership in change.remove_members:
        if membership.group == ADMIN:
            after.get(membership.company, set()).discard(membership.user)
    for membership in change.add_members:
        if membership.group == ADMIN:
            after.setdefault(membership.company, set()).add(membership.user)
    deleted = set(change.remove_companies)
    return [
        f"{source / company_file(company)}: company '{company}' would be left "
        "without an admin (it has "
        f"{', '.join(sorted(admins[company]))}); make another member admin"
        for company in sorted(admins)
        if admins[company] and not after[company] and company not in deleted
    ]


def _prune(change: Change, current: Snapshot, doomed: set[str]) -> None:
    """Remove the stored companies the files do not name, subsidiaries first."""
    change.remove_grants.extend(
        sorted(g for g in current.grants if g.company in doomed)
    )
    change.remove_groups.extend(
        sorted(g for g in current.groups if g.company in doomed)
    )
    change.remove_members.extend(sorted(_members_in(current, doomed)))
    parents = {c.id: c.parent for c in current.companies}

    def depth(company: str) -> int:
        steps, at = 0, parents.get(company)
        while at is not None and steps <= len(parents):
            steps, at = steps + 1, parents.get(at)
        return steps

    change.remove_companies = sorted(doomed, key=lambda c: (-depth(c), c))


def _added(wanted: Iterable[_T], held: Iterable[_T]) -> list[_T]:
    """What ``wanted`` holds and ``held`` does not, once each, in its order."""
    have = set(held)
    return [item for item in dict.fromkeys(wanted) if item not in have]


def _line(rule: casbin_rules.Rule) -> str:
    return casbin_rules.format_row(casbin_rules.to_row(rule))


def _describe(diff: PolicyDiff) -> None:
    """The change as lines of the files, and the companies whose file changes."""
    change = diff.change
    touched: set[str] = set()
    removed: list[tuple[str, str]] = []
    added: list[tuple[str, str]] = []
    for company_id in change.remove_companies:
        removed.append((company_file(company_id), f"# company: {company_id}"))
    for company in change.add_companies:
        header = f"# company: {company.id} (name '{company.name}'"
        header += f", parent '{company.parent}')" if company.parent else ")"
        added.append((company_file(company.id), header))
    for group in change.remove_groups:
        removed.append((company_file(group.company), group_header(group)))
    for group in change.add_groups:
        added.append((company_file(group.company), group_header(group)))
    gone: list[casbin_rules.Rule] = [
        *change.remove_roles,
        *change.remove_grants,
        *change.remove_members,
    ]
    for rule in gone:
        removed.append((file_of(rule), _line(rule)))
    new: list[casbin_rules.Rule] = [
        *change.add_catalogue,
        *change.add_platform,
        *change.add_roles,
        *change.add_grants,
        *change.add_members,
    ]
    for rule in new:
        added.append((file_of(rule), _line(rule)))
    for lines, sign, target in ((removed, "-", diff.removed), (added, "+", diff.added)):
        for file, line in sorted(lines):
            target.append(f"{file}: {sign} {line}")
            if file.startswith("companies/"):
                touched.add(file.removeprefix("companies/").removesuffix(".csv"))
    diff.companies = sorted(touched)


def access_changes(current: Snapshot, change: Change) -> list[AccessChange]:
    """Who gains and loses which permissions, company by company, when the
    change is applied to ``current``: effective permissions before and after.

    Only the companies the change can reach are compiled: those of its
    company rules and memberships, or all of them when a template changes.
    """
    grants = [*change.add_grants, *change.remove_grants]
    if any(grant.company is None for grant in grants):
        reached = {company.id for company in current.companies}
    else:
        reached = {grant.company for grant in grants if grant.company is not None}
    reached.update(m.company for m in (*change.add_members, *change.remove_members))
    reached.update(change.remove_companies)
    if not reached:
        return []
    part = Snapshot(
        revision=current.revision,
        catalogue=current.catalogue,
        companies=[c for c in current.companies if c.id in reached],
        groups=[g for g in current.groups if g.company in reached],
        grants=[g for g in current.grants if g.company is None or g.company in reached],
        members=_members_in(current, reached),
    )
    before = PolicyIndex.from_snapshot(part)
    after = PolicyIndex.from_snapshot(part)
    after.apply(change, current.revision + 1)

    found: list[AccessChange] = []
    for company in sorted(reached):
        users = set(before.members.get(company, {})) | set(
            after.members.get(company, {})
        )
        for user in sorted(users):
            held = _effective(before, company, user)
            holds = _effective(after, company, user)
            if held != holds:
                found.append(
                    AccessChange(
                        company,
                        user,
                        tuple(sorted(holds - held)),
                        tuple(sorted(held - holds)),
                    )
                )
    return found


def _members_in(snapshot: Snapshot, companies: set[str]) -> list[Membership]:
    """The snapshot's memberships in these companies, without flattening the
    others (a database load keeps millions of them grouped)."""
    found = [m for m in snapshot.members if m.company in companies]
    for company in sorted(companies):
        for user, groups in snapshot.member_groups.get(company, {}).items():
            found.extend(Membership(company, user, group) for group in groups)
    return found


def _effective(index: PolicyIndex, company: str, user: str) -> set[str]:
    return {
        str(effective.permission)
        for effective in index.effective_permissions(company, user)
    }


def by_company(changes: Iterable[AccessChange]) -> dict[str, list[AccessChange]]:
    grouped: dict[str, list[AccessChange]] = defaultdict(list)
    for access in changes:
        grouped[access.company].append(access)
    return dict(grouped)


def report_lines(diff: PolicyDiff) -> list[str]:
    """The diff for a person: rule lines, then access company by company."""
    if diff.is_empty():
        return ["no changes"]
    lines = ["rules:", *(f"  {line}" for line in [*diff.removed, *diff.added])]
    lines.append("access:")
    if not diff.access:
        lines.append("  nobody gains or loses a permission")
    for company, changes in by_company(diff.access).items():
        lines.append(f"  {company}:")
        for access in changes:
            parts = []
            if access.gains:
                parts.append("gains " + ", ".join(access.gains))
            if access.loses:
                parts.append("loses " + ", ".join(access.loses))
            lines.append(f"    {access.user} {'; '.join(parts)}")
    return lines
