"""Policy files: Casbin policy CSV, one file per company, read and validated.

    policies/catalogue.csv        p2 rules: the permission catalogue
    policies/templates.csv        p rules with domain *: the predefined groups
    policies/platform.csv         p3 and g2 rules: seller roles and their holders
    policies/companies/<id>.csv   one company: a header, its custom group rules
                                  (p) and its memberships (g)

A company file starts with comment lines that Casbin skips and orgguard reads::

    # company: acme
    # name: ACME Industries
    # parent: acme-holding
    # group approvers: Order approvers

Every problem is reported with its file and line, all of them at once.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from orgguard.errors import InvalidInput, PolicyFileError
from orgguard.ids import check_display_name, is_name_id
from orgguard.policy import casbin_rules
from orgguard.policy.actions import ADMIN_ACTIONS
from orgguard.policy.model import (
    CONTACT,
    KEY_PREFIX,
    PREDEFINED_GROUPS,
    CatalogueEntry,
    Company,
    CustomGroup,
    Grant,
    Membership,
    Permission,
    PlatformGrant,
    RoleAssignment,
    Scope,
    Snapshot,
    exclusive_groups,
)

_HEADER = re.compile(r"#\s*(company|name|parent|revision|group\s+(\S+))\s*:\s*(.*?)\s*")


@dataclass
class _Reader:
    problems: list[str] = field(default_factory=list)
    snapshot: Snapshot = field(default_factory=Snapshot)
    catalogue: dict[Permission, CatalogueEntry] = field(default_factory=dict)
    # company -> where its parent is said (its '# parent:' line, or the file)
    parent_lines: dict[str, str] = field(default_factory=dict)
    # One decoder for the whole directory: each distinct id is checked once.
    decoder: casbin_rules.RowDecoder = field(default_factory=casbin_rules.RowDecoder)

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def rules(self, path: Path) -> list[tuple[str, casbin_rules.Rule]]:
        """Each rule of a file with its 'file:line', skipping comments."""
        found: list[tuple[str, casbin_rules.Rule]] = []
        seen: dict[tuple[str, ...], str] = {}
        for number, line in enumerate(_lines(path), start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{path}:{number}"
            row = tuple(part.strip() for part in text.split(","))
            if row in seen:
                self.problem(where, f"duplicate of the rule at {seen[row]}")
                continue
            seen[row] = where
            try:
                found.append((where, self.decoder.decode(row)))
            except InvalidInput as error:
                self.problem(where, error.message)
        return found


def _lines(path: Path) -> list[str]:
    """The file's lines as Casbin's file adapter splits them: at "\n" only
    (a "\r" before it is dropped, as is a UTF-8 byte order mark). Any other
    line break or control character is refused: a reader (or an editor)
    that broke the line there would see rules that Casbin, reading a comment,
    would not."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyFileError([f"{path}: cannot read: {error}"]) from error
    lines = text.removeprefix("\ufeff").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    problems = [
        f"{path}:{number}: holds the control character "
        f"U+{ord(bad.group()):04X}; only tabs may appear within a line"
        for number, line in enumerate(lines, start=1)
        if (bad := _CONTROL.search(line)) is not None
    ]
    if problems:
        raise PolicyFileError(problems)
    return lines


# C0 and C1 controls but the tab, and the Unicode line and paragraph breaks.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def read_policy_dir(
    directory: Path,
    *,
    other_companies: Collection[str] = (),
) -> Snapshot:
    """Read and validate a policy directory; PolicyFileError lists every problem.

    ``other_companies`` may be parents too: the companies a partial directory
    is merged with (an import leaves the companies it does not name alone).
    """
    if not directory.is_dir():
        raise PolicyFileError([f"{directory}: not a directory"])
    reader = _Reader()
    _read_catalogue(reader, directory / "catalogue.csv")
    _read_templates(reader, directory / "templates.csv")
    _read_platform(reader, directory / "platform.csv")
    company_files = sorted((directory / "companies").glob("*.csv"))
    for path in company_files:
        _read_company(reader, path)
    _check_tree(reader, other_companies)
    if reader.problems:
        raise PolicyFileError(reader.problems)
    return reader.snapshot


def _read_catalogue(reader: _Reader, path: Path) -> None:
    if not path.is_file():
        reader.problem(str(path), "missing: the permission catalogue")
        return
    for where, rule in reader.rules(path):
        if not isinstance(rule, CatalogueEntry):
            reader.problem(where, "the catalogue holds only p2 rules")
            continue
        reader.snapshot.catalogue.append(rule)
        reader.catalogue[rule.permission] = rule


def _read_templates(reader: _Reader, path: Path) -> None:
    if not path.is_file():
        reader.problem(str(path), "missing: the predefined group templates")
        return
    for where, rule in reader.rules(path):
        if not isinstance(rule, Grant) or rule.company is not None:
            reader.problem(where, "templates hold only p rules with domain *")
            continue
        if rule.group not in PREDEFINED_GROUPS:
            reader.problem(
                where,
                f"'{rule.group}' is not a predefined group "
                f"({', '.join(PREDEFINED_GROUPS)})",
            )
            continue
        if _check_grant(reader, where, rule):
            reader.snapshot.grants.append(rule)


def _read_platform(reader: _Reader, path: Path) -> None:
    if not path.is_file():
        reader.problem(str(path), "missing: the platform roles")
        return
    assignments: list[tuple[str, RoleAssignment]] = []
    for where, rule in reader.rules(path):
        if isinstance(rule, PlatformGrant):
            if rule.permission in ADMIN_ACTIONS:
                reader.snapshot.platform.append(rule)
            else:
                actions = ", ".join(sorted(str(a) for a in ADMIN_ACTIONS))
                reader.problem(
                    where, f"unknown admin action {rule.permission} (one of {actions})"
                )
        elif isinstance(rule, RoleAssignment) and rule.subject.startswith(KEY_PREFIX):
            reader.problem(
                where,
                "an API key gets its role when it is created (orgguard keys "
                "create), not from policy files",
            )
        elif isinstance(rule, RoleAssignment):
            assignments.append((where, rule))
        else:
            reader.problem(where, "platform.csv holds only p3 and g2 rules")
    roles = {grant.role for grant in reader.snapshot.platform}
    for where, assignment in assignments:
        if assignment.role in roles:
            reader.snapshot.roles.append(assignment)
        else:
            reader.problem(where, f"role '{assignment.role}' has no p3 rule")


def _check_grant(reader: _Reader, where: str, grant: Grant) -> bool:
    entry = reader.catalogue.get(grant.permission)
    if entry is None:
        reader.problem(where, f"unknown permission {grant.permission}")
        return False
    if grant.scope is Scope.OWN and not entry.ownable:
        reader.problem(where, f"{grant.permission} cannot be limited to own resources")
        return False
    return True


def _read_company(reader: _Reader, path: Path) -> None:
    header: dict[str, tuple[str, str]] = {}  # key -> (value, 'file:line')
    group_names: dict[str, str] = {}
    for number, line in enumerate(_lines(path), start=1):
        match = _HEADER.fullmatch(line.strip())
        if match is None:
            continue
        key, group, value = match.groups()
        where = f"{path}:{number}"
        if group is not None:
            key = f"group {group}"
        if key in header:
            reader.problem(
                where, f"a second '# {key}:' line (first at {header[key][1]})"
            )
            continue
        header[key] = (value, where)
        if group is None:
            continue
        if group in PREDEFINED_GROUPS:
            reader.problem(where, f"'{group}' is a predefined group id")
        elif not is_name_id(group):
            reader.problem(where, f"'{group}' is not a valid group id")
        else:
            group_names[group] = value
            try:
                check_display_name(value, f"the name of group '{group}'")
            except InvalidInput as error:
                reader.problem(where, error.message)
            reader.snapshot.groups.append(CustomGroup(path.stem, group, value))

    company_id = path.stem
    if not is_name_id(company_id):
        reader.problem(str(path), "the file name is not a valid company id")
        return
    said, where = header.get("company", ("", f"{path}:1"))
    if said != company_id:
        reader.problem(where, f"the header must say '# company: {company_id}'")
    name, where = header.get("name", ("", str(path)))
    try:
        check_display_name(name, "name")
    except InvalidInput as error:
        reader.problem(where, f"header '# name:' {error.message}")
    parent, where = header.get("parent", ("", ""))
    if parent and not is_name_id(parent):
        reader.problem(where, f"parent '{parent}' is not a valid company id")
    reader.snapshot.companies.append(Company(company_id, name, parent or None))
    reader.parent_lines[company_id] = where or str(path)
    stated, said_at = header.get("revision", ("", ""))
    if stated.isdecimal():
        reader.snapshot.stated_revisions[company_id] = (int(stated), said_at)
    elif stated:
        reader.problem(said_at, "'# revision:' must be a whole number")

    groups_of: dict[str, list[str]] = defaultdict(list)
    first_line: dict[str, str] = {}
    for where, rule in reader.rules(path):
        if not isinstance(rule, Grant | Membership) or rule.company != company_id:
            reader.problem(
                where, f"a rule in this file must be in company {company_id}"
            )
        elif isinstance(rule, Grant):
            if rule.group in PREDEFINED_GROUPS:
                reader.problem(
                    where,
                    f"'{rule.group}' is a predefined group: its permissions are "
                    "the shared template (templates.csv), not a company's rules",
                )
            elif rule.group not in group_names:
                reader.problem(where, f"custom group '{rule.group}' has no header line")
            elif _check_grant(reader, where, rule):
                reader.snapshot.grants.append(rule)
        elif rule.group not in PREDEFINED_GROUPS and rule.group not in group_names:
            reader.problem(where, f"unknown group '{rule.group}'")
        else:
            groups_of[rule.user].append(rule.group)
            first_line.setdefault(rule.user, where)
            reader.snapshot.members.append(rule)

    for user, groups in sorted(groups_of.items()):
        exclusive = exclusive_groups(groups)
        if len(exclusive) > 1:
            reader.problem(
                first_line[user],
                f"'{user}' holds {' and '.join(exclusive)}: choose one",
            )
        if CONTACT not in groups:
            reader.problem(
                first_line[user], f"'{user}' is a member but not in group contact"
            )


def _check_tree(reader: _Reader, other_companies: Collection[str]) -> None:
    parents = {c.id: c.parent for c in reader.snapshot.companies}
    for company_id, parent in parents.items():
        if parent is None or parent in parents or parent in other_companies:
            continue
        reader.problem(
            reader.parent_lines[company_id], f"parent '{parent}' does not exist"
        )
    for start in parents:
        seen = {start}
        current = parents.get(start)
        while current is not None and current in parents:
            if current in seen:
                reader.problem(reader.parent_lines[start], "its parents form a cycle")
                break
            seen.add(current)
            current = parents[current]
    # Parents before subsidiaries, so a database with foreign keys accepts them.
    depth = {c: _depth(c, parents) for c in parents}
    reader.snapshot.companies.sort(key=lambda c: (depth[c.id], c.id))


def _depth(company_id: str, parents: dict[str, str | None]) -> int:
    depth, current, seen = 0, parents.get(company_id), {company_id}
    while current is not None and current not in seen:
        seen.add(current)
        depth += 1
        current = parents.get(current)
    return depth


# -- writing -------------------------------------------------------------------

CATALOGUE_FILE: Final = "catalogue.csv"
TEMPLATES_FILE: Final = "templates.csv"
PLATFORM_FILE: Final = "platform.csv"
_SHARED_HEADERS: Final[dict[str, tuple[str, ...]]] = {
    CATALOGUE_FILE: (
        "# The permission catalogue: p2, <resource>, <action>, <ownable yes|no>",
    ),
    TEMPLATES_FILE: (
        "# The predefined groups, shared by every company:",
        "# p, group:<id>, *, <resource>, <action>, <company|own>",
    ),
    PLATFORM_FILE: (
        "# Platform roles: p3, role:<id>, <resource>, <action>",
        "# and who holds them: g2, <user id>, role:<id>",
        "# (API keys get their role from 'orgguard keys create')",
    ),
}


def company_file(company_id: str) -> str:
    """A company's file, relative to the policy directory."""
    return f"companies/{company_id}.csv"


def file_of(rule: casbin_rules.Rule) -> str:
    """The file a rule lives in, relative to the policy directory."""
    if isinstance(rule, Grant):
        return TEMPLATES_FILE if rule.company is None else company_file(rule.company)
    if isinstance(rule, Membership):
        return company_file(rule.company)
    if isinstance(rule, CatalogueEntry):
        return CATALOGUE_FILE
    return PLATFORM_FILE


def group_header(group: CustomGroup) -> str:
    return f"# group {group.id}: {group.name}"


def render_policy(snapshot: Snapshot, revisions: Mapping[str, int]) -> dict[str, str]:
    """The policy as files, by path relative to the policy directory.

    Canonical: rows sorted, one format, so the same state always gives the
    same bytes and ``git diff`` shows only real changes. Each company file says
    the revision that last changed it (``revisions``), not the revision of the
    export, for the same reason. API keys' roles are left out: keys are made
    with ``orgguard keys create``, and a key's secret never lives in a file.
    """
    people = [r for r in snapshot.roles if not r.subject.startswith(KEY_PREFIX)]
    every: list[casbin_rules.Rule] = [
        *snapshot.catalogue,
        *snapshot.platform,
        *people,
        *snapshot.grants,
        *snapshot.memberships(),
    ]
    rules: dict[str, list[casbin_rules.Rule]] = defaultdict(list)
    for rule in every:
        rules[file_of(rule)].append(rule)
    files = {
        name: _file_text([*header, ""], rules[name])
        for name, header in _SHARED_HEADERS.items()
    }
    groups: dict[str, list[CustomGroup]] = defaultdict(list)
    for group in snapshot.groups:
        groups[group.company].append(group)
    for company in snapshot.companies:
        header = company_header(
            company, revisions.get(company.id, 0), groups[company.id]
        )
        name = company_file(company.id)
        files[name] = _file_text([*header, ""], rules[name])
    return files


def company_header(
    company: Company, revision: int, groups: Iterable[CustomGroup]
) -> list[str]:
    """The comment lines a company's file starts with."""
    header = [f"# company: {company.id}", f"# name: {company.name}"]
    if company.parent is not None:
        header.append(f"# parent: {company.parent}")
    header.append(f"# revision: {revision}")
    header.extend(group_header(group) for group in sorted(groups))
    return header


def shared_header(name: str) -> list[str]:
    """The comment lines of catalogue.csv, templates.csv or platform.csv."""
    return list(_SHARED_HEADERS[name])


def line_of(
    rule: casbin_rules.Rule, header: list[str], rules: Iterable[casbin_rules.Rule]
) -> int | None:
    """The line ``rule`` has in the exported file of ``header`` and ``rules``."""
    target = casbin_rules.format_row(casbin_rules.to_row(rule))
    text = _file_text([*header, ""], rules)
    for number, line in enumerate(text.splitlines(), start=1):
        if line == target:
            return number
    return None


def _file_text(header: list[str], rules: Iterable[casbin_rules.Rule]) -> str:
    """The header, then the rules: policies (p) before roles (g), each sorted."""
    policies: list[casbin_rules.Row] = []
    roles: list[casbin_rules.Row] = []
    for rule in rules:
        row = casbin_rules.to_row(rule)
        (roles if row[0].startswith("g") else policies).append(row)
    policies.sort()
    roles.sort()
    rows = [*policies, *roles]
    lines = [*header]
    previous = ""
    for row in rows:
        if previous and row[0] != previous:
            lines.append("")
        previous = row[0]
        lines.append(casbin_rules.format_row(row))
    return "\n".join(lines) + "\n"


def write_policy_dir(directory: Path, files: Mapping[str, str]) -> None:
    """Write rendered files; company files of companies no longer there go."""
    companies = directory / "companies"
    companies.mkdir(parents=True, exist_ok=True)
    for stale in companies.glob("*.csv"):
        if f"companies/{stale.name}" not in files:
            stale.unlink()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8", newline="\n")
