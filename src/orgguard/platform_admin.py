"""The platform's own administration: API keys, seller roles, the audit trail.

Keys: the caller gets ``ogk_<id>_<secret>`` once; the database keeps the public
id, a random salt and ``sha256(salt + secret)``. A key's role is a ``g2`` rule
(``key:<name>``), so the same Casbin policy decides what a key may do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from orgguard.access import Caller, refuse
from orgguard.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from orgguard.ids import check_name_id, check_user_id
from orgguard.policy.actions import (
    AUDIT_READ,
    KEYS_READ,
    KEYS_WRITE,
    ROLES_READ,
    ROLES_WRITE,
)
from orgguard.policy.model import ApiKey, RoleAssignment, key_subject
from orgguard.service import Authorizer, audited_change
from orgguard.storage.store import (
    MAX_REVISION,
    AuditQuery,
    AuditRecord,
    as_utc,
    utcnow,
)

KEY_PREFIX = "ogk_"


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret: str  # the whole bearer token; shown once, never stored
    revision: int


class PlatformAdmin:
    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer
        # token -> the key record it was verified against (only real keys)
        self._verified: dict[str, ApiKey] = {}

    # -- keys ----------------------------------------------------------------

    def create_key(self, caller: Caller, name: str, role: str) -> NewKey:
        check_name_id(name, "name")
        check_name_id(role, "role")
        authorizer = self.authorizer
        with authorizer.writing():
            authorizer.require(caller, KEYS_WRITE)
            self._check_role(caller, role, "role")
            if self._active_key(name) is not None:
                raise Conflict(f"an active API key is named '{name}'", field="name")
            key_id = secrets.token_hex(8)
            secret = secrets.token_urlsafe(32)
            salt = secrets.token_hex(16)
            key = ApiKey(
                id=key_id,
                name=name,
                role=role,
                salt=salt,
                digest=_digest(salt, secret),
                created_at=utcnow(),
                created_by=caller.subject,
            )
            change = audited_change(caller, "key.create", None, None, _key_state(key))
            change.add_keys.append(key)
            change.add_roles.append(RoleAssignment(key_subject(name), role))
            revision = authorizer.commit(change)
        return NewKey(key, f"{KEY_PREFIX}{key_id}_{secret}", revision)

    def revoke_key(self, caller: Caller, name: str) -> int:
        check_name_id(name, "name")
        authorizer = self.authorizer
        with authorizer.writing():
            authorizer.require(caller, KEYS_WRITE)
            key = self._active_key(name)
            if key is None:
                raise NotFound(f"no active API key is named '{name}'", field="name")
            change = audited_change(caller, "key.revoke", None, _key_state(key), None)
            change.revoke_keys.append(key.id)
            change.remove_roles.append(RoleAssignment(key_subject(name), key.role))
            return authorizer.commit(change)

    def list_keys(self, caller: Caller) -> list[ApiKey]:
        self.authorizer.require(caller, KEYS_READ)
        return self.authorizer.store.list_keys()

    def _active_key(self, name: str) -> ApiKey | None:
        for key in self.authorizer.store.list_keys():
            if key.name == name and key.revoked_at is None:
                return key
        return None

    def authenticates_at_once(self, token: str) -> bool:
        """Whether ``authenticate_key`` can answer without waiting on the
        database: the key's record is at hand and its role is known (else it
        reads the database, which may be slow or away)."""
        key_id = token.removeprefix(KEY_PREFIX).partition("_")[0]
        store = self.authorizer.store
        if not key_id or not store.key_known(key_id):
            return False
        key = store.find_key(key_id)
        return (
            key is None
            or key.revoked_at is not None
            or key.role in (self.authorizer.index.roles.get(key_subject(key.name), ()))
        )

    def authenticate_key(self, token: str, request_id: str | None) -> Caller:
        """The caller a key stands for; Unauthenticated if it is not a live key."""
        key_id, _, secret = token.removeprefix(KEY_PREFIX).partition("_")
        key = self.authorizer.store.find_key(key_id) if key_id and secret else None
        if key is None:
            raise Unauthenticated("unknown API key")
        # A token that matched this very key record before needs no new hash.
        if self._verified.get(token) is not key:
            if not hmac.compare_digest(key.digest, _digest(key.salt, secret)):
                raise Unauthenticated("unknown API key")
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = key
        if key.revoked_at is not None:
            raise Unauthenticated("the API key was revoked")
        subject = key_subject(key.name)
        if key.role not in self.authorizer.index.roles.get(subject, ()):
            # Created by another process (the CLI) since this one last looked.
            self.authorizer.refresh()
        return Caller(subject, "key", request_id)

    # -- platform roles ------------------------------------------------------------

    def list_roles(self, caller: Caller) -> list[tuple[str, list[str]]]:
        """Who holds which platform role: people and keys, by subject."""
        self.authorizer.require(caller, ROLES_READ)
        roles = self.authorizer.index.roles
        return [(subject, sorted(roles[subject])) for subject in sorted(roles)]

    def set_roles(self, caller: Caller, user: str, roles: Iterable[str]) -> int:
        """Set a person's platform roles in one step (an empty list: none)."""
        check_user_id(user, "user")
        wanted = {check_name_id(r, f"roles[{i}]") for i, r in enumerate(roles)}
        authorizer = self.authorizer
        with authorizer.writing():
            authorizer.require(caller, ROLES_WRITE)
            for position, role in enumerate(sorted(wanted)):
                self._check_role(caller, role, f"roles[{position}]")
            held = set(authorizer.index.roles.get(user, ()))
            change = audited_change(
                caller,
                "roles.set",
                None,
                {"user": user, "roles": sorted(held)} if held else None,
                {"user": user, "roles": sorted(wanted)} if wanted else None,
            )
            change.remove_roles.extend(
                RoleAssignment(user, role) for role in sorted(held - wanted)
            )
            change.add_roles.extend(
                RoleAssignment(user, role) for role in sorted(wanted - held)
            )
            return authorizer.commit(change)

    def _check_role(self, caller: Caller, role: str, field: str) -> None:
        """The role exists, and the caller holds every action it grants."""
        index = self.authorizer.index
        actions = index.platform.get(role)
        if actions is None:
            known = ", ".join(sorted(index.platform))
            raise InvalidInput(
                f"{field}: no platform role '{role}' (one of {known})", field=field
            )
        gate = self.authorizer.gate
        missing = sorted(
            str(action)
            for action in actions
            if not gate.on_platform(index, caller, action)
        )
        if missing:
            refuse(
                caller,
                missing,
                f"'{caller}' may not hand out role '{role}': it does not hold "
                f"{', '.join(missing)}",
                field=field,
            )

    # -- audit -------------------------------------------------------------------

    def audit(
        self,
        caller: Caller,
        company: str | None,
        actor: str | None,
        since: datetime | None,
        until: datetime | None,
        before: int | None,
        limit: int,
    ) -> list[AuditRecord]:
        """Audit records, newest first: all of them for the platform; for a
        company admin, those of the companies it administers, since each was
        created (not those of an earlier company that had the same id)."""
        if since is not None:
            since = as_utc(since, "since")
        if until is not None:
            until = as_utc(until, "until")
        if before is not None and not 1 <= before <= MAX_REVISION:
            raise InvalidInput(f"before must be 1 to {MAX_REVISION}", field="before")
        authorizer = self.authorizer
        index, store = authorizer.index, authorizer.store
        on_platform = authorizer.gate.on_platform(index, caller, AUDIT_READ)
        if company is not None:
            authorizer.require(caller, AUDIT_READ, company)
            visible: frozenset[str] | None = frozenset({company})
        else:
            visible = authorizer.gate.companies_allowing(index, caller, AUDIT_READ)
            if visible is not None and not visible:
                authorizer.require(caller, AUDIT_READ)
        companies: dict[str, int] | None = None
        if visible is not None:
            companies = (
                dict.fromkeys(visible, 0)
                if on_platform
                else store.created_at_revision(visible)
            )
        query = AuditQuery(companies, actor, since, until, before, limit)
        return store.audit(query)


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


def _key_state(key: ApiKey) -> dict[str, str]:
    return {"name": key.name, "id": key.id, "role": key.role}
