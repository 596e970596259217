"""Campaign lease: the coordinator that holds a campaign, and until when.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Exactly one coordinator runs a campaign: it claims the row (holder, lease_expires_at) with a
compare-and-set UPDATE and renews the lease while it runs; another may take over only once the
lease has lapsed (evolver/lifecycle.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:  # batch: SQLite rebuilds the table
        batch.add_column(sa.Column("holder", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("holder")
