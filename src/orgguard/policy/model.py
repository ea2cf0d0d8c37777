"""The policy's vocabulary: companies, groups, permissions, grants, memberships,
and the platform: seller roles, their permissions, and who holds them.

These types know nothing of Casbin; ``orgguard.policy.casbin_rules`` encodes them
as Casbin rules and back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, NamedTuple

from orgguard.errors import InvalidInput
from orgguard.ids import check_name_id

# The action of the audit record of ``orgguard policy import``: one record for
# many companies, named in its ``after["companies"]``.
IMPORT_ACTION: Final = "policy.import"

ADMIN: Final = "admin"
BUYER: Final = "buyer"
REQUESTER: Final = "requester"
CONTACT: Final = "contact"
PREDEFINED_GROUPS: Final = (ADMIN, BUYER, REQUESTER, CONTACT)
# A user holds at most one of these in a company.
EXCLUSIVE_GROUPS: Final = frozenset({ADMIN, BUYER, REQUESTER})


def exclusive_groups(groups: Iterable[str]) -> list[str]:
    """The exclusive groups among these, sorted; more than one is not allowed."""
    return sorted(set(groups) & EXCLUSIVE_GROUPS)


class Scope(StrEnum):
    """How far a grant reaches: every resource of the company, or the user's own."""

    COMPANY = "company"
    OWN = "own"


class Permission(NamedTuple):
    """``resource:action``. A named tuple: it is the key of every grant
    look-up, and a tuple hashes and compares in C."""

    resource: str
    action: str

    def __str__(self) -> str:
        return f"{self.resource}:{self.action}"

    @classmethod
    def parse(cls, text: str, field: str = "permission") -> Permission:
        resource, sep, action = text.partition(":")
        if not sep:
            raise InvalidInput(f"{field} must be 'resource:action'", field=field)
        return cls(check_name_id(resource, field), check_name_id(action, field))


@dataclass(frozen=True, slots=True, order=True)
class ScopedPermission:
    """A permission as a group holds it: ``orders:read`` or ``orders:read:own``."""

    permission: Permission
    scope: Scope

    def __str__(self) -> str:
        if self.scope is Scope.OWN:
            return f"{self.permission}:own"
        return str(self.permission)

    @classmethod
    def parse(cls, text: str, field: str = "permission") -> ScopedPermission:
        base, own = text, text.endswith(":own") and text.count(":") == 2
        if own:
            base = text[: -len(":own")]
        scope = Scope.OWN if own else Scope.COMPANY
        return cls(Permission.parse(base, field), scope)


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    permission: Permission
    ownable: bool


@dataclass(frozen=True, slots=True, order=True)
class Grant:
    """A group's permission; ``company`` is None for a predefined group's template."""

    company: str | None
    group: str
    permission: Permission
    scope: Scope


@dataclass(frozen=True, slots=True, order=True)
class Membership:
    company: str
    user: str
    group: str


@dataclass(frozen=True, slots=True)
class Company:
    id: str
    name: str
    parent: str | None


@dataclass(frozen=True, slots=True, order=True)
class CustomGroup:
    company: str
    id: str
    name: str


@dataclass(frozen=True, slots=True, order=True)
class PlatformGrant:
    """A platform role's permission on an admin action (a p3 rule)."""

    role: str
    permission: Permission


@dataclass(frozen=True, slots=True, order=True)
class RoleAssignment:
    """A person (user id) or an API key (``key:<name>``) holding a platform role."""

    subject: str
    role: str


KEY_PREFIX: Final = "key:"


def key_subject(name: str) -> str:
    return KEY_PREFIX + name


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key: its public id and a salted hash, never the secret."""

    id: str
    name: str
    role: str
    salt: str
    digest: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None


@dataclass
class Change:
    """One write, as rows to add and remove; the database and the index apply it.

    Removals are applied before additions, so a change may replace a row. The
    actor, request id and the before and after states become the change's audit
    record, written in the same transaction.
    """

    action: str
    company: str | None = None
    actor: str = "orgguard"
    request_id: str | None = None
    before: Any = None
    after: Any = None
    add_companies: list[Company] = field(default_factory=list)
    remove_companies: list[str] = field(default_factory=list)
    add_groups: list[CustomGroup] = field(default_factory=list)
    remove_groups: list[CustomGroup] = field(default_factory=list)
    add_grants: list[Grant] = field(default_factory=list)
    remove_grants: list[Grant] = field(default_factory=list)
    add_members: list[Membership] = field(default_factory=list)
    remove_members: list[Membership] = field(default_factory=list)
    add_catalogue: list[CatalogueEntry] = field(default_factory=list)
    add_platform: list[PlatformGrant] = field(default_factory=list)
    add_roles: list[RoleAssignment] = field(default_factory=list)
    remove_roles: list[RoleAssignment] = field(default_factory=list)
    add_keys: list[ApiKey] = field(default_factory=list)
    revoke_keys: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not any(
            (
                self.add_platform,
                self.add_roles,
                self.remove_roles,
                self.add_keys,
                self.revoke_keys,
                self.add_companies,
                self.remove_companies,
                self.add_groups,
                self.remove_groups,
                self.add_grants,
                self.remove_grants,
                self.add_members,
                self.remove_members,
                self.add_catalogue,
            )
        )

    def summary(self) -> dict[str, int]:
        counts = {
            "companies_added": len(self.add_companies),
            "companies_removed": len(self.remove_companies),
            "groups_added": len(self.add_groups),
            "groups_removed": len(self.remove_groups),
            "grants_added": len(self.add_grants),
            "grants_removed": len(self.remove_grants),
            "members_added": len(self.add_members),
            "members_removed": len(self.remove_members),
            "catalogue_added": len(self.add_catalogue),
            "platform_rules_added": len(self.add_platform),
            "roles_added": len(self.add_roles),
            "roles_removed": len(self.remove_roles),
            "keys_added": len(self.add_keys),
            "keys_revoked": len(self.revoke_keys),
        }
        return {key: value for key, value in counts.items() if value}


@dataclass
class Snapshot:
    """The whole policy as loaded from the database or from files."""

    revision: int = 0
    catalogue: list[CatalogueEntry] = field(default_factory=list)
    companies: list[Company] = field(default_factory=list)
    groups: list[CustomGroup] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    members: list[Membership] = field(default_factory=list)
    platform: list[PlatformGrant] = field(default_factory=list)
    roles: list[RoleAssignment] = field(default_factory=list)
    # More memberships, grouped: company -> user -> groups. The database load
    # fills this instead of ``members`` (millions of rows; the index wants
    # them grouped anyway).
    member_groups: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # Read from files: company -> (the revision its file's '# revision:' line
    # states, that line as 'file:line').
    stated_revisions: dict[str, tuple[int, str]] = field(default_factory=dict)

    def memberships(self) -> list[Membership]:
        grouped = [
            Membership(company, user, group)
            for company, users in self.member_groups.items()
            for user, groups in users.items()
            for group in groups
        ]
        return [*self.members, *grouped]

    def as_change(self, action: str, *, members: bool = True) -> Change:
        """Everything in the snapshot as rows to add (memberships optional)."""
        return Change(
            action=action,
            add_platform=list(self.platform),
            add_roles=list(self.roles),
            add_companies=list(self.companies),
            add_groups=list(self.groups),
            add_grants=list(self.grants),
            add_members=self.memberships() if members else [],
            add_catalogue=list(self.catalogue),
        )
