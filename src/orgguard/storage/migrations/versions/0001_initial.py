"""The schema orgguard created before it had migrations.

A database made by that orgguard (with ``create_all``) is recognised by
``orgguard db upgrade``, stamped with this revision and upgraded from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_FIELDS = ("v0", "v1", "v2", "v3", "v4", "v5")


def upgrade() -> None:
    op.create_table(
        "casbin_rule",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ptype", sa.String(255)),
        *(sa.Column(name, sa.String(255)) for name in _FIELDS),
    )
    # One row per rule, whatever the writers race: the whole rule is the key.
    op.create_index(
        "ux_casbin_rule_line",
        "casbin_rule",
        [sa.text("ptype"), *(sa.text(f"coalesce({name}, '')") for name in _FIELDS)],
        unique=True,
    )
    op.create_index("ix_casbin_rule_v1", "casbin_rule", ["ptype", "v1"])
    op.create_index("ix_casbin_rule_v2", "casbin_rule", ["ptype", "v2", "v1"])

    op.create_table(
        "companies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("parent", sa.String(64), sa.ForeignKey("companies.id")),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_companies_parent", "companies", ["parent"])

    op.create_table(
        "custom_groups",
        sa.Column(
            "company", sa.String(64), sa.ForeignKey("companies.id"), primary_key=True
        ),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
    )

    op.create_table(
        "changes",
        sa.Column(
            "revision",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("company", sa.String(64)),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("before", sa.JSON),
        sa.Column("after", sa.JSON),
        sa.Column("detail", sa.JSON, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_changes_at", "changes", ["at"])
    op.create_index("ix_changes_company", "changes", ["company"])
    op.create_index("ix_changes_actor", "changes", ["actor"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    active = sa.text("revoked_at IS NULL")
    op.create_index(
        "ux_api_keys_active_name",
        "api_keys",
        ["name"],
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )


def downgrade() -> None:
    for table in ("api_keys", "changes", "custom_groups", "companies", "casbin_rule"):
        op.drop_table(table)
