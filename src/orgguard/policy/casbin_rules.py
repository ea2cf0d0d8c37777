"""The one place that speaks Casbin: policy types to rule rows and back.

A row is the tuple Casbin keeps, ``(ptype, v0, v1, ...)``, as in ``model.conf``:

    p,  group:<group>, <company or *>, <resource>, <action>, <company|own>
    g,  <user>, group:<group>, <company>
    p2, <resource>, <action>, <yes|no>
    p3, role:<role>, <resource>, <action>
    g2, <user or key:<name>>, role:<role>
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from orgguard.errors import InvalidInput
from orgguard.ids import check_name_id, check_user_id
from orgguard.policy.model import (
    KEY_PREFIX,
    CatalogueEntry,
    Grant,
    Membership,
    Permission,
    PlatformGrant,
    RoleAssignment,
    Scope,
    Snapshot,
)

Row = tuple[str, ...]
Rule = Grant | Membership | CatalogueEntry | PlatformGrant | RoleAssignment

GROUP_PREFIX: Final = "group:"
ROLE_PREFIX: Final = "role:"
TEMPLATE_DOMAIN: Final = "*"
_OWNABLE = {"yes": True, "no": False}


def to_row(rule: Rule) -> Row:
    if isinstance(rule, Grant):
        domain = TEMPLATE_DOMAIN if rule.company is None else rule.company
        return (
            "p",
            GROUP_PREFIX + rule.group,
            domain,
            rule.permission.resource,
            rule.permission.action,
            rule.scope.value,
        )
    if isinstance(rule, Membership):
        return ("g", rule.user, GROUP_PREFIX + rule.group, rule.company)
    if isinstance(rule, PlatformGrant):
        return (
            "p3",
            ROLE_PREFIX + rule.role,
            rule.permission.resource,
            rule.permission.action,
        )
    if isinstance(rule, RoleAssignment):
        return ("g2", rule.subject, ROLE_PREFIX + rule.role)
    return (
        "p2",
        rule.permission.resource,
        rule.permission.action,
        "yes" if rule.ownable else "no",
    )


def from_row(row: Row) -> Rule:
    """Decode and validate one row; raises InvalidInput naming what is wrong."""
    return RowDecoder().decode(row)


class RowDecoder:
    """Decodes the rows of one load. Each distinct company, group, resource and
    action is validated once, and equal values share one object (a load holds
    millions of rows but few distinct ids)."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._users: dict[str, str] = {}
        self._groups: dict[str, str] = {}
        self._roles: dict[str, str] = {}
        self._permissions: dict[tuple[str, str], Permission] = {}

    def decode(self, row: Row) -> Rule:
        ptype, values = row[0], row[1:]
        expected = _FIELD_COUNTS.get(ptype)
        if expected is None:
            raise InvalidInput(f"unknown rule type {ptype!r}", field="ptype")
        if len(values) != expected:
            raise InvalidInput(
                f"a {ptype} rule has {expected} fields, this one has {len(values)}",
                field="ptype",
            )
        if ptype == "g":
            user, subject, company = values
            return self.membership(user, subject, company)
        if ptype == "p":
            subject, domain, resource, action, scope = values
            owner: str | None = None  # None: a template of every company
            if domain != TEMPLATE_DOMAIN:
                owner = self._name(domain, "company")
            if scope not in _SCOPES:
                raise InvalidInput("scope must be 'company' or 'own'", field="scope")
            return Grant(
                owner,
                self._group(subject),
                self._permission(resource, action),
                _SCOPES[scope],
            )
        if ptype == "p3":
            role, resource, action = values
            return PlatformGrant(self._role(role), self._permission(resource, action))
        if ptype == "g2":
            subject, role = values
            return RoleAssignment(check_subject(subject, "subject"), self._role(role))
        resource, action, ownable = values
        if ownable not in _OWNABLE:
            raise InvalidInput("ownable must be 'yes' or 'no'", field="ownable")
        return CatalogueEntry(self._permission(resource, action), _OWNABLE[ownable])

    def add_rows(
        self, snapshot: Snapshot, rows: Iterable[Sequence[str | None]]
    ) -> None:
        """Decode stored rows ``(ptype, v0, ..., v5)`` into the snapshot.

        Memberships, the bulk of a load, take an inlined path straight into
        ``snapshot.member_groups``; anything else (and any malformed row, which
        raises) goes through ``decode``.
        """
        grouped = snapshot.member_groups
        users, groups = self._users, self._groups
        # Rows come in the order they were written: a company's memberships,
        # and a user's, mostly follow each other, so the last ones are kept.
        last_company: str | None = None
        last_user: str | None = None
        members: dict[str, list[str]] = {}
        user = ""
        for row in rows:
            ptype, raw_user, subject, company, v3, v4, v5 = row
            if (
                ptype == "g"
                and v3 is None
                and v4 is None
                and v5 is None
                and raw_user
                and subject
                and company
            ):
                try:
                    if company != last_company:
                        last_company = None
                        company = self._name(company, "company")
                        members = grouped.setdefault(company, {})
                        last_company = company
                    if raw_user != last_user:
                        last_user = None
                        user = users.get(raw_user) or self._user(raw_user)
                        last_user = raw_user
                    group = groups.get(subject) or self._group(subject)
                except InvalidInput as error:
                    raise _stored(row, error) from error
                held = members.get(user)
                if held is None:
                    members[user] = [group]
                else:
                    held.append(group)
            else:
                self._add_rule(snapshot, row)

    def _add_rule(self, snapshot: Snapshot, values: Sequence[str | None]) -> None:
        row = tuple(value for value in values if value is not None)
        try:
            rule = self.decode(row)
        except InvalidInput as error:
            raise _stored(values, error) from error
        if isinstance(rule, Grant):
            snapshot.grants.append(rule)
        elif isinstance(rule, Membership):
            snapshot.members.append(rule)
        elif isinstance(rule, PlatformGrant):
            snapshot.platform.append(rule)
        elif isinstance(rule, RoleAssignment):
            snapshot.roles.append(rule)
        else:
            snapshot.catalogue.append(rule)

    def _user(self, user: str) -> str:
        known = self._users[user] = check_user_id(user, "user")
        return known

    def membership(self, user: str, subject: str, company: str) -> Membership:
        """A g rule's fields: the bulk of every load."""
        return Membership(
            self._name(company, "company"),
            self._users.get(user) or self._user(user),
            self._group(subject),
        )

    def _name(self, value: str, field: str) -> str:
        known = self._names.get(value)
        if known is None:
            known = self._names[value] = check_name_id(value, field)
        return known

    def _group(self, subject: str) -> str:
        known = self._groups.get(subject)
        if known is None:
            if not subject.startswith(GROUP_PREFIX):
                raise InvalidInput(
                    f"a group is written {GROUP_PREFIX}<id>, not {subject!r}",
                    field="group",
                )
            group = self._name(subject[len(GROUP_PREFIX) :], "group")
            known = self._groups[subject] = group
        return known

    def _role(self, text: str) -> str:
        known = self._roles.get(text)
        if known is None:
            if not text.startswith(ROLE_PREFIX):
                raise InvalidInput(
                    f"a platform role is written {ROLE_PREFIX}<id>, not {text!r}",
                    field="role",
                )
            known = self._roles[text] = self._name(text[len(ROLE_PREFIX) :], "role")
        return known

    def _permission(self, resource: str, action: str) -> Permission:
        known = self._permissions.get((resource, action))
        if known is None:
            known = Permission(
                self._name(resource, "resource"), self._name(action, "action")
            )
            self._permissions[(resource, action)] = known
        return known


def _stored(values: Sequence[str | None], error: InvalidInput) -> InvalidInput:
    row = tuple(value for value in values if value is not None)
    return InvalidInput(f"stored rule {format_row(row)!r}: {error.message}")


_FIELD_COUNTS = {"p": 5, "g": 3, "p2": 3, "p3": 3, "g2": 2}
_SCOPES = {scope.value: scope for scope in Scope}


def check_subject(text: str, field: str) -> str:
    """A role holder: a user id, or ``key:<name>`` for an API key."""
    if text.startswith(KEY_PREFIX):
        check_name_id(text[len(KEY_PREFIX) :], field)
        return text
    return check_user_id(text, field)


def format_row(row: Row) -> str:
    """One line of Casbin's policy CSV."""
    return ", ".join(row)
