"""The one place that speaks Casbin: policy types to rule rows and back.

A row is the tuple Casbin keeps, ``(ptype, v0, v1, ...)``, as in ``model.conf``:

    p,  group:<group>, <company or *>, <resource>, <action>, <company|own>
    g,  <user>, group:<group>, <company>
    p2, <resource>, <action>, <yes|no>
    p3, role:<role>, <resource>, <action>
    g2, <user or key:<name>>, role:<role>
"""

from __future__ import annotations

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
    ptype, values = row[0], row[1:]
    expected = {"p": 5, "g": 3, "p2": 3, "p3": 3, "g2": 2}.get(ptype)
    if expected is None:
        raise InvalidInput(f"unknown rule type {ptype!r}", field="ptype")
    if len(values) != expected:
        raise InvalidInput(
            f"a {ptype} rule has {expected} fields, this one has {len(values)}",
            field="ptype",
        )
    if ptype == "p":
        subject, domain, resource, action, scope = values
        company = (
            None if domain == TEMPLATE_DOMAIN else check_name_id(domain, "company")
        )
        if scope not in (Scope.COMPANY.value, Scope.OWN.value):
            raise InvalidInput("scope must be 'company' or 'own'", field="scope")
        return Grant(
            company,
            _group(subject),
            _permission(resource, action),
            Scope(scope),
        )
    if ptype == "g":
        user, subject, company = values
        return Membership(
            check_name_id(company, "company"),
            check_user_id(user, "user"),
            _group(subject),
        )
    if ptype == "p3":
        role, resource, action = values
        return PlatformGrant(_role(role), _permission(resource, action))
    if ptype == "g2":
        subject, role = values
        return RoleAssignment(check_subject(subject, "subject"), _role(role))
    resource, action, ownable = values
    if ownable not in _OWNABLE:
        raise InvalidInput("ownable must be 'yes' or 'no'", field="ownable")
    return CatalogueEntry(_permission(resource, action), _OWNABLE[ownable])


def _group(subject: str) -> str:
    if not subject.startswith(GROUP_PREFIX):
        raise InvalidInput(
            f"a group is written {GROUP_PREFIX}<id>, not {subject!r}", field="group"
        )
    return check_name_id(subject[len(GROUP_PREFIX) :], "group")


def _role(text: str) -> str:
    if not text.startswith(ROLE_PREFIX):
        raise InvalidInput(
            f"a platform role is written {ROLE_PREFIX}<id>, not {text!r}", field="role"
        )
    return check_name_id(text[len(ROLE_PREFIX) :], "role")


def check_subject(text: str, field: str) -> str:
    """A role holder: a user id, or ``key:<name>`` for an API key."""
    if text.startswith(KEY_PREFIX):
        check_name_id(text[len(KEY_PREFIX) :], field)
        return text
    return check_user_id(text, field)


def _permission(resource: str, action: str) -> Permission:
    return Permission(
        check_name_id(resource, "resource"), check_name_id(action, "action")
    )


def format_row(row: Row) -> str:
    """One line of Casbin's policy CSV."""
    return ", ".join(row)
