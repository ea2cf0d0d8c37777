"""The authorizer: decisions and the administration of companies, groups and members.

Every write follows the same steps under one lock: catch up with writes other
processes committed, ask the gate whether the caller may take the action,
validate against the current state, describe the write as a ``Change`` (with the
before and after states for the audit trail), commit it to the database, then
apply the same change to the in-memory index. A write the database refuses
never reaches memory, so the two cannot drift apart.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

from orgguard.access import Caller, Gate
from orgguard.errors import Conflict, InvalidInput, NotFound
from orgguard.ids import (
    case_twin,
    check_display_name,
    check_name_id,
    check_user_id,
)
from orgguard.memory import bulk_load
from orgguard.policy import casbin_rules
from orgguard.policy.actions import (
    COMPANIES_READ,
    COMPANIES_WRITE,
    GROUPS_READ,
    GROUPS_WRITE,
    MEMBERS_READ,
    MEMBERS_WRITE,
)
from orgguard.policy.casbin_rules import Row
from orgguard.policy.explain import Explanation, explain
from orgguard.policy.index import Decision, EffectivePermission, PolicyIndex
from orgguard.policy.model import (
    ADMIN,
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
from orgguard.storage.store import AuditRecord, PolicyStore, as_utc

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


@dataclass(frozen=True, slots=True)
class Hierarchy:
    company: str
    parents: list[str]  # the parent first, the root last
    subsidiaries: list[Company]  # at every depth, by id


class Authorizer:
    def __init__(
        self, store: PolicyStore, index: PolicyIndex, *, admin_inherits: bool = True
    ) -> None:
        self.store = store
        self.index = index
        self.gate = Gate(admin_inherits=admin_inherits)
        self.write_lock = threading.Lock()
        # Held only while the index changes (never while waiting on the
        # database): what a batch waits for when a change overlaps it.
        self._index_lock = threading.Lock()
        # Bumped before and after every change to the index: odd while changing.
        self._changing = 0
        self.tally = Tally()
        # Given the time of one check in 64 (the metrics' latency histogram).
        self.on_latency: Callable[[float], None] = _ignore
        self._countdown = _SAMPLE_EVERY
        # The open write transaction and its committed changes, in writing().
        self._open: tuple[Connection, list[tuple[Change, int]]] | None = None

    @classmethod
    def open(cls, store: PolicyStore, *, admin_inherits: bool = True) -> Authorizer:
        with bulk_load():
            index = PolicyIndex.from_snapshot(store.load())
        return cls(store, index, admin_inherits=admin_inherits)

    @property
    def revision(self) -> int:
        return self.index.revision

    def refresh(
        self, revision: int | None = None, timeout: float | None = None
    ) -> bool:
        """Catch up with writes another process committed; True if it did.
        With ``revision`` (a notification's), nothing to do if it is served;
        with ``timeout``, False if this process's writer holds the lock longer
        (a write waiting on the database)."""
        if revision is not None and self.index.revision >= revision:
            return False  # this process's own write, or one replayed already
        if not self.write_lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            with self.store.reading() as connection:
                return self._catch_up(connection)
        finally:
            self.write_lock.release()

    def reach(self, revision: int, timeout: float) -> bool:
        """Read-your-writes: catch up until the index serves ``revision`` or
        later; False if it does not within ``timeout`` seconds. Raises
        Unavailable if the database cannot be read."""
        deadline = time.monotonic() + timeout
        pause = 0.005
        while self.index.revision < revision:
            self.refresh(timeout=max(0.0, deadline - time.monotonic()))
            if self.index.revision >= revision:
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        return True

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Decide, validate and commit as one step, whichever process writes.

        Holds this process's write lock and one database transaction, which
        holds the database's write lock; the index is caught up inside that
        transaction, so validation sees every committed write. Changes
        committed with ``commit`` reach memory once the transaction commits;
        if anything fails, the database rolls back and memory is untouched.
        """
        with self.write_lock:
            pending: list[tuple[Change, int]] = []
            with self.store.transaction() as connection:
                self._catch_up(connection)
                self._open = (connection, pending)
                try:
                    yield
                finally:
                    self._open = None
            if pending:
                self.store.forget_keys()
            for change, revision in pending:
                self._apply(change, revision)
                self.tally.writes[change.action] += 1
                _log_write(change, revision)

    def _apply(self, change: Change, revision: int) -> None:
        """Change the index in place: readers see ``_changing`` odd meanwhile
        and decide again (see ``check_at``)."""
        with self._index_lock:
            self._changing += 1
            try:
                self.index.apply(change, revision)
            finally:
                self._changing += 1

    def _catch_up(self, connection: Connection) -> bool:
        """Bring the index to the database's revision: replay the change log
        from the index's revision, or reload the whole policy when the log
        cannot say (a change stored without its rows, a long way behind, a
        database that went back in time)."""
        stored = self.store.revision(connection)
        if stored == self.index.revision:
            return False
        self.store.forget_keys()
        entries = None
        if stored > self.index.revision:
            entries = self.store.changes_after(
                self.index.revision, connection, _REPLAY_AT_MOST
            )
        if entries is None or any(change is None for _, change in entries):
            with bulk_load():
                index = PolicyIndex.from_snapshot(self.store.load(connection))
            with self._index_lock:
                self._changing += 1
                self.index = index
                self._changing += 1
            self.tally.reloads += 1
            log.info("reloaded the policy at revision %d", index.revision)
            return True
        for revision, change in entries:
            assert change is not None
            self._apply(change, revision)
        self.tally.replayed += len(entries)
        log.debug("replayed %d changes to revision %d", len(entries), stored)
        return True

    def require(
        self, caller: Caller, action: Permission, company: str | None = None
    ) -> None:
        """Raise Forbidden unless the caller may take the admin action."""
        self.gate.require(self.index, caller, action, company)

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
        return self.check_at(user, company, resource, action, owner)[0]

    def check_at(
        self,
        user: str,
        company: str,
        resource: str,
        action: str,
        owner: str | None = None,
    ) -> tuple[Decision, int]:
        """Decide, with the revision the decision was taken at.

        Readers take no lock. A write changes the index in place between two
        bumps of ``_changing`` (odd while it changes), so a decision that
        overlapped a write is taken again; after three overlaps in a row the
        last answer stands (writes remove before they add, so such an answer
        can only err towards deny).
        """
        countdown = self._countdown - 1
        if countdown:  # the common case, kept short: this is the hot path
            self._countdown = countdown
            before = self._changing
            index = self.index
            try:
                decision = index.decide(user, company, resource, action, owner)
            except Exception:
                decision = self._failed(user, company, resource, action)
            if decision.allowed:
                self.tally.allowed += 1
            else:
                self.tally.denied += 1
            if before == self._changing and not before & 1:
                return decision, index.revision
            return self._check_again(user, company, resource, action, owner)
        self._countdown = _SAMPLE_EVERY
        started = time.perf_counter()
        answer = self._check_again(user, company, resource, action, owner)
        self.on_latency(time.perf_counter() - started)
        return answer

    def _check_again(
        self, user: str, company: str, resource: str, action: str, owner: str | None
    ) -> tuple[Decision, int]:
        for _ in range(3):
            before = self._changing
            decision = self._decide(user, company, resource, action, owner)
            revision = self.index.revision
            if before == self._changing and not before & 1:
                break
        return decision, revision

    def _decide(
        self, user: str, company: str, resource: str, action: str, owner: str | None
    ) -> Decision:
        try:
            decision = self.index.decide(user, company, resource, action, owner)
        except Exception:
            decision = self._failed(user, company, resource, action)
        if decision.allowed:
            self.tally.allowed += 1
        else:
            self.tally.denied += 1
        return decision

    def _failed(self, user: str, company: str, resource: str, action: str) -> Decision:
        """Fail closed: a deny with a reason, and the traceback in the log."""
        self.tally.errors += 1
        log.exception(
            "decision failed: user=%s company=%s permission=%s:%s",
            user,
            company,
            resource,
            action,
        )
        return Decision(False, INTERNAL_ERROR_REASON)

    def explain(
        self,
        caller: Caller,
        user: str,
        company: str,
        resource: str,
        action: str,
        owner: str | None = None,
    ) -> tuple[Explanation, int, dict[str, AuditRecord | None], dict[Row, int]]:
        """A check with its whole path, for callers who may read the company's
        members (it names them and its groups; a company admin may explain
        checks in its company without the right to ask checks). Also since
        when each of the user's memberships holds, and the stored id of each
        rule named."""
        self.require(caller, MEMBERS_READ, company)
        index = self.index
        explanation = explain(
            index, user, company, resource, action, owner,
            lambda other: self.gate.allows(index, caller, MEMBERS_READ, other),
        )  # fmt: skip
        since = {
            group: self.store.membership_since(company, user, group)
            for group in explanation.groups
        }
        rule_ids = self.store.rule_ids(
            casbin_rules.to_row(match.grant) for match in explanation.rules
        )
        return explanation, index.revision, since, rule_ids

    def try_check_many(
        self, requests: Iterable[tuple[str, str, str, str, str | None]]
    ) -> tuple[list[Decision], int] | None:
        """Decide a batch at one revision without waiting: None if a write
        changed the index meanwhile (then ``check_many`` waits for it)."""
        before = self._changing
        if before % 2:
            return None
        decisions = [self._decide(*request) for request in requests]
        revision = self.index.revision
        return (decisions, revision) if before == self._changing else None

    def check_many(
        self, requests: Iterable[tuple[str, str, str, str, str | None]]
    ) -> tuple[list[Decision], int]:
        """Decide a batch at one revision: no write lands while it runs."""
        listed = list(requests)
        decided = self.try_check_many(listed)
        if decided is not None:
            return decided
        with self._index_lock:
            return [self._decide(*r) for r in listed], self.index.revision

    # -- companies ---------------------------------------------------------------

    def list_companies(
        self, caller: Caller, after: str | None, limit: int
    ) -> Page[Company]:
        """Every company for the platform; a company admin sees its own."""
        index = self.index
        keys: Iterable[str] = index.companies
        if not self.gate.allows(index, caller, COMPANIES_READ):
            visible = self.gate.companies_allowing(index, caller, GROUPS_READ)
            if not visible:
                self.require(caller, COMPANIES_READ)
            keys = visible or ()
        return _page(keys, after, limit, index.companies.get)

    def get_company(self, caller: Caller, company_id: str) -> Company:
        self.require(caller, GROUPS_READ, company_id)
        return self.company(company_id)

    def company(self, company_id: str) -> Company:
        company = self.index.companies.get(company_id)
        if company is None:
            raise NotFound(f"company '{company_id}' does not exist", field="company")
        return company

    def subsidiaries(self, company_id: str) -> list[str]:
        return sorted(self.index.children.get(company_id, ()))

    def hierarchy(self, caller: Caller, company_id: str) -> Hierarchy:
        """The chain of parents and every subsidiary below the company."""
        self.get_company(caller, company_id)
        index = self.index
        return Hierarchy(
            company_id,
            index.ancestors(company_id),
            [index.companies[c] for c in index.descendants(company_id)],
        )

    def create_company(
        self, caller: Caller, company_id: str, name: str, parent: str | None
    ) -> int:
        check_name_id(company_id, "id")
        check_display_name(name, "name")
        if parent is not None:
            check_name_id(parent, "parent")
        with self.writing():
            self.require(caller, COMPANIES_WRITE)
            if company_id in self.index.companies:
                raise Conflict(f"company '{company_id}' already exists", field="id")
            twin = case_twin(company_id, self.index.companies)
            if twin is not None:
                raise Conflict(
                    f"company '{company_id}' differs from '{twin}' only in case; "
                    "their files would collide on many file systems",
                    field="id",
                )
            if parent is not None and parent not in self.index.companies:
                raise NotFound(
                    f"parent company '{parent}' does not exist", field="parent"
                )
            company = Company(company_id, name, parent)
            change = audited_change(
                caller, "company.create", company_id, None, _company_state(company)
            )
            change.add_companies.append(company)
            return self.commit(change)

    def delete_company(self, caller: Caller, company_id: str, cascade: bool) -> int:
        with self.writing():
            self.require(caller, COMPANIES_WRITE)
            self.company(company_id)
            doomed = self._subtree(company_id)
            if len(doomed) > 1 and not cascade:
                raise Conflict(
                    f"company '{company_id}' has subsidiaries "
                    f"({', '.join(sorted(doomed[:-1]))}); delete with cascade=true",
                    field="cascade",
                )
            before = {
                "companies": [_company_state(self.index.companies[c]) for c in doomed],
                "members": {
                    c: {u: list(g) for u, g in self.index.members[c].items()}
                    for c in doomed
                },
            }
            change = audited_change(caller, "company.delete", company_id, before, None)
            for doomed_id in doomed:
                self._forget_company(change, doomed_id)
            return self.commit(change)

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

    def list_groups(self, caller: Caller, company_id: str) -> list[GroupView]:
        self.get_company(caller, company_id)
        return self.groups(company_id)

    # ``company``, ``groups``, ``group`` and ``member_groups`` ask no gate: they
    # answer a write the caller was allowed, or serve a method that asked.

    def groups(self, company_id: str) -> list[GroupView]:
        return [
            self._group_view(company_id, g) for g in self.index.group_ids(company_id)
        ]

    def get_group(self, caller: Caller, company_id: str, group_id: str) -> GroupView:
        self.get_company(caller, company_id)
        return self.group(company_id, group_id)

    def group(self, company_id: str, group_id: str) -> GroupView:
        self.company(company_id)
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
        self,
        caller: Caller,
        company_id: str,
        group_id: str,
        name: str,
        permissions: Iterable[str],
    ) -> int:
        check_name_id(group_id, "id")
        check_display_name(name, "name")
        with self.writing():
            self.require(caller, GROUPS_WRITE, company_id)
            wanted = self._parse_permissions(permissions)
            self.company(company_id)
            self._require_holds(caller, company_id, GROUPS_WRITE, wanted)
            if group_id in PREDEFINED_GROUPS:
                raise Conflict(f"'{group_id}' is a predefined group id", field="id")
            if self.index.group_exists(company_id, group_id):
                raise Conflict(
                    f"group '{group_id}' already exists in company '{company_id}'",
                    field="id",
                )
            group = CustomGroup(company_id, group_id, name)
            after = _group_state(group, wanted)
            change = audited_change(caller, "group.create", company_id, None, after)
            change.add_groups.append(group)
            change.add_grants.extend(_grants(group, wanted))
            return self.commit(change)

    def update_group(
        self,
        caller: Caller,
        company_id: str,
        group_id: str,
        name: str | None,
        permissions: Iterable[str] | None,
    ) -> int:
        if name is not None:
            check_display_name(name, "name")
        with self.writing():
            self.require(caller, GROUPS_WRITE, company_id)
            wanted = (
                None if permissions is None else self._parse_permissions(permissions)
            )
            group = self._custom_group(company_id, group_id)
            held = set(self.index.group_grants(company_id, group_id))
            self._require_holds(
                caller, company_id, GROUPS_WRITE, held | (wanted or set())
            )
            renamed = CustomGroup(company_id, group_id, name or group.name)
            change = audited_change(
                caller,
                "group.update",
                company_id,
                _group_state(group, held),
                _group_state(renamed, held if wanted is None else wanted),
            )
            if renamed != group:
                change.remove_groups.append(group)
                change.add_groups.append(renamed)
            if wanted is not None:
                change.remove_grants.extend(_grants(group, held - wanted))
                change.add_grants.extend(_grants(group, wanted - held))
            return self.commit(change)

    def delete_group(self, caller: Caller, company_id: str, group_id: str) -> int:
        """Delete a custom group and its rules; its members leave it."""
        with self.writing():
            self.require(caller, GROUPS_WRITE, company_id)
            group = self._custom_group(company_id, group_id)
            held = self.index.group_grants(company_id, group_id)
            self._require_holds(caller, company_id, GROUPS_WRITE, held)
            before = {
                **_group_state(group, held),
                "members": sorted(
                    user
                    for user, groups in self.index.members[company_id].items()
                    if group_id in groups
                ),
            }
            change = audited_change(caller, "group.delete", company_id, before, None)
            change.remove_grants.extend(_grants(group, held))
            for user, groups in self.index.members.get(company_id, {}).items():
                if group_id in groups:
                    change.remove_members.append(Membership(company_id, user, group_id))
            change.remove_groups.append(group)
            return self.commit(change)

    def _require_holds(
        self,
        caller: Caller,
        company_id: str,
        action: Permission,
        wanted: Iterable[ScopedPermission],
    ) -> None:
        self.gate.require_holds(self.index, caller, action, company_id, wanted)

    def _custom_group(self, company_id: str, group_id: str) -> CustomGroup:
        self.group(company_id, group_id)
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
        self, caller: Caller, company_id: str, after: str | None, limit: int
    ) -> Page[tuple[str, tuple[str, ...]]]:
        self.require(caller, MEMBERS_READ, company_id)
        self.company(company_id)
        members = self.index.members.get(company_id, {})

        def entry(user: str) -> tuple[str, tuple[str, ...]] | None:
            groups = members.get(user)
            return None if groups is None else (user, groups)

        return _page(members, after, limit, entry)

    def get_member(self, caller: Caller, company_id: str, user: str) -> tuple[str, ...]:
        self.require(caller, MEMBERS_READ, company_id)
        return self.member_groups(company_id, user)

    def member_groups(self, company_id: str, user: str) -> tuple[str, ...]:
        self.company(company_id)
        groups = self.index.members.get(company_id, {}).get(user)
        if not groups:
            raise NotFound(
                f"'{user}' is not a member of company '{company_id}'", field="user"
            )
        return groups

    def set_member(
        self, caller: Caller, company_id: str, user: str, groups: Iterable[str]
    ) -> int:
        """Set the user's groups in the company in one step; contact is implied.

        A company admin may hand out the groups whose permissions it holds
        (``admin`` holds those of every other predefined group).
        """
        check_user_id(user, "user")
        wanted = {CONTACT}
        for position, group in enumerate(groups):
            wanted.add(check_name_id(group, f"groups[{position}]"))
        with self.writing():
            self.require(caller, MEMBERS_WRITE, company_id)
            self.company(company_id)
            exclusive = exclusive_groups(wanted)
            if len(exclusive) > 1:
                raise Conflict(
                    "a user holds at most one of admin, buyer, requester in a "
                    f"company, not {' and '.join(exclusive)}",
                    field="groups",
                )
            unknown = sorted(
                g for g in wanted if not self.index.group_exists(company_id, g)
            )
            if unknown:
                raise InvalidInput(
                    f"groups: no group {', '.join(unknown)} in company '{company_id}'",
                    field="groups",
                )
            held = set(self.index.members.get(company_id, {}).get(user, ()))
            granted: set[ScopedPermission] = set()
            for group in wanted - held:
                granted.update(self.index.group_grants(company_id, group))
            self._require_holds(caller, company_id, MEMBERS_WRITE, granted)
            if ADMIN not in wanted:
                self._guard_last_admin(company_id, user)
            change = audited_change(
                caller,
                "member.set",
                company_id,
                _member_state(user, held) if held else None,
                _member_state(user, wanted),
            )
            change.remove_members.extend(
                Membership(company_id, user, g) for g in sorted(held - wanted)
            )
            change.add_members.extend(
                Membership(company_id, user, g) for g in sorted(wanted - held)
            )
            return self.commit(change)

    def delete_member(self, caller: Caller, company_id: str, user: str) -> int:
        with self.writing():
            self.require(caller, MEMBERS_WRITE, company_id)
            groups = self.member_groups(company_id, user)
            self._guard_last_admin(company_id, user)
            before = _member_state(user, groups)
            change = audited_change(caller, "member.delete", company_id, before, None)
            change.remove_members.extend(
                Membership(company_id, user, g) for g in groups
            )
            return self.commit(change)

    def _guard_last_admin(self, company_id: str, user: str) -> None:
        """A company that has admins keeps at least one (409 otherwise)."""
        members = self.index.members.get(company_id, {})
        if ADMIN not in members.get(user, ()):
            return
        if not any(ADMIN in g for u, g in members.items() if u != user):
            raise Conflict(
                f"'{user}' is the last admin of company '{company_id}'; make "
                "another member admin first",
                field="groups",
            )

    def member_permissions(
        self, caller: Caller, company_id: str, user: str
    ) -> list[EffectivePermission]:
        self.get_member(caller, company_id, user)
        return self.index.effective_permissions(company_id, user)

    def user_companies(
        self, caller: Caller, user: str
    ) -> list[tuple[str, tuple[str, ...]]]:
        """The user's companies: all of them for the platform and for the user
        itself; for a company admin, those it may read the members of."""
        index = self.index
        companies = list(index.user_companies.get(user, ()))
        if caller.kind != "user" or caller.subject != user:
            visible = self.gate.companies_allowing(index, caller, MEMBERS_READ)
            if visible is not None:
                if not visible:
                    self.require(caller, MEMBERS_READ)
                companies = [c for c in companies if c in visible]
        return [
            (company, groups)
            for company in companies
            if (groups := index.members.get(company, {}).get(user))
        ]

    def access_at(
        self, caller: Caller, company_id: str, moment: datetime | None
    ) -> tuple[int, list[tuple[str, tuple[str, ...], list[EffectivePermission]]]]:
        """Who could do what in the company: now, or at a past ``moment``
        rebuilt from the change log. The revision it describes, and per member
        the groups and the effective permissions (exactly what checks allowed).
        """
        self.require(caller, MEMBERS_READ, company_id)
        index = self.index
        if moment is not None:
            index = self._index_at(as_utc(moment, "at"))
            if not self.gate.on_platform(self.index, caller, MEMBERS_READ):
                # A company admin sees its company's own life, not that of an
                # earlier company with the same id.
                born = self.store.created_at_revision([company_id]).get(company_id)
                if born is None or born > index.revision:
                    index = PolicyIndex()
        members = index.members.get(company_id)
        if members is None:
            when = "now" if moment is None else f"at {moment.isoformat()}"
            raise NotFound(f"company '{company_id}' did not exist {when}", field="at")
        return index.revision, [
            (user, members[user], index.effective_permissions(company_id, user))
            for user in sorted(members)
        ]

    def _index_at(self, moment: datetime) -> PolicyIndex:
        """The index as it was at ``moment``: the change log replayed up to
        it, or, when an early change was logged without its rows, the policy
        now with every later change undone."""
        index = PolicyIndex()
        for revision, change in self.store.changes_until(moment):
            if change is None:
                return self._index_undone_to(moment)
            index.apply(change, revision)
        return index

    def _index_undone_to(self, moment: datetime) -> PolicyIndex:
        snapshot, then, undone = self.store.undone_since(moment)
        with bulk_load():
            index = PolicyIndex.from_snapshot(snapshot)
        for revision, change in undone:
            if change is None:
                raise Conflict(
                    "the change log cannot rebuild the policy at that time: "
                    f"revision {revision}, made after it, is stored without "
                    "its rows, and so is one made before it",
                    field="at",
                )
            index.apply(change, index.revision)
        index.revision = then
        return index

    def who_can(
        self, caller: Caller, company_id: str, permission_text: str
    ) -> list[tuple[str, Scope, tuple[str, ...]]]:
        """Users whom a check allows: company-wide, or only on their own resources."""
        self.require(caller, MEMBERS_READ, company_id)
        self.company(company_id)
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

    def load_snapshot(self, caller: Caller, snapshot: Snapshot) -> int:
        """Load a whole policy (from ``policies/``) into an empty database."""
        with self.writing():
            if self.index.revision:
                raise Conflict("the database already holds a policy")
            change = snapshot.as_change("policy.load")
            change.actor, change.request_id = caller.subject, caller.request_id
            change.after = change.summary()
            return self.commit(change)

    def commit(self, change: Change) -> int:
        """Write the change in the transaction of ``writing()``; its revision."""
        if self._open is None:
            raise RuntimeError("commit() is only called inside writing()")
        connection, pending = self._open
        if change.is_empty():
            return pending[-1][1] if pending else self.index.revision
        revision = self.store.apply(change, connection)
        pending.append((change, revision))
        return revision


_SAMPLE_EVERY = 64  # one check in 64 is timed
# Further behind than this many changes, a reload is quicker than a replay.
_REPLAY_AT_MOST = 5_000


@dataclass(slots=True)
class Tally:
    """Counts for the metrics, kept as plain ints on the hot path. Checks run
    on the event loop; one answered in a worker thread at the same moment may
    be missed by a count (the GIL makes that rare), never by a decision."""

    allowed: int = 0
    denied: int = 0
    errors: int = 0
    writes: collections.Counter[str] = field(default_factory=collections.Counter)
    # Other processes' changes: replayed from the log, or whole reloads.
    replayed: int = 0
    reloads: int = 0


def _ignore(_seconds: float) -> None:
    return None


def _log_write(change: Change, revision: int) -> None:
    log.info(
        "write %s at revision %d",
        change.action,
        revision,
        extra={
            "revision": revision,
            "action": change.action,
            "company": change.company,
            "actor": change.actor,
            "request_id": change.request_id,
            "changed": change.summary(),
        },
    )


def audited_change(
    caller: Caller, action: str, company: str | None, before: Any, after: Any
) -> Change:
    return Change(
        action,
        company,
        actor=caller.subject,
        request_id=caller.request_id,
        before=before,
        after=after,
    )


def _company_state(company: Company) -> dict[str, Any]:
    return {"id": company.id, "name": company.name, "parent": company.parent}


def _group_state(
    group: CustomGroup, permissions: Iterable[ScopedPermission]
) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "permissions": [str(p) for p in sorted(permissions)],
    }


def _member_state(user: str, groups: Iterable[str]) -> dict[str, Any]:
    return {"user": user, "groups": sorted(groups)}


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
