"""Who may take which admin action: the gate every admin read and write passes.

The gate asks the same compiled Casbin policy that answers checks:

- a platform role (``p3``/``g2`` rules, matcher ``m2``) allows an action
  everywhere;
- otherwise a person may take a company-scoped action in a company when the
  company's own policy allows it to them (matcher ``m``; the ``admin`` group's
  template holds ``members:write`` and the rest), or, with
  ``ORGGUARD_ADMIN_INHERITS``, when the policy of one of the company's parents
  does: down the tree, never up or sideways.

A company that does not exist is refused like any other the caller may not act
in, so a refusal never says whether a company exists.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from orgguard.errors import Forbidden
from orgguard.policy.index import PolicyIndex
from orgguard.policy.model import Permission, Scope, ScopedPermission

log = logging.getLogger(__name__)

CallerKind = Literal["user", "key", "operator"]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: a person (``sub`` of a JWT), an API key
    (``key:<name>``), or the local operator running the CLI on the database."""

    subject: str
    kind: CallerKind
    request_id: str | None = None

    @classmethod
    def operator(cls, name: str) -> Caller:
        return cls(f"cli:{name}", "operator")

    def __str__(self) -> str:
        return self.subject


class Gate:
    def __init__(self, *, admin_inherits: bool) -> None:
        self.admin_inherits = admin_inherits

    def admin_chain(self, index: PolicyIndex, company: str) -> list[str]:
        """The companies whose policy may allow an admin action in ``company``."""
        if not self.admin_inherits:
            return [company]
        return [company, *index.ancestors(company)]

    def on_platform(
        self, index: PolicyIndex, caller: Caller, action: Permission
    ) -> bool:
        if caller.kind == "operator":
            return True
        return index.platform_role_for(caller.subject, action) is not None

    def allows(
        self,
        index: PolicyIndex,
        caller: Caller,
        action: Permission,
        company: str | None = None,
    ) -> bool:
        if self.on_platform(index, caller, action):
            return True
        if company is None or caller.kind != "user":
            return False
        return any(
            index.decide(caller.subject, where, action.resource, action.action).allowed
            for where in self.admin_chain(index, company)
        )

    def require(
        self,
        index: PolicyIndex,
        caller: Caller,
        action: Permission,
        company: str | None = None,
    ) -> None:
        if not self.allows(index, caller, action, company):
            where = "on the platform" if company is None else f"in company '{company}'"
            refuse(caller, [str(action)], f"'{caller}' may not {action} {where}")

    def require_holds(
        self,
        index: PolicyIndex,
        caller: Caller,
        action: Permission,
        company: str,
        wanted: Iterable[ScopedPermission],
    ) -> None:
        """No escalation: a company admin hands out only permissions it holds.

        A platform role that allows ``action`` is not limited. A person holds
        its effective permissions in each company of the admin chain where the
        policy allows it ``action``: its own company for a company admin, the
        parent for a parent's admin, never a company where it is a mere member.
        """
        if self.on_platform(index, caller, action):
            return
        held: set[ScopedPermission] = set()
        for where in self.admin_chain(index, company):
            if index.decide(
                caller.subject, where, action.resource, action.action
            ).allowed:
                for effective in index.effective_permissions(where, caller.subject):
                    held.add(effective.permission)
        missing = sorted(
            str(scoped) for scoped in set(wanted) if not _covered(scoped, held)
        )
        if missing:
            refuse(
                caller,
                missing,
                f"'{caller}' does not hold, where it administers company "
                f"'{company}', every permission this change grants or touches; "
                f"it lacks {', '.join(missing)}",
                field="permissions",
            )

    def companies_allowing(
        self, index: PolicyIndex, caller: Caller, action: Permission
    ) -> frozenset[str] | None:
        """Where the caller may take a company-scoped action: None for every
        company (a platform role), else the set (perhaps empty)."""
        if self.on_platform(index, caller, action):
            return None
        if caller.kind != "user":
            return frozenset()
        found: set[str] = set()
        for company in index.user_companies.get(caller.subject, ()):
            allowed = index.decide(
                caller.subject, company, action.resource, action.action
            ).allowed
            if allowed:
                found.add(company)
                if self.admin_inherits:
                    found.update(index.descendants(company))
        return frozenset(found)


def refuse(
    caller: Caller, missing: list[str], message: str, field: str | None = None
) -> None:
    log.warning(
        "refused: %s",
        message,
        extra={
            "actor": caller.subject,
            "missing": missing,
            "request_id": caller.request_id,
        },
    )
    raise Forbidden(message, missing, field=field)


def _covered(wanted: ScopedPermission, held: set[ScopedPermission]) -> bool:
    if wanted in held:
        return True
    company_wide = ScopedPermission(wanted.permission, Scope.COMPANY)
    return wanted.scope is Scope.OWN and company_wide in held
