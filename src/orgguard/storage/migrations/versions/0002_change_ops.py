"""The change log carries each change's rows, so replicas replay it.

``changes.ops`` holds what a change added and removed (see
``orgguard.policy.changelog``). Rows written before this revision have none,
and a replica that meets one reloads the whole policy instead.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.add_column(sa.Column("ops", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("ops")
