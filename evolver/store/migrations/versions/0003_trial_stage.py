"""Trial stage and split: confirmation retrainings beside the search's trials.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

A campaign's confirmation stage retrains its best candidates and the base with fresh seeds and
scores them on a split the search never saw; those trials are stored like any other, marked
`stage = 'confirm'` with the `split` their metrics come from. Existing trials are search trials
scored on val.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:  # batch: SQLite rebuilds the table
        batch.add_column(sa.Column("stage", sa.String(length=16), server_default="search", nullable=False))
        batch.add_column(sa.Column("split", sa.String(length=16), server_default="val", nullable=False))
        batch.create_check_constraint("stage", "stage IN ('search', 'confirm')")


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_constraint("ck_trials_stage", type_="check")
        batch.drop_column("split")
        batch.drop_column("stage")
