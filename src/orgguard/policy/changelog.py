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

from collections.abc import Iterable
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


def encode(change: Change, dropped: Iterable[Company] = ()) -> Ops | None:
    """The change's rows as JSON-ready lists; None if it is too large.
    ``dropped``: the records of the companies it removes (the log keeps them
    whole, so that ``undo`` can put them back)."""
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
        "remove_companies": _removed_companies(change, dropped),
        "add_companies": [[c.id, c.name, c.parent] for c in change.add_companies],
        "add_groups": [[g.company, g.id, g.name] for g in change.add_groups],
        "add_rules": [list(casbin_rules.to_row(rule)) for rule in added],
    }


def _removed_companies(change: Change, dropped: Iterable[Company]) -> list[Any]:
    """Each removed company as [id, name, parent], or its bare id when its
    record is not known (as in changes logged before records were kept)."""
    records = {company.id: company for company in dropped}
    return [
        [records[c].id, records[c].name, records[c].parent] if c in records else c
        for c in change.remove_companies
    ]


def undo(ops: Ops) -> Ops | None:
    """The rows of the change that takes ``ops`` back (what it added is
    removed, what it removed is added); None when the log cannot say (a
    company removed without its record). Catalogue and platform rules stay:
    nothing can remove them, and a company's access does not depend on them."""
    if any(isinstance(company, str) for company in ops["remove_companies"]):
        return None
    kept = [row for row in ops["add_rules"] if row[0] not in ("p2", "p3")]
    return {
        "remove_rules": kept,
        "remove_groups": ops["add_groups"],
        "remove_companies": [company[0] for company in ops["add_companies"]],
        "add_companies": ops["remove_companies"],
        "add_groups": ops["remove_groups"],
        "add_rules": ops["remove_rules"],
    }


def decode(action: str, ops: Ops) -> Change:
    """The change that ``encode`` stored (rows validated again on the way in)."""
    change = Change(action)
    decoder = casbin_rules.RowDecoder()
    change.remove_groups = [CustomGroup(*fields) for fields in ops["remove_groups"]]
    change.remove_companies = [
        company if isinstance(company, str) else company[0]
        for company in ops["remove_companies"]
    ]
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
