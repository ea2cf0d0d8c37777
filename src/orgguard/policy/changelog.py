"""A change as the change log stores it, for replicas to replay.

``encode`` turns a ``Change`` into plain JSON: the Casbin rule rows it adds and
removes, and the companies and custom groups (orgguard's own tables). ``decode``
gives back a change that ``PolicyIndex.apply`` applies exactly as the writer's
process applied the original. API keys are not part of it: they are read from
the database at each request, not from the index.

A change with more than ``MAX_ROWS`` rows (a whole policy loaded at first
start, a large import) is stored without its rows: a replica that meets it
reloads the policy in full.
"""

from __future__ import annotations

from typing import Any, Final

from orgguard.policy import casbin_rules
from orgguard.policy.model import (
    CatalogueEntry,
    Change,
    Company,
    CustomGroup,
    Grant,
    Membership,
    PlatformGrant,
    RoleAssignment,
)

MAX_ROWS: Final = 20_000

Ops = dict[str, list[Any]]


def encode(change: Change) -> Ops | None:
    """The change's rows as JSON-ready lists; None if it is too large."""
    removed: list[casbin_rules.Rule] = [
        *change.remove_roles,
        *change.remove_members,
        *change.remove_grants,
    ]
    added: list[casbin_rules.Rule] = [
        *change.add_catalogue,
        *change.add_grants,
        *change.add_members,
        *change.add_platform,
        *change.add_roles,
    ]
    size = len(removed) + len(added) + len(change.add_companies)
    if size > MAX_ROWS:
        return None
    return {
        "remove_rules": [list(casbin_rules.to_row(rule)) for rule in removed],
        "remove_groups": [[g.company, g.id, g.name] for g in change.remove_groups],
        "remove_companies": list(change.remove_companies),
        "add_companies": [[c.id, c.name, c.parent] for c in change.add_companies],
        "add_groups": [[g.company, g.id, g.name] for g in change.add_groups],
        "add_rules": [list(casbin_rules.to_row(rule)) for rule in added],
    }


def decode(action: str, ops: Ops) -> Change:
    """The change that ``encode`` stored (rows validated again on the way in)."""
    change = Change(action)
    decoder = casbin_rules.RowDecoder()
    change.remove_groups = [CustomGroup(*fields) for fields in ops["remove_groups"]]
    change.remove_companies = list(ops["remove_companies"])
    change.add_companies = [Company(*fields) for fields in ops["add_companies"]]
    change.add_groups = [CustomGroup(*fields) for fields in ops["add_groups"]]
    for adding, key in ((False, "remove_rules"), (True, "add_rules")):
        for row in ops[key]:
            _sort(change, decoder.decode(tuple(row)), adding)
    return change


def _sort(change: Change, rule: casbin_rules.Rule, adding: bool) -> None:
    if isinstance(rule, Grant):
        (change.add_grants if adding else change.remove_grants).append(rule)
    elif isinstance(rule, Membership):
        (change.add_members if adding else change.remove_members).append(rule)
    elif isinstance(rule, RoleAssignment):
        (change.add_roles if adding else change.remove_roles).append(rule)
    elif isinstance(rule, PlatformGrant) and adding:
        change.add_platform.append(rule)
    elif isinstance(rule, CatalogueEntry) and adding:
        change.add_catalogue.append(rule)
    else:
        raise ValueError(f"a change cannot remove {rule!r}")
