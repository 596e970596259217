"""The SQL schema as SQLAlchemy 2 declarative tables (the Alembic migrations must match it).

The layout follows Optuna's normalised storage: one row per hyperparameter and per final metric
(unique per name), one row per reported epoch (unique per attempt and epoch). Queries by name stay
plain SQL (a dashboard can ask for every trial's `lr0` without parsing JSON), and uniqueness is
enforced by the database rather than by hope. Only per-epoch metrics, specs and imported rows are
JSON: they are read whole, never queried by key.

The store writes through these tables with Core statements (fast); the ORM classes exist to
declare the schema in one typed place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from .records import CAMPAIGN_STATUSES, TRIAL_STAGES, TRIAL_STATUSES

# Deterministic constraint names: migrations, autogenerate and both dialects agree on them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


CAMPAIGN_STATUS_CHECK = _in_list("status", CAMPAIGN_STATUSES)
TRIAL_STATUS_CHECK = _in_list("status", TRIAL_STATUSES)
TRIAL_STAGE_CHECK = _in_list("stage", TRIAL_STAGES)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps the zone (timestamptz); SQLite has no zone type, so values are stored as
    naive UTC and given back their zone on the way out. Naive input is refused: guessing its zone
    is how timestamps drift by hours.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (CheckConstraint(CAMPAIGN_STATUS_CHECK, name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict] = mapped_column(JSON)
    run_dir: Mapped[str] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    holder: Mapped[str | None] = mapped_column(String(200))  # the coordinator running it (evolver.lifecycle)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Generation(Base):
    """Written once, when the generation's last trial finishes (rows exist only for closed ones)."""

    __tablename__ = "generations"
    __table_args__ = (UniqueConstraint("campaign_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    best_fitness: Mapped[float | None] = mapped_column(Double)
    mean_fitness: Mapped[float | None] = mapped_column(Double)
    best_trial: Mapped[int | None] = mapped_column(Integer)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Trial(Base):
    """A trial's state as of its current attempt; `number` is 0-based per campaign."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("campaign_id", "number"),
        CheckConstraint(TRIAL_STATUS_CHECK, name="status"),
        CheckConstraint("attempt >= 1", name="attempt"),
        CheckConstraint(TRIAL_STAGE_CHECK, name="stage"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    worker: Mapped[str | None] = mapped_column(String(200))
    node_id: Mapped[str | None] = mapped_column(String(200))
    node_ip: Mapped[str | None] = mapped_column(String(64))
    gpu_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fitness: Mapped[float | None] = mapped_column(Double)
    epochs_done: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    weights_path: Mapped[str | None] = mapped_column(Text)
    # "search" (bred by the searcher) or "confirm" (a retraining of a candidate with a fresh seed),
    # and the data split its final metrics were scored on.
    stage: Mapped[str] = mapped_column(String(16), server_default="search")
    split: Mapped[str] = mapped_column(String(16), server_default="val")


class TrialParam(Base):
    """One hyperparameter value of one trial."""

    __tablename__ = "trial_params"
    __table_args__ = (UniqueConstraint("trial_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Double)


class TrialParent(Base):
    """A parent of a trial, by trial number (negative numbers are imported parents)."""

    __tablename__ = "trial_parents"
    __table_args__ = (UniqueConstraint("trial_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    parent_number: Mapped[int] = mapped_column(Integer)


class TrialMetric(Base):
    """One final metric of a finished trial; NULL stands for a non-finite value (NaN / inf)."""

    __tablename__ = "trial_metrics"
    __table_args__ = (UniqueConstraint("trial_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Double)


class TrialEpoch(Base):
    """Progress reported after one epoch of one attempt (metrics JSON, non-finite as null)."""

    __tablename__ = "trial_epochs"
    __table_args__ = (UniqueConstraint("trial_id", "attempt", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict] = mapped_column(JSON)
    fitness: Mapped[float | None] = mapped_column(Double)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ImportedParentRow(Base):
    """A row of a YOLOv5 `evolve.csv` that seeds the campaign's parent pool."""

    __tablename__ = "imported_parents"
    __table_args__ = (UniqueConstraint("campaign_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    hyp: Mapped[dict] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)
    fitness: Mapped[float] = mapped_column(Double)


class Artefact(Base):
    """A file the campaign produced (hyp_evolved.yaml, evolve.csv, weights, ONNX ...)."""

    __tablename__ = "artefacts"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    trial_number: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
