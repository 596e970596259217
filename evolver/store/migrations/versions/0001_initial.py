"""Initial schema: campaigns, generations, trials with params / parents / metrics / epochs,
imported parents, artefacts.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

The status lists are written out here on purpose: a migration is a snapshot of the schema at its
revision and must not change when models.py does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_CAMPAIGN_STATUS = "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')"
_TRIAL_STATUS = "status IN ('pending', 'running', 'completed', 'failed', 'pruned', 'cancelled')"


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _child_of(parent: str, child: str) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    """The owner column of a child table and its cascading foreign key, named as models.py names it."""
    column = "campaign_id" if parent == "campaigns" else "trial_id"
    return (sa.Column(column, sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint([column], [f"{parent}.id"], name=op.f(f"fk_{child}_{column}_{parent}"),
                                    ondelete="CASCADE"))


def upgrade() -> None:
    op.create_table(
        "campaigns",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("run_dir", sa.Text(), nullable=False),
        sa.Column("job_id", sa.String(200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(_CAMPAIGN_STATUS, name=op.f("ck_campaigns_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    campaign_id, campaign_fk = _child_of("campaigns", "generations")
    op.create_table(
        "generations",
        _id(),
        campaign_id,
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("best_fitness", sa.Double(), nullable=True),
        sa.Column("mean_fitness", sa.Double(), nullable=True),
        sa.Column("best_trial", sa.Integer(), nullable=True),
        sa.Column("closed_at", _utc(), nullable=False),
        campaign_fk,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
        sa.UniqueConstraint("campaign_id", "number", name=op.f("uq_generations_campaign_id_number")),
    )
    campaign_id, campaign_fk = _child_of("campaigns", "trials")
    op.create_table(
        "trials",
        _id(),
        campaign_id,
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("node_id", sa.String(200), nullable=True),
        sa.Column("node_ip", sa.String(64), nullable=True),
        sa.Column("gpu_id", sa.String(64), nullable=True),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.Column("fitness", sa.Double(), nullable=True),
        sa.Column("epochs_done", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("weights_path", sa.Text(), nullable=True),
        sa.CheckConstraint(_TRIAL_STATUS, name=op.f("ck_trials_status")),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_trials_attempt")),
        campaign_fk,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trials")),
        sa.UniqueConstraint("campaign_id", "number", name=op.f("uq_trials_campaign_id_number")),
    )
    trial_id, trial_fk = _child_of("trials", "trial_params")
    op.create_table(
        "trial_params",
        _id(),
        trial_id,
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        trial_fk,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_params")),
        sa.UniqueConstraint("trial_id", "name", name=op.f("uq_trial_params_trial_id_name")),
    )
    trial_id, trial_fk = _child_of("trials", "trial_parents")
    op.create_table(
        "trial_parents",
        _id(),
        trial_id,
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("parent_number", sa.Integer(), nullable=False),
        trial_fk,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_parents")),
        sa.UniqueConstraint("trial_id", "position", name=op.f("uq_trial_parents_trial_id_position")),
    )
    trial_id, trial_fk = _child_of("trials", "trial_metrics")
    op.create_table(
        "trial_metrics",
        _id(),
        trial_id,
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        trial_fk,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_metrics")),
        sa.UniqueConstraint("trial_id", "name", name=op.f("uq_trial_metrics_trial_id_name")),
    )
    trial_id, trial_fk = _child_of("trials", "trial_epochs")
    op.create_table(
        "trial_epochs",
        _id(),
        trial_id,
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("fitness", sa.Double(), nullable=True),
        sa.Column("recorded_at", _utc(), nullable=False),
        trial_fk,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_epochs")),
        sa.UniqueConstraint("trial_id", "attempt", "epoch", name=op.f("uq_trial_epochs_trial_id_attempt_epoch")),
    )
    campaign_id, campaign_fk = _child_of("campaigns", "imported_parents")
    op.create_table(
        "imported_parents",
        _id(),
        campaign_id,
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("hyp", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("fitness", sa.Double(), nullable=False),
        campaign_fk,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imported_parents")),
        sa.UniqueConstraint("campaign_id", "position", name=op.f("uq_imported_parents_campaign_id_position")),
    )
    campaign_id, campaign_fk = _child_of("campaigns", "artefacts")
    op.create_table(
        "artefacts",
        _id(),
        campaign_id,
        sa.Column("trial_number", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        campaign_fk,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artefacts")),
        sa.UniqueConstraint("campaign_id", "name", name=op.f("uq_artefacts_campaign_id_name")),
    )


def downgrade() -> None:
    for table in ("artefacts", "imported_parents", "trial_epochs", "trial_metrics", "trial_parents",
                  "trial_params", "trials", "generations", "campaigns"):
        op.drop_table(table)
