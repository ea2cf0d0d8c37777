"""The compiled policy: every decision is a few dictionary look-ups.

``PolicyIndex.decide`` gives exactly the answer Casbin gives for ``model.conf``
over the same rules (the parity and property tests hold it to that), at a cost
that does not grow with the number of companies: the request's company and user
select the user's groups, and each group's grants are a dictionary keyed by
permission.

Concurrency: one writer at a time (the caller holds a lock) and any number of
readers without a lock. Writes replace whole values (a user's group tuple, a
grant's scope set) rather than mutating what a reader may be iterating.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

from orgguard.policy.model import (
    PREDEFINED_GROUPS,
    CatalogueEntry,
    Change,
    Company,
    CustomGroup,
    Grant,
    Membership,
    Permission,
    PlatformGrant,
    RoleAssignment,
    Scope,
    ScopedPermission,
    Snapshot,
)

_Scopes = frozenset[Scope]
_NO_GRANTS: Final[dict[Permission, _Scopes]] = {}
_NONE: Final[_Scopes] = frozenset()


class Decision(NamedTuple):
    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class EffectivePermission:
    permission: ScopedPermission
    groups: tuple[str, ...]


class PolicyIndex:
    def __init__(self) -> None:
        self.revision = 0
        self.catalogue: dict[Permission, CatalogueEntry] = {}
        self.companies: dict[str, Company] = {}
        self.children: dict[str, set[str]] = {}
        # company -> custom group id -> group
        self.groups: dict[str, dict[str, CustomGroup]] = {}
        # predefined group -> permission -> scopes
        self.templates: dict[str, dict[Permission, _Scopes]] = {}
        # (company, custom group) -> permission -> scopes
        self.custom: dict[tuple[str, str], dict[Permission, _Scopes]] = {}
        # company -> user -> sorted group ids
        self.members: dict[str, dict[str, tuple[str, ...]]] = {}
        # user -> its companies, sorted (a tuple: small, and replaced whole)
        self.user_companies: dict[str, tuple[str, ...]] = {}
        # platform role -> the admin actions it allows
        self.platform: dict[str, frozenset[Permission]] = {}
        # user or key:<name> -> platform roles
        self.roles: dict[str, frozenset[str]] = {}

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> PolicyIndex:
        """Build the whole index at once: memberships are grouped per (company,
        user) first, so each user's group tuple is made once, not per row."""
        index = cls()
        index.apply(snapshot.as_change("load", members=False), snapshot.revision)
        grouped = snapshot.member_groups
        if snapshot.members:
            grouped = {
                c: {u: list(g) for u, g in us.items()} for c, us in grouped.items()
            }
            for m in snapshot.members:
                grouped.setdefault(m.company, {}).setdefault(m.user, []).append(m.group)
        companies_of: dict[str, list[str]] = {}
        for company, users in grouped.items():
            members = index.members.setdefault(company, {})
            for user, groups in users.items():
                members[user] = _ordered(groups)
                companies_of.setdefault(user, []).append(company)
        alone: dict[str, tuple[str]] = {}  # one shared tuple per company
        index.user_companies = {
            user: alone.setdefault(companies[0], (companies[0],))
            if len(companies) == 1
            else tuple(sorted(companies))
            for user, companies in companies_of.items()
        }
        return index

    # -- decisions ---------------------------------------------------------

    def decide(
        self,
        user: str,
        company: str,
        resource: str,
        action: str,
        owner: str | None = None,
    ) -> Decision:
        members = self.members.get(company)
        if members is None:
            return Decision(False, f"unknown company '{company}'")
        groups = members.get(user)
        if not groups:
            return Decision(False, f"'{user}' is not a member of company '{company}'")

        # Built at C speed: this is the hot path (Permission is a named tuple).
        permission = tuple.__new__(Permission, (resource, action))
        own_only: str | None = None
        for group in groups:
            scopes = self.scopes(company, group, permission)
            if not scopes:
                continue
            if Scope.COMPANY in scopes:
                return Decision(True, f"granted by group '{group}' in '{company}'")
            if owner == user:
                return Decision(
                    True, f"granted by group '{group}' in '{company}' (own resource)"
                )
            own_only = own_only or group

        if own_only is not None:
            whose = "no owner was given" if owner is None else f"the owner is '{owner}'"
            return Decision(
                False,
                f"group '{own_only}' grants {permission} only on resources "
                f"'{user}' owns, and {whose}",
            )
        if permission not in self.catalogue:
            return Decision(False, f"unknown permission {permission}")
        return Decision(
            False,
            f"no group of '{user}' in '{company}' grants {permission} "
            f"(groups: {', '.join(groups)})",
        )

    def scopes(self, company: str, group: str, permission: Permission) -> _Scopes:
        # As in the matcher, a group's template rules and its company rules add up
        # (orgguard itself only writes templates for predefined groups and company
        # rules for custom ones).
        template = self.templates.get(group, _NO_GRANTS).get(permission)
        custom = self.custom.get((company, group))
        if custom is None:
            return template or _NONE
        scopes = custom.get(permission)
        if template is None:
            return scopes or _NONE
        return template | scopes if scopes else template

    def _grants_of(self, company: str, group: str) -> dict[Permission, _Scopes]:
        grants = dict(self.templates.get(group, _NO_GRANTS))
        for permission, scopes in self.custom.get((company, group), {}).items():
            grants[permission] = grants.get(permission, frozenset()) | scopes
        return grants

    def platform_role_for(self, subject: str, permission: Permission) -> str | None:
        """The platform role through which ``subject`` may take the admin action
        (Casbin's ``m2`` matcher), or None."""
        for role in sorted(self.roles.get(subject, ())):
            if permission in self.platform.get(role, ()):
                return role
        return None

    def ancestors(self, company: str) -> list[str]:
        """The company's parent, its parent's parent, and so on."""
        chain: list[str] = []
        current = self.companies.get(company)
        while current is not None and current.parent is not None:
            if current.parent in chain or current.parent == company:
                break  # a cycle cannot be stored; never loop on one anyway
            chain.append(current.parent)
            current = self.companies.get(current.parent)
        return chain

    def descendants(self, company: str) -> list[str]:
        """Every subsidiary of the company, at any depth, sorted."""
        found: list[str] = []
        pending = [company]
        while pending:
            for child in self.children.get(pending.pop(), set()).copy():
                if child not in found and child != company:
                    found.append(child)
                    pending.append(child)
        return sorted(found)

    # -- reverse queries -----------------------------------------------------

    def effective_permissions(
        self, company: str, user: str
    ) -> list[EffectivePermission]:
        """What ``decide`` allows the user in the company, with the granting groups."""
        found: dict[ScopedPermission, list[str]] = {}
        for group in self.members.get(company, {}).get(user, ()):
            for permission, scopes in self._grants_of(company, group).items():
                for scope in scopes:
                    found.setdefault(ScopedPermission(permission, scope), []).append(
                        group
                    )
        # An own-only grant adds nothing where the same permission is company-wide.
        return [
            EffectivePermission(scoped, tuple(groups))
            for scoped, groups in sorted(found.items())
            if scoped.scope is Scope.COMPANY
            or ScopedPermission(scoped.permission, Scope.COMPANY) not in found
        ]

    def group_ids(self, company: str) -> list[str]:
        return [*PREDEFINED_GROUPS, *sorted(self.groups.get(company, {}))]

    def group_grants(self, company: str, group: str) -> list[ScopedPermission]:
        return sorted(
            ScopedPermission(permission, scope)
            for permission, scopes in self._grants_of(company, group).items()
            for scope in scopes
        )

    def group_exists(self, company: str, group: str) -> bool:
        return group in PREDEFINED_GROUPS or group in self.groups.get(company, {})

    # -- writes ----------------------------------------------------------------

    def apply(self, change: Change, revision: int) -> None:
        """Apply a change that the database has committed as ``revision``."""
        for assignment in change.remove_roles:
            self._set_role(assignment, add=False)
        for membership in change.remove_members:
            self._set_groups(membership, add=False)
        for grant in change.remove_grants:
            self._set_scope(grant, add=False)
        for group in change.remove_groups:
            # Only the group's record: its rules go with remove_grants, so a
            # rename (remove and add the record) keeps them.
            self.groups.get(group.company, {}).pop(group.id, None)
        for company_id in change.remove_companies:
            self._remove_company(company_id)

        for entry in change.add_catalogue:
            self.catalogue[entry.permission] = entry
        for company in change.add_companies:
            self.groups.setdefault(company.id, {})
            self.members.setdefault(company.id, {})
            self.children.setdefault(company.id, set())
            if company.parent is not None:
                self.children.setdefault(company.parent, set()).add(company.id)
            self.companies[company.id] = company
        for group in change.add_groups:
            self.groups.setdefault(group.company, {})[group.id] = group
        for grant in change.add_grants:
            self._set_scope(grant, add=True)
        for membership in change.add_members:
            self._set_groups(membership, add=True)
        for platform_grant in change.add_platform:
            self._add_platform(platform_grant)
        for assignment in change.add_roles:
            self._set_role(assignment, add=True)
        self.revision = revision

    def _add_platform(self, grant: PlatformGrant) -> None:
        held = self.platform.get(grant.role, frozenset())
        self.platform[grant.role] = held | {grant.permission}

    def _set_role(self, assignment: RoleAssignment, *, add: bool) -> None:
        held = self.roles.get(assignment.subject, frozenset())
        held = held | {assignment.role} if add else held - {assignment.role}
        if held:
            self.roles[assignment.subject] = held
        else:
            self.roles.pop(assignment.subject, None)

    def _remove_company(self, company_id: str) -> None:
        company = self.companies.pop(company_id, None)
        for user in self.members.pop(company_id, {}):
            self._set_user_company(user, company_id, add=False)
        for group in self.groups.pop(company_id, {}):
            self.custom.pop((company_id, group), None)
        self.children.pop(company_id, None)
        if company is not None and company.parent is not None:
            self.children.get(company.parent, set()).discard(company_id)

    def _set_scope(self, grant: Grant, *, add: bool) -> None:
        if grant.company is None:
            grants = self.templates.setdefault(grant.group, {})
        else:
            grants = self.custom.setdefault((grant.company, grant.group), {})
        scopes = grants.get(grant.permission, frozenset())
        scopes = scopes | {grant.scope} if add else scopes - {grant.scope}
        if scopes:
            grants[grant.permission] = scopes
        else:
            grants.pop(grant.permission, None)
            if not grants and grant.company is not None:
                self.custom.pop((grant.company, grant.group), None)

    def _set_groups(self, membership: Membership, *, add: bool) -> None:
        company, user = membership.company, membership.user
        members = self.members.setdefault(company, {})
        groups = set(members.get(user, ()))
        if add:
            groups.add(membership.group)
        else:
            groups.discard(membership.group)
        if groups:
            members[user] = _ordered(groups)
        else:
            members.pop(user, None)
        self._set_user_company(user, company, add=bool(groups))

    def _set_user_company(self, user: str, company: str, *, add: bool) -> None:
        held = self.user_companies.get(user, ())
        if add == (company in held):
            return
        if add:
            self.user_companies[user] = tuple(sorted((*held, company)))
        elif len(held) > 1:
            self.user_companies[user] = tuple(c for c in held if c != company)
        else:
            del self.user_companies[user]


def _ordered(groups: Iterable[str]) -> tuple[str, ...]:
    """Predefined groups first, in their fixed order, then custom ones by id.

    Few distinct combinations exist, so equal ones share one tuple (memory, and
    time at load)."""
    key = frozenset(groups)
    found = _GROUP_TUPLES.get(key)
    if found is None:
        predefined = [group for group in PREDEFINED_GROUPS if group in key]
        found = (*predefined, *sorted(key - set(PREDEFINED_GROUPS)))
        if len(_GROUP_TUPLES) < 100_000:
            _GROUP_TUPLES[key] = found
    return found


_GROUP_TUPLES: dict[frozenset[str], tuple[str, ...]] = {}
