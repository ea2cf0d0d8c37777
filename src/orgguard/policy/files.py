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
from dataclasses import dataclass, field
from pathlib import Path

from orgguard.errors import InvalidInput, PolicyFileError
from orgguard.ids import check_display_name, is_name_id
from orgguard.policy import casbin_rules
from orgguard.policy.actions import ADMIN_ACTIONS
from orgguard.policy.model import (
    CONTACT,
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

_HEADER = re.compile(r"#\s*(company|name|parent|group\s+(\S+))\s*:\s*(.*?)\s*")


@dataclass
class _Reader:
    problems: list[str] = field(default_factory=list)
    snapshot: Snapshot = field(default_factory=Snapshot)
    catalogue: dict[Permission, CatalogueEntry] = field(default_factory=dict)

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
                found.append((where, casbin_rules.from_row(row)))
            except InvalidInput as error:
                self.problem(where, error.message)
        return found


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyFileError([f"{path}: cannot read: {error}"]) from error


def read_policy_dir(directory: Path) -> Snapshot:
    """Read and validate a policy directory; PolicyFileError lists every problem."""
    if not directory.is_dir():
        raise PolicyFileError([f"{directory}: not a directory"])
    reader = _Reader()
    _read_catalogue(reader, directory / "catalogue.csv")
    _read_templates(reader, directory / "templates.csv")
    _read_platform(reader, directory / "platform.csv")
    company_files = sorted((directory / "companies").glob("*.csv"))
    for path in company_files:
        _read_company(reader, path)
    _check_tree(reader, {path.stem: path for path in company_files})
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
    header: dict[str, str] = {}
    group_names: dict[str, str] = {}
    for line in _lines(path):
        match = _HEADER.fullmatch(line.strip())
        if match is None:
            continue
        key, group, value = match.groups()
        if group is not None:
            group_names[group] = value
        else:
            header[key] = value

    company_id = path.stem
    if not is_name_id(company_id):
        reader.problem(str(path), "the file name is not a valid company id")
        return
    if header.get("company") != company_id:
        reader.problem(str(path), f"the header must say '# company: {company_id}'")
    name = header.get("name", "")
    try:
        check_display_name(name, "name")
    except InvalidInput as error:
        reader.problem(str(path), f"header '# name:' {error.message}")
    parent = header.get("parent") or None
    reader.snapshot.companies.append(Company(company_id, name, parent))

    for group, group_name in sorted(group_names.items()):
        if group in PREDEFINED_GROUPS:
            reader.problem(str(path), f"'{group}' is a predefined group id")
        elif not is_name_id(group):
            reader.problem(str(path), f"'{group}' is not a valid group id")
        else:
            reader.snapshot.groups.append(CustomGroup(company_id, group, group_name))

    groups_of: dict[str, list[str]] = defaultdict(list)
    first_line: dict[str, str] = {}
    for where, rule in reader.rules(path):
        if not isinstance(rule, Grant | Membership) or rule.company != company_id:
            reader.problem(
                where, f"a rule in this file must be in company {company_id}"
            )
        elif isinstance(rule, Grant):
            if rule.group not in group_names:
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


def _check_tree(reader: _Reader, files: dict[str, Path]) -> None:
    parents = {c.id: c.parent for c in reader.snapshot.companies}
    for company_id, parent in parents.items():
        if parent is not None and parent not in parents:
            reader.problem(str(files[company_id]), f"parent '{parent}' does not exist")
    for start in parents:
        seen = {start}
        current = parents.get(start)
        while current is not None and current in parents:
            if current in seen:
                reader.problem(str(files[start]), "its parents form a cycle")
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
