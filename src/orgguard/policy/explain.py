"""Why a check was allowed or denied: the whole path, and for a deny what came
closest.

``explain`` reads the same index ``decide`` reads and reaches the same verdict
(the tests hold the two together); it names the user's groups in the company,
every Casbin rule of theirs that matched (or matched but for the owner), and,
for a deny, the near misses: a group of the company that would grant the
permission, the same permission held in another company, a permission of the
catalogue that differs only in the action. The service adds since when each
membership holds (from the change log) and where each rule is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orgguard.policy import casbin_rules, files
from orgguard.policy.index import Decision, PolicyIndex
from orgguard.policy.model import Grant, Membership, Permission, Scope

NEAR_MISSES_AT_MOST = 5


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A p rule of one of the user's groups for the permission asked."""

    group: str
    grant: Grant  # company None: the predefined group's template
    applies: bool  # False: own resources only, and the owner is someone else
    line: int | None = None  # its line in ``source``, in an export made now

    @property
    def rule(self) -> str:
        return casbin_rules.format_row(casbin_rules.to_row(self.grant))

    @property
    def source(self) -> str:
        """The file of an export that holds the rule."""
        return files.file_of(self.grant)


@dataclass(slots=True)
class Explanation:
    decision: Decision
    groups: tuple[str, ...] = ()  # the user's groups in the company
    rules: list[RuleMatch] = field(default_factory=list)
    near_misses: list[str] = field(default_factory=list)


def explain(
    index: PolicyIndex,
    user: str,
    company: str,
    resource: str,
    action: str,
    owner: str | None = None,
    may_read: Callable[[str], bool] = lambda _company: True,
) -> Explanation:
    """``may_read``: whether the asker may read a company's members; the
    near misses name no other company it may not."""
    decision = index.decide(user, company, resource, action, owner)
    permission = Permission(resource, action)
    found = Explanation(decision, index.members.get(company, {}).get(user, ()))
    for group in found.groups:
        for scope in sorted(index.scopes(company, group, permission)):
            for grant in _stored_grants(index, company, group, permission, scope):
                applies = scope is Scope.COMPANY or owner == user
                line = _export_line(index, grant)
                found.rules.append(RuleMatch(group, grant, applies, line))
    if not decision.allowed:
        found.near_misses = _near_misses(
            index, user, company, permission, found, may_read
        )
    return found


def _stored_grants(
    index: PolicyIndex, company: str, group: str, permission: Permission, scope: Scope
) -> list[Grant]:
    """The rules behind a scope: the template's, the company's, or both."""
    grants = []
    if scope in index.templates.get(group, {}).get(permission, ()):
        grants.append(Grant(None, group, permission, scope))
    if scope in index.custom.get((company, group), {}).get(permission, ()):
        grants.append(Grant(company, group, permission, scope))
    return grants


def _export_line(index: PolicyIndex, grant: Grant) -> int | None:
    """Where ``orgguard policy export`` would write the rule: the rules of its
    file are laid out as the export lays them out (the header's length does
    not depend on the revision it states)."""
    if grant.company is None:
        header = files.shared_header(files.TEMPLATES_FILE)
        rules: list[casbin_rules.Rule] = [
            Grant(None, group, permission, scope)
            for group, grants in index.templates.items()
            for permission, scopes in grants.items()
            for scope in scopes
        ]
        return files.line_of(grant, header, rules)
    company = index.companies[grant.company]
    groups = index.groups.get(company.id, {}).values()
    header = files.company_header(company, 0, groups)
    rules = [
        Grant(company.id, group, permission, scope)
        for (owner, group), grants in index.custom.items()
        if owner == company.id
        for permission, scopes in grants.items()
        for scope in scopes
    ]
    rules += [
        Membership(company.id, user, group)
        for user, held in index.members.get(company.id, {}).items()
        for group in held
    ]
    return files.line_of(grant, header, rules)


def _near_misses(
    index: PolicyIndex,
    user: str,
    company: str,
    permission: Permission,
    found: Explanation,
    may_read: Callable[[str], bool],
) -> list[str]:
    misses: list[str] = []
    for match in found.rules:
        misses.append(
            f"group '{match.group}' grants {permission} only on resources "
            f"'{user}' owns ({match.rule})"
        )
    if company in index.members:
        for group in index.group_ids(company):
            if group in found.groups:
                continue
            scopes = index.scopes(company, group, permission)
            if scopes:
                reach = "" if Scope.COMPANY in scopes else " on own resources"
                misses.append(
                    f"group '{group}' in '{company}' grants {permission}{reach}; "
                    f"'{user}' is not in it"
                )
    for other in index.user_companies.get(user, ()):
        if (
            other != company
            and may_read(other)
            and index.decide(user, other, *permission).allowed
        ):
            misses.append(f"'{user}' holds {permission} in '{other}', not here")
    if permission not in index.catalogue:
        similar = sorted(
            str(known)
            for known in index.catalogue
            if known.resource == permission.resource
        )
        if similar:
            misses.append(
                f"{permission} is not in the catalogue; '{permission.resource}' "
                f"has {', '.join(similar)}"
            )
    return misses[:NEAR_MISSES_AT_MOST]
