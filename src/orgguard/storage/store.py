"""Reads and writes the policy in the database, each write one transaction.

This replaces the write path of the Casbin SQLAlchemy adapter, which commits each
rule of a batch on its own, deletes the cross product of a batch's fields in
``remove_policies`` and rebuilds every rule from comma-joined text on load (see
README, "The SQLAlchemy adapter"). The table layout stays the adapter's.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from orgguard.errors import Conflict, InvalidInput, Unavailable
from orgguard.policy import casbin_rules
from orgguard.policy.model import (
    CatalogueEntry,
    Change,
    Company,
    CustomGroup,
    Grant,
    Membership,
    Snapshot,
)
from orgguard.storage.schema import (
    casbin_rule,
    changes,
    companies,
    custom_groups,
    metadata,
)

log = logging.getLogger(__name__)

_FIELDS = ("v0", "v1", "v2", "v3", "v4", "v5")


class PolicyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def revision(self) -> int:
        with self.engine.connect() as connection:
            return _revision(connection)

    def load(self) -> Snapshot:
        """The whole policy in one read: plain rows, no ORM object per row."""
        snapshot = Snapshot()
        try:
            with self.engine.connect() as connection:
                snapshot.revision = _revision(connection)
                for row in connection.execute(
                    select(
                        companies.c.id, companies.c.name, companies.c.parent
                    ).order_by(companies.c.revision, companies.c.id)
                ):
                    snapshot.companies.append(Company(row.id, row.name, row.parent))
                for row in connection.execute(select(custom_groups)):
                    snapshot.groups.append(CustomGroup(row.company, row.id, row.name))
                rule_columns = [
                    casbin_rule.c.ptype,
                    *(casbin_rule.c[f] for f in _FIELDS),
                ]
                for values in connection.execute(
                    select(*rule_columns).order_by(casbin_rule.c.id)
                ):
                    _add_rule(snapshot, values)
        except DBAPIError as error:
            raise Unavailable(f"cannot read the policy: {error.orig}") from error
        return snapshot

    def apply(self, change: Change) -> int:
        """Write the change in one transaction and return its revision."""
        try:
            with self.engine.begin() as connection:
                revision = _write(connection, change)
        except IntegrityError as error:
            raise Conflict(
                "the write conflicts with the stored policy; nothing was changed"
            ) from error
        except DBAPIError as error:
            log.exception("write failed: %s", change.action)
            raise Unavailable(
                "the database could not complete the write; nothing was changed"
            ) from error
        return revision


def _revision(connection: Connection) -> int:
    value = connection.execute(
        select(changes.c.revision).order_by(changes.c.revision.desc()).limit(1)
    ).scalar()
    return int(value or 0)


def _add_rule(snapshot: Snapshot, values: Any) -> None:
    row = tuple(value for value in values if value is not None)
    try:
        rule = casbin_rules.from_row(row)
    except InvalidInput as error:
        raise InvalidInput(
            f"stored rule {casbin_rules.format_row(row)!r}: {error.message}"
        ) from error
    if isinstance(rule, Grant):
        snapshot.grants.append(rule)
    elif isinstance(rule, Membership):
        snapshot.members.append(rule)
    else:
        snapshot.catalogue.append(rule)


def _write(connection: Connection, change: Change) -> int:
    inserted = connection.execute(
        insert(changes).values(
            action=change.action, company=change.company, detail=change.summary()
        )
    ).inserted_primary_key
    assert inserted is not None
    revision = inserted[0]

    removed: list[Grant | Membership] = [*change.remove_members, *change.remove_grants]
    for rule in removed:
        _delete_rule(connection, casbin_rules.to_row(rule))
    for group in change.remove_groups:
        connection.execute(
            delete(custom_groups).where(
                custom_groups.c.company == group.company,
                custom_groups.c.id == group.id,
            )
        )
    for company_id in change.remove_companies:
        connection.execute(delete(companies).where(companies.c.id == company_id))

    if change.add_companies:
        connection.execute(
            insert(companies),
            [
                {"id": c.id, "name": c.name, "parent": c.parent, "revision": revision}
                for c in change.add_companies
            ],
        )
    if change.add_groups:
        connection.execute(
            insert(custom_groups),
            [
                {"company": g.company, "id": g.id, "name": g.name}
                for g in change.add_groups
            ],
        )
    added: list[Grant | Membership | CatalogueEntry] = [
        *change.add_catalogue,
        *change.add_grants,
        *change.add_members,
    ]
    if added:
        connection.execute(
            insert(casbin_rule), [_row_values(casbin_rules.to_row(r)) for r in added]
        )
    return int(revision)


def _row_values(row: casbin_rules.Row) -> dict[str, str | None]:
    values: dict[str, str | None] = dict.fromkeys(_FIELDS)
    values["ptype"] = row[0]
    values.update(zip(_FIELDS, row[1:], strict=False))
    return values


def _delete_rule(connection: Connection, row: casbin_rules.Row) -> None:
    values = _row_values(row)
    conditions = [
        casbin_rule.c[name] == value
        if value is not None
        else casbin_rule.c[name].is_(None)
        for name, value in values.items()
    ]
    deleted = connection.execute(delete(casbin_rule).where(and_(*conditions))).rowcount
    if deleted != 1:
        # Memory and database disagree: refuse rather than write on a stale view.
        raise Conflict(
            f"rule {casbin_rules.format_row(row)!r} is not stored; nothing was changed"
        )
