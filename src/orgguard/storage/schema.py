"""Tables. ``casbin_rule`` keeps the layout of the Casbin SQLAlchemy adapter, so
any Casbin tool can load orgguard's rules from the database as they are.

orgguard adds what the adapter lacks: a unique index over the whole rule (so a
rule is stored once, however many writers race), indexes for the per-company
queries, and its own tables for companies, custom group names, API keys and the
change log: one row per write, whose id is the policy revision and which is also
the audit trail (who, what, before and after). Nothing updates or deletes a
change row.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)

metadata = MetaData()

_RULE_FIELDS = ("v0", "v1", "v2", "v3", "v4", "v5")

casbin_rule = Table(
    "casbin_rule",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ptype", String(255)),
    *(Column(name, String(255)) for name in _RULE_FIELDS),
)
Index(
    "ux_casbin_rule_line",
    casbin_rule.c.ptype,
    *(func.coalesce(casbin_rule.c[name], "") for name in _RULE_FIELDS),
    unique=True,
)
# p rules by company (v1) and g rules by company (v2).
Index("ix_casbin_rule_v1", casbin_rule.c.ptype, casbin_rule.c.v1)
Index("ix_casbin_rule_v2", casbin_rule.c.ptype, casbin_rule.c.v2, casbin_rule.c.v1)

companies = Table(
    "companies",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("parent", String(64), ForeignKey("companies.id"), index=True),
    Column("revision", BigInteger, nullable=False),
)

custom_groups = Table(
    "custom_groups",
    metadata,
    Column("company", String(64), ForeignKey("companies.id"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
)

changes = Table(
    "changes",
    metadata,
    # The revision. AUTOINCREMENT on SQLite: a number is never handed out twice.
    Column(
        "revision",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    # UTC, set by orgguard (not the database clock) so every backend agrees.
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("action", String(64), nullable=False),
    Column("company", String(64), index=True),
    Column("actor", String(200), nullable=False, index=True),
    Column("request_id", String(128)),
    Column("before", JSON),
    Column("after", JSON),
    Column("detail", JSON, nullable=False),
    # What the change added and removed, for replicas to replay (see
    # orgguard.policy.changelog); None: too large, replicas reload instead.
    Column("ops", JSON(none_as_null=True)),
    sqlite_autoincrement=True,
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # public: the key's prefix
    Column("name", String(64), nullable=False),
    Column("role", String(64), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("digest", String(128), nullable=False),  # sha256(salt + secret)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
# One active key per name; a revoked key keeps its row (and its name) for audit.
Index(
    "ux_api_keys_active_name",
    api_keys.c.name,
    unique=True,
    sqlite_where=api_keys.c.revoked_at.is_(None),
    postgresql_where=api_keys.c.revoked_at.is_(None),
)
