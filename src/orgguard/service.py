"""The authorizer: decisions and the administration of companies, groups and members.

Every write follows the same steps under one lock: validate against the current
state, describe the write as a ``Change``, commit it to the database, then apply
the same change to the in-memory index. A write the database refuses never
reaches memory, so the two cannot drift apart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from orgguard.errors import Conflict, InvalidInput, NotFound
from orgguard.ids import check_display_name, check_name_id, check_user_id
from orgguard.policy.index import Decision, EffectivePermission, PolicyIndex
from orgguard.policy.model import (
    CONTACT,
    PREDEFINED_GROUPS,
    Change,
    Company,
    CustomGroup,
    Grant,
    Membership,
    Permission,
    Scope,
    ScopedPermission,
    Snapshot,
    exclusive_groups,
)
from orgguard.storage.store import PolicyStore

log = logging.getLogger(__name__)

INTERNAL_ERROR_REASON = "internal error while deciding; denied (see the service log)"


@dataclass(frozen=True, slots=True)
class GroupView:
    id: str
    name: str
    predefined: bool
    permissions: list[ScopedPermission]


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None


class Authorizer:
    def __init__(self, store: PolicyStore, index: PolicyIndex) -> None:
        self.store = store
        self.index = index
        self._write_lock = threading.Lock()

    @classmethod
    def open(cls, store: PolicyStore) -> Authorizer:
        return cls(store, PolicyIndex.from_snapshot(store.load()))

    @property
    def revision(self) -> int:
        return self.index.revision

    # -- decisions -------------------------------------------------------------

    def check(
        self,
        user: str,
        company: str,
        resource: str,
        action: str,
        owner: str | None = None,
    ) -> Decision:
        """Decide; an internal error is a deny with a reason, never an exception."""
        try:
            return self.index.decide(user, company, resource, action, owner)
        except Exception:
            log.exception(
                "decision failed: user=%s company=%s permission=%s:%s",
                user,
                company,
                resource,
                action,
            )
            return Decision(False, INTERNAL_ERROR_REASON)

    def check_many(
        self, requests: Iterable[tuple[str, str, str, str, str | None]]
    ) -> tuple[list[Decision], int]:
        """Decide a batch at one revision: no write lands while it runs."""
        with self._write_lock:
            return [self.check(*request) for request in requests], self.revision

    # -- companies ---------------------------------------------------------------

    def list_companies(self, after: str | None, limit: int) -> Page[Company]:
        return _page(self.index.companies, after, limit, self.index.companies.get)

    def get_company(self, company_id: str) -> Company:
        company = self.index.companies.get(company_id)
        if company is None:
            raise NotFound(f"company '{company_id}' does not exist", field="company")
        return company

    def subsidiaries(self, company_id: str) -> list[str]:
        return sorted(self.index.children.get(company_id, ()))

    def create_company(self, company_id: str, name: str, parent: str | None) -> int:
        check_name_id(company_id, "id")
        check_display_name(name, "name")
        if parent is not None:
            check_name_id(parent, "parent")
        with self._write_lock:
            if company_id in self.index.companies:
                raise Conflict(f"company '{company_id}' already exists", field="id")
            if parent is not None and parent not in self.index.companies:
                raise NotFound(
                    f"parent company '{parent}' does not exist", field="parent"
                )
            change = Change("company.create", company_id)
            change.add_companies.append(Company(company_id, name, parent))
            return self._commit(change)

    def delete_company(self, company_id: str, cascade: bool) -> int:
        with self._write_lock:
            self.get_company(company_id)
            doomed = self._subtree(company_id)
            if len(doomed) > 1 and not cascade:
                raise Conflict(
                    f"company '{company_id}' has subsidiaries "
                    f"({', '.join(sorted(doomed[:-1]))}); delete with cascade=true",
                    field="cascade",
                )
            change = Change("company.delete", company_id)
            for doomed_id in doomed:
                self._forget_company(change, doomed_id)
            return self._commit(change)

    def _subtree(self, company_id: str) -> list[str]:
        """The company and all its subsidiaries, deepest first."""
        order: list[str] = []

        def visit(current: str) -> None:
            for child in sorted(self.index.children.get(current, ())):
                visit(child)
            order.append(current)

        visit(company_id)
        return order

    def _forget_company(self, change: Change, company_id: str) -> None:
        for user, groups in self.index.members.get(company_id, {}).items():
            change.remove_members.extend(
                Membership(company_id, user, group) for group in groups
            )
        for group in self.index.groups.get(company_id, {}).values():
            change.remove_grants.extend(
                _grants(group, self.index.group_grants(company_id, group.id))
            )
            change.remove_groups.append(group)
        change.remove_companies.append(company_id)

    # -- groups ------------------------------------------------------------------

    def list_groups(self, company_id: str) -> list[GroupView]:
        self.get_company(company_id)
        return [
            self._group_view(company_id, g) for g in self.index.group_ids(company_id)
        ]

    def get_group(self, company_id: str, group_id: str) -> GroupView:
        self.get_company(company_id)
        if not self.index.group_exists(company_id, group_id):
            raise NotFound(
                f"group '{group_id}' does not exist in company '{company_id}'",
                field="group",
            )
        return self._group_view(company_id, group_id)

    def _group_view(self, company_id: str, group_id: str) -> GroupView:
        custom = self.index.groups.get(company_id, {}).get(group_id)
        return GroupView(
            id=group_id,
            name=custom.name if custom else group_id,
            predefined=custom is None,
            permissions=self.index.group_grants(company_id, group_id),
        )

    def create_group(
        self, company_id: str, group_id: str, name: str, permissions: Iterable[str]
    ) -> int:
        check_name_id(group_id, "id")
        check_display_name(name, "name")
        wanted = self._parse_permissions(permissions)
        with self._write_lock:
            self.get_company(company_id)
            if group_id in PREDEFINED_GROUPS:
                raise Conflict(f"'{group_id}' is a predefined group id", field="id")
            if self.index.group_exists(company_id, group_id):
                raise Conflict(
                    f"group '{group_id}' already exists in company '{company_id}'",
                    field="id",
                )
            group = CustomGroup(company_id, group_id, name)
            change = Change("group.create", company_id)
            change.add_groups.append(group)
            change.add_grants.extend(_grants(group, wanted))
            return self._commit(change)

    def update_group(
        self,
        company_id: str,
        group_id: str,
        name: str | None,
        permissions: Iterable[str] | None,
    ) -> int:
        if name is not None:
            check_display_name(name, "name")
        wanted = None if permissions is None else self._parse_permissions(permissions)
        with self._write_lock:
            group = self._custom_group(company_id, group_id)
            change = Change("group.update", company_id)
            if name is not None and name != group.name:
                renamed = CustomGroup(company_id, group_id, name)
                change.remove_groups.append(group)
                change.add_groups.append(renamed)
            if wanted is not None:
                held = set(self.index.group_grants(company_id, group_id))
                change.remove_grants.extend(_grants(group, held - wanted))
                change.add_grants.extend(_grants(group, wanted - held))
            return self._commit(change)

    def delete_group(self, company_id: str, group_id: str) -> int:
        """Delete a custom group and its rules; its members leave it."""
        with self._write_lock:
            group = self._custom_group(company_id, group_id)
            change = Change("group.delete", company_id)
            change.remove_grants.extend(
                _grants(group, self.index.group_grants(company_id, group_id))
            )
            for user, groups in self.index.members.get(company_id, {}).items():
                if group_id in groups:
                    change.remove_members.append(Membership(company_id, user, group_id))
            change.remove_groups.append(group)
            return self._commit(change)

    def _custom_group(self, company_id: str, group_id: str) -> CustomGroup:
        self.get_group(company_id, group_id)
        group = self.index.groups.get(company_id, {}).get(group_id)
        if group is None:
            raise Conflict(
                f"'{group_id}' is a predefined group: it is a shared template and "
                "cannot be renamed, edited or deleted in one company",
                field="group",
            )
        return group

    def _parse_permissions(self, texts: Iterable[str]) -> set[ScopedPermission]:
        wanted: set[ScopedPermission] = set()
        for position, text in enumerate(texts):
            field = f"permissions[{position}]"
            if not isinstance(text, str):
                raise InvalidInput(f"{field} must be a string", field=field)
            scoped = ScopedPermission.parse(text, field)
            entry = self.index.catalogue.get(scoped.permission)
            if entry is None:
                raise InvalidInput(
                    f"{field}: unknown permission {scoped.permission}", field=field
                )
            if scoped.scope is Scope.OWN and not entry.ownable:
                raise InvalidInput(
                    f"{field}: {scoped.permission} cannot be limited to own resources",
                    field=field,
                )
            wanted.add(scoped)
        return wanted

    # -- members -------------------------------------------------------------------

    def list_members(
        self, company_id: str, after: str | None, limit: int
    ) -> Page[tuple[str, tuple[str, ...]]]:
        self.get_company(company_id)
        members = self.index.members.get(company_id, {})

        def entry(user: str) -> tuple[str, tuple[str, ...]] | None:
            groups = members.get(user)
            return None if groups is None else (user, groups)

        return _page(members, after, limit, entry)

    def get_member(self, company_id: str, user: str) -> tuple[str, ...]:
        self.get_company(company_id)
        groups = self.index.members.get(company_id, {}).get(user)
        if not groups:
            raise NotFound(
                f"'{user}' is not a member of company '{company_id}'", field="user"
            )
        return groups

    def set_member(self, company_id: str, user: str, groups: Iterable[str]) -> int:
        """Set the user's groups in the company in one step; contact is implied."""
        check_user_id(user, "user")
        wanted = {CONTACT}
        for position, group in enumerate(groups):
            wanted.add(check_name_id(group, f"groups[{position}]"))
        exclusive = exclusive_groups(wanted)
        if len(exclusive) > 1:
            raise Conflict(
                f"a user holds at most one of admin, buyer, requester in a company, "
                f"not {' and '.join(exclusive)}",
                field="groups",
            )
        with self._write_lock:
            self.get_company(company_id)
            unknown = sorted(
                g for g in wanted if not self.index.group_exists(company_id, g)
            )
            if unknown:
                raise InvalidInput(
                    f"groups: no group {', '.join(unknown)} in company '{company_id}'",
                    field="groups",
                )
            held = set(self.index.members.get(company_id, {}).get(user, ()))
            change = Change("member.set", company_id)
            change.remove_members.extend(
                Membership(company_id, user, g) for g in sorted(held - wanted)
            )
            change.add_members.extend(
                Membership(company_id, user, g) for g in sorted(wanted - held)
            )
            return self._commit(change)

    def delete_member(self, company_id: str, user: str) -> int:
        with self._write_lock:
            groups = self.get_member(company_id, user)
            change = Change("member.delete", company_id)
            change.remove_members.extend(
                Membership(company_id, user, g) for g in groups
            )
            return self._commit(change)

    def member_permissions(
        self, company_id: str, user: str
    ) -> list[EffectivePermission]:
        self.get_member(company_id, user)
        return self.index.effective_permissions(company_id, user)

    def user_companies(self, user: str) -> list[tuple[str, tuple[str, ...]]]:
        return [
            (company, self.index.members[company][user])
            for company in sorted(self.index.user_companies.get(user, ()))
            if user in self.index.members.get(company, {})
        ]

    def who_can(
        self, company_id: str, permission_text: str
    ) -> list[tuple[str, Scope, tuple[str, ...]]]:
        """Users whom a check allows: company-wide, or only on their own resources."""
        self.get_company(company_id)
        permission = Permission.parse(permission_text, "permission")
        if permission not in self.index.catalogue:
            raise InvalidInput(
                f"permission: unknown permission {permission}", field="permission"
            )
        found = []
        for user in sorted(self.index.members.get(company_id, {})):
            for effective in self.index.effective_permissions(company_id, user):
                if effective.permission.permission == permission:
                    found.append((user, effective.permission.scope, effective.groups))
        return found

    # -- bulk --------------------------------------------------------------------

    def load_snapshot(self, snapshot: Snapshot) -> int:
        """Load a whole policy (from ``policies/``) into an empty database."""
        with self._write_lock:
            if self.index.revision or self.store.revision():
                raise Conflict("the database already holds a policy")
            return self._commit(snapshot.as_change("policy.load"))

    def _commit(self, change: Change) -> int:
        if change.is_empty():
            return self.index.revision
        revision = self.store.apply(change)
        self.index.apply(change, revision)
        log.info(
            "write revision=%s action=%s company=%s %s",
            revision,
            change.action,
            change.company,
            change.summary(),
        )
        return revision


def _grants(group: CustomGroup, permissions: Iterable[ScopedPermission]) -> list[Grant]:
    return [
        Grant(group.company, group.id, scoped.permission, scoped.scope)
        for scoped in sorted(permissions)
    ]


def _page(
    keys: Iterable[str], after: str | None, limit: int, get: Callable[[str], T | None]
) -> Page[T]:
    ordered = sorted(key for key in list(keys) if after is None or key > after)
    items = [item for key in ordered[:limit] if (item := get(key)) is not None]
    more = len(ordered) > limit
    return Page(items, ordered[limit - 1] if more and limit else None)
