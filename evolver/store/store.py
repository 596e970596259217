"""The campaign store: every campaign, generation, trial and artefact, in SQL.

Contract (after Optuna's storage contract):
- Finished trials (completed / failed / pruned / cancelled) are never modified, with one
  exception: `requeue_trial` runs a cancelled trial again as its next attempt when its campaign
  is resumed. Other calls that would change one return False (`start_trial`, `record_epoch`,
  `finish_trial`) or raise `TrialAlreadyFinished` (`requeue_trial` of a completed, failed or
  pruned trial), and write nothing.
- A campaign's status changes only through `transition_campaign` / `renew_campaign_lease`:
  compare-and-set UPDATEs whose rules live in `evolver.lifecycle`.
- Each public call is one transaction: it is written whole or not at all. Bad input (unknown
  status, campaign or trial, non-numeric values) raises before anything is written. Calls made
  inside `batch()` share one transaction instead (the coordinator's unit of work per loop turn):
  all of the block is written, or, if anything in it raises, none of it.
- Recording the same thing twice changes nothing: `add_trial` returns the stored trial,
  `finish_trial` returns False, an epoch is stored once per (trial, attempt, epoch),
  `close_generation` returns the row written the first time.
- Calls carrying an `attempt` only apply to the trial's current attempt, so a late result of an
  attempt that was re-queued cannot overwrite the retry.

Hot paths (`add_trial`, `start_trial`, `finish_trial`, `record_epoch`, `close_generation`) run
Core statements built once with bind parameters, and guarded UPDATEs (`WHERE status IN (pending,
running) AND attempt = :attempt`): the guard is the check, so there is no read-then-write race
and one round trip fewer.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

from sqlalchemy import Engine, bindparam, delete, func, insert, or_, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from evolver.ranking import best_of, ranks

from . import checks
from .database import WRITE_OPTION, create_store_engine, sqlite_url, upgrade_to_head
from .errors import CampaignNotFound, InvalidInput, TrialAlreadyFinished, TrialNotFound
from .models import (
    Artefact,
    Campaign,
    Generation,
    ImportedParentRow,
    Trial,
    TrialEpoch,
    TrialMetric,
    TrialParam,
    TrialParent,
    UTCDateTime,
)
from .records import (
    ACTIVE_TRIAL_STATUSES,
    ArtefactRecord,
    CampaignRecord,
    DATA_SPLITS,
    EpochRecord,
    FINISHED_TRIAL_STATUSES,
    GenerationRecord,
    ImportedParent,
    Placement,
    TRIAL_STAGES,
    TrialRecord,
    TrialSummary,
)
from .unavailable import OPEN_ERRORS, open_failure

CAMPAIGNS = Campaign.__table__
GENERATIONS = Generation.__table__
TRIALS = Trial.__table__
PARAMS = TrialParam.__table__
PARENTS = TrialParent.__table__
METRICS = TrialMetric.__table__
EPOCHS = TrialEpoch.__table__
IMPORTED = ImportedParentRow.__table__
ARTEFACTS = Artefact.__table__

_ACTIVE = TRIALS.c.status.in_(ACTIVE_TRIAL_STATUSES)
_HASH_CHUNK = 1 << 20

# The coordinator's per-trial statements, built once with bind parameters (SQLAlchemy caches each
# one's compiled form). WHERE parameters are prefixed `w_` so they never clash with the columns set.
_CAMPAIGN_EXISTS = select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.id == bindparam("w_campaign"))
_TRIAL_STATE = select(TRIALS.c.id, TRIALS.c.status, TRIALS.c.attempt).where(
    TRIALS.c.campaign_id == bindparam("w_campaign"), TRIALS.c.number == bindparam("w_number"))
_CURRENT_ATTEMPT = (TRIALS.c.campaign_id == bindparam("w_campaign"), TRIALS.c.number == bindparam("w_number"),
                    TRIALS.c.attempt == bindparam("w_attempt"), _ACTIVE)
# Per dialect, an INSERT that skips a row whose unique key is stored already (both spell it ON
# CONFLICT DO NOTHING); RETURNING then yields no row (rowcount is no help: PostgreSQL reports -1
# with RETURNING). A trial number already stored, or an epoch that both a progress poll and the
# final result carried, is skipped, not an error.
_INSERT_TRIAL = {dialect.dialect.name: dialect.insert(TRIALS).on_conflict_do_nothing(
    index_elements=["campaign_id", "number"]).returning(TRIALS.c.id) for dialect in (sqlite, postgresql)}
_INSERT_EPOCH = {dialect.dialect.name: dialect.insert(EPOCHS).on_conflict_do_nothing(
    index_elements=["trial_id", "attempt", "epoch"]).returning(EPOCHS.c.id) for dialect in (sqlite, postgresql)}
_START_TRIAL = update(TRIALS).where(*_CURRENT_ATTEMPT).values(
    status="running", worker=bindparam("worker"), node_id=bindparam("node_id"), node_ip=bindparam("node_ip"),
    gpu_id=bindparam("gpu_id"), started_at=bindparam("started_at"), ended_at=None)
_FINISH_TRIAL = update(TRIALS).where(*_CURRENT_ATTEMPT).values(
    status=bindparam("status"), ended_at=bindparam("ended_at"), fitness=bindparam("fitness"),
    epochs_done=bindparam("epochs_done"), error=bindparam("error"), weights_path=bindparam("weights_path"),
).returning(TRIALS.c.id)
_GENERATION_TRIALS = select(TRIALS.c.number, TRIALS.c.status, TRIALS.c.fitness).where(
    TRIALS.c.campaign_id == bindparam("w_campaign"), TRIALS.c.number >= bindparam("w_first"),
    TRIALS.c.number < bindparam("w_end"))
_STORED_GENERATION = select(GENERATIONS).where(GENERATIONS.c.campaign_id == bindparam("w_campaign"),
                                               GENERATIONS.c.number == bindparam("w_number"))


class _Batch:
    """The connection and transaction of one `Store.batch()` block, opened on first use."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        if self._connection is None:
            connection = self._engine.connect()
            connection.begin()
            self._connection = connection
        return self._connection

    def end(self, *, commit: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if commit:
                connection.commit()
            else:
                connection.rollback()
        finally:
            connection.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _placement_values(placement: object) -> dict[str, str | None]:
    """The trial columns of a `Placement` (validated when it was made)."""
    if not isinstance(placement, Placement):
        raise InvalidInput(f"placement must be a Placement, got {placement!r}")
    return {"worker": placement.worker, "node_id": placement.node_id, "node_ip": placement.node_ip,
            "gpu_id": placement.gpu_id}


def _insert_rows(conn: Connection, statement, rows: list[dict]) -> None:
    """One INSERT for all rows (executemany); no rows, no statement."""
    if rows:
        conn.execute(statement, rows)


def _float_or_nan(value: float | None) -> float:
    """Read side of `checks.measured`: a metric stored as NULL was non-finite."""
    return float("nan") if value is None else value


class Store:
    """SQL persistence of campaigns; thread-safe (each call takes its own pooled connection)."""

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine whose schema is already at head; use `Store.open` instead."""
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._local = threading.local()  # .batch: this thread's open `batch()`, if any

    # ----------------------------------------------------------------------------- lifecycle
    @classmethod
    def open(cls, url: str) -> Store:
        """Connect and bring the schema to the newest migration (creating it in an empty database).

        Raises `StoreUnavailable` (one line: the URL, password masked, and why) when the URL is
        not one, the driver is missing, the server is unreachable or the file cannot be used."""
        try:
            engine = create_store_engine(url)
        except OPEN_ERRORS as err:
            raise open_failure(url, err) from err
        try:
            upgrade_to_head(engine)
        except OPEN_ERRORS as err:
            engine.dispose()
            raise open_failure(url, err) from err
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @staticmethod
    def sqlite_url(path: str | Path) -> str:
        return sqlite_url(path)

    @property
    def engine(self) -> Engine:
        """The underlying engine (for read-only reporting queries, e.g. the dashboard)."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make this thread's store calls inside the block one transaction (a unit of work).

        Each call keeps its own contract (checks, idempotence, guarded updates); what changes is
        that the block commits once at its end, or, if anything raises in it, rolls back as a
        whole. Reads in the block see its writes. The transaction (a write transaction, so on
        SQLite it holds the write lock) starts at the first call, so a block that makes none costs
        nothing; keep blocks short and never wait on anything else inside one. Blocks do not nest.

        The coordinator records a loop turn's results and dispatches that turn's trials in one
        block: one commit where it would otherwise make two or more.
        """
        if getattr(self._local, "batch", None) is not None:
            raise RuntimeError("Store.batch() blocks do not nest")
        batch = _Batch(self._writer)
        self._local.batch = batch
        try:
            yield
        except BaseException:
            batch.end(commit=False)
            raise
        else:
            batch.end(commit=True)
        finally:
            self._local.batch = None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        batch = getattr(self._local, "batch", None)
        if batch is not None:
            yield batch.connection()
            return
        with self._writer.begin() as connection:
            yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        batch = getattr(self._local, "batch", None)
        if batch is not None:  # read what the block wrote so far
            yield batch.connection()
            return
        with self._engine.connect() as connection:
            yield connection

    # ----------------------------------------------------------------------------- campaigns
    def create_campaign(self, name: str, spec: dict, run_dir: str) -> int:
        """Insert a campaign in status "queued"; returns its id."""
        name = checks.text(name, "campaign name", 200)
        document = checks.json_document(spec, "campaign spec")
        run_dir = checks.text(str(run_dir) if isinstance(run_dir, Path) else run_dir, "run_dir")
        now = _now()
        with self._write() as conn:
            return conn.execute(insert(CAMPAIGNS).values(
                name=name, status="queued", spec=document, run_dir=run_dir, job_id=None, error=None,
                created_at=now, updated_at=now).returning(CAMPAIGNS.c.id)).scalar_one()

    def campaign(self, campaign_id: int) -> CampaignRecord:
        with self._read() as conn:
            row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).first()
        if row is None:
            raise CampaignNotFound(campaign_id)
        return _campaign_record(row)

    def campaigns(self) -> list[CampaignRecord]:
        with self._read() as conn:
            rows = conn.execute(select(CAMPAIGNS).order_by(CAMPAIGNS.c.id)).all()
        return [_campaign_record(row) for row in rows]

    def transition_campaign(self, campaign_id: int, *, from_statuses: Collection[str] | None,
                            unheld: bool = False, holder_is: str | None = None, job_is: str | None = None,
                            **changes: object) -> bool:
        """One compare-and-set UPDATE of a campaign (evolver.lifecycle owns the rules).

        It applies only while the status is one of `from_statuses` (None: any), and, as asked, no
        live coordinator holds it (`unheld`: no holder, or its lease lapsed), `holder_is` holds
        it, the campaign names job `job_is`. `changes`: status, error, job_id, holder (None
        releases it) and lease_seconds (the new lease's length, from now). True if it applied.
        Leases are written and compared on the database's clock (`_database_time`), never the
        caller's: coordinators on hosts whose clocks disagree still agree on who holds what."""
        unknown = sorted(set(changes) - {"status", "error", "job_id", "holder", "lease_seconds"})
        if unknown:
            raise InvalidInput(f"cannot change campaign field(s) {', '.join(unknown)}")
        values: dict[str, object] = {"updated_at": _now()}
        if "status" in changes:
            values["status"] = checks.campaign_status(changes["status"])
        if "error" in changes:
            values["error"] = checks.optional_text(changes["error"], "error")
        if "job_id" in changes:
            values["job_id"] = checks.optional_text(changes["job_id"], "job_id", 200)
        if "holder" in changes:
            values["holder"] = checks.optional_text(changes["holder"], "holder", 200)
            if changes["holder"] is None:
                values["lease_expires_at"] = None
        if "lease_seconds" in changes:
            values["lease_expires_at"] = self._database_time(checks.positive_number(
                changes["lease_seconds"], "lease_seconds"))
        row = CAMPAIGNS.c
        where = [row.id == campaign_id]
        if from_statuses is not None:
            where.append(row.status.in_([checks.campaign_status(s) for s in from_statuses]))
        if unheld:
            where.append(or_(row.holder.is_(None), row.lease_expires_at < self._database_time()))
        if holder_is is not None:
            where.append(row.holder == holder_is)
        if job_is is not None:
            where.append(row.job_id == job_is)
        with self._write() as conn:
            if conn.execute(update(CAMPAIGNS).where(*where).values(**values)).rowcount == 1:
                return True
            self._require_campaign(conn, campaign_id)
            return False

    def renew_campaign_lease(self, campaign_id: int, holder: str, seconds: float) -> str | None:
        """Extend `holder`'s lease by `seconds` from now (the database's now); returns the
        campaign's status, or None when `holder` no longer holds it."""
        expires = self._database_time(checks.positive_number(seconds, "lease seconds"))
        with self._write() as conn:
            return conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.holder == holder)
                                .values(lease_expires_at=expires, updated_at=_now())
                                .returning(CAMPAIGNS.c.status)).scalar()

    def lease_seconds_left(self, campaign_id: int) -> float | None:
        """Seconds until the campaign's lease lapses, on the database's clock (negative: lapsed
        that long ago); None when nobody holds it."""
        with self._read() as conn:
            row = conn.execute(select(CAMPAIGNS.c.lease_expires_at, self._database_time())
                               .where(CAMPAIGNS.c.id == campaign_id)).first()
        if row is None:
            raise CampaignNotFound(campaign_id)
        expires, now = row
        return None if expires is None else (expires - now).total_seconds()

    def _database_time(self, plus_seconds: float = 0.0):
        """The database server's current time plus `plus_seconds`, as an SQL expression of the
        UTCDateTime type (PostgreSQL: now(), the transaction's start; SQLite: its own 'now' in
        the format SQLAlchemy stores, microseconds included, so stored values compare as text)."""
        if self._engine.dialect.name == "sqlite":
            text = func.strftime("%Y-%m-%d %H:%M:%f", "now", f"{plus_seconds:+.3f} seconds").concat("000")
            return type_coerce(text, UTCDateTime())
        return type_coerce(func.now() + timedelta(seconds=plus_seconds), UTCDateTime())

    @staticmethod
    def _require_campaign(conn: Connection, campaign_id: int) -> None:
        if conn.execute(_CAMPAIGN_EXISTS, {"w_campaign": campaign_id}).first() is None:
            raise CampaignNotFound(campaign_id)

    # ----------------------------------------------------------------------------- trials
    def add_trial(self, campaign_id: int, number: int, generation: int, hyp: dict, parents: Sequence[int],
                  seed: int, *, running_on: Placement | None = None, stage: str = "search",
                  split: str = "val") -> TrialRecord:
        """Insert a pending trial (attempt 1), or with `running_on` one already running there:
        breeding and dispatch in one transaction. `stage`: "search" or "confirm" (a retraining
        of a candidate), `split`: the data split its final metrics are scored on.

        If the trial already exists nothing is written and the stored trial is returned: on a
        resume the stored hyperparameters are the truth, whatever the caller bred this time.
        """
        number = checks.integer(number, "trial number", 0)
        generation = checks.integer(generation, "generation", 0)
        hyp = checks.hyperparameters(hyp)
        parent_numbers = checks.parents(parents)
        seed = checks.integer(seed, "seed")
        stage = checks.one_of(stage, "stage", TRIAL_STAGES)
        split = checks.one_of(split, "split", DATA_SPLITS)
        if running_on is None:
            placement = {"status": "pending", "worker": None, "node_id": None, "node_ip": None, "gpu_id": None,
                         "started_at": None}
        else:
            placement = {"status": "running", **_placement_values(running_on), "started_at": _now()}
        with self._write() as conn:
            self._require_campaign(conn, campaign_id)
            trial_id = conn.execute(_INSERT_TRIAL[conn.dialect.name], {
                "campaign_id": campaign_id, "number": number, "generation": generation, **placement,
                "attempt": 1, "seed": seed, "epochs_done": 0, "stage": stage, "split": split}).scalar()
            if trial_id is None:  # stored already (its number's unique key said so): nothing written
                return _load_trials(conn, campaign_id, number=number)[0]
            _insert_rows(conn, insert(PARAMS), [{"trial_id": trial_id, "name": k, "value": v} for k, v in hyp.items()])
            _insert_rows(conn, insert(PARENTS), [{"trial_id": trial_id, "position": i, "parent_number": p}
                                                 for i, p in enumerate(parent_numbers)])
        return TrialRecord(
            campaign_id=campaign_id, number=number, generation=generation, attempt=1,
            hyp=dict(hyp), parents=parent_numbers, seed=seed, **placement, ended_at=None, metrics={}, fitness=None,
            epochs_done=0, error=None, weights_path=None, stage=stage, split=split)

    def start_trial(self, campaign_id: int, number: int, attempt: int, placement: Placement, *,
                    started_at: datetime | float | None = None) -> bool:
        """Mark the current attempt running at `placement`; False (nothing written) if the trial is
        finished or `attempt` is not its current attempt. `started_at` defaults to now."""
        values = {
            "w_campaign": campaign_id, "w_number": number, "w_attempt": checks.integer(attempt, "attempt", 1),
            **_placement_values(placement), "started_at": checks.timestamp(started_at, "started_at") or _now()}
        with self._write() as conn:
            if conn.execute(_START_TRIAL, values).rowcount == 1:
                return True
            self._trial_state(conn, campaign_id, number)  # raises if there is no such trial
            return False

    def record_epoch(self, campaign_id: int, number: int, attempt: int, epoch: int, metrics: dict,
                     fitness: float | None) -> bool:
        """Store one epoch's progress once; True if this call stored it.

        False, and nothing written, if the epoch is already stored, the attempt is not current, or
        the trial is finished (record epochs before `finish_trial`).
        """
        attempt = checks.integer(attempt, "attempt", 1)
        epoch = checks.integer(epoch, "epoch", 0)
        values = checks.metrics(metrics)
        fitness = checks.measured(fitness, "fitness")
        with self._write() as conn:
            trial_id, status, current = self._trial_state(conn, campaign_id, number)
            if status not in ACTIVE_TRIAL_STATUSES or attempt != current:
                return False
            row = {"trial_id": trial_id, "attempt": attempt, "epoch": epoch, "metrics": values, "fitness": fitness,
                   "recorded_at": _now()}
            return conn.execute(_INSERT_EPOCH[conn.dialect.name], row).first() is not None

    def finish_trial(self, campaign_id: int, number: int, attempt: int, status: str, *, metrics: dict,
                     fitness: float | None, epochs_done: int, error: str | None = None,
                     weights_path: str | None = None, ended_at: datetime | float | None = None,
                     epochs: Sequence[tuple[int, dict, float | None]] = ()) -> bool:
        """Record the result of the current attempt, in one transaction, together with its last
        `epochs` (epoch, metrics, fitness) not yet stored.

        Returns False and writes nothing if the trial is already finished or `attempt` is stale.
        Non-finite metric values and fitness are stored as missing (read back as NaN / None).
        """
        epoch_rows = [(checks.integer(e, "epoch", 0), checks.metrics(m), checks.measured(f, "fitness"))
                      for e, m, f in epochs]
        result = {
            "w_campaign": campaign_id, "w_number": number, "w_attempt": checks.integer(attempt, "attempt", 1),
            "status": checks.finished_status(status), "fitness": checks.measured(fitness, "fitness"),
            "epochs_done": checks.integer(epochs_done, "epochs_done", 0), "error": checks.optional_text(error, "error"),
            "weights_path": checks.optional_text(str(weights_path) if isinstance(weights_path, Path) else weights_path,
                                                 "weights_path"),
            "ended_at": checks.timestamp(ended_at, "ended_at") or _now()}
        values = checks.metrics(metrics)
        with self._write() as conn:
            trial_id = conn.execute(_FINISH_TRIAL, result).scalar()
            if trial_id is None:  # stale or repeated: nothing written, epochs included
                self._trial_state(conn, campaign_id, number)
                return False
            now = _now()  # the attempt was current and active a statement ago, in this transaction
            _insert_rows(conn, _INSERT_EPOCH[conn.dialect.name], [
                {"trial_id": trial_id, "attempt": result["w_attempt"], "epoch": epoch, "metrics": epoch_metrics,
                 "fitness": epoch_fitness, "recorded_at": now} for epoch, epoch_metrics, epoch_fitness in epoch_rows])
            _insert_rows(conn, insert(METRICS), [{"trial_id": trial_id, "name": k, "value": v}
                                                 for k, v in values.items()])
            return True

    def requeue_trial(self, campaign_id: int, number: int) -> int:
        """Send a pending / running / cancelled trial back to the queue as a new attempt; returns
        that attempt.

        The new attempt starts clean (no worker, times, error, result or final metrics: a cancelled
        attempt's partial ones would otherwise collide with the next attempt's); epochs of earlier
        attempts stay in SQL under their attempt number. Raises `TrialAlreadyFinished` for a
        finished trial.
        """
        with self._write() as conn:
            row = conn.execute(update(TRIALS).where(
                TRIALS.c.campaign_id == campaign_id, TRIALS.c.number == number,
                TRIALS.c.status.in_((*ACTIVE_TRIAL_STATUSES, "cancelled"))).values(
                status="pending", attempt=TRIALS.c.attempt + 1, worker=None, node_id=None, node_ip=None,
                gpu_id=None, started_at=None, ended_at=None, error=None, fitness=None, epochs_done=0,
                weights_path=None).returning(TRIALS.c.id, TRIALS.c.attempt)).first()
            if row is None:
                _, status, _ = self._trial_state(conn, campaign_id, number)
                raise TrialAlreadyFinished(campaign_id, number, status)
            conn.execute(delete(METRICS).where(METRICS.c.trial_id == row.id))
            return row.attempt

    def trial(self, campaign_id: int, number: int) -> TrialRecord:
        with self._read() as conn:
            found = _load_trials(conn, campaign_id, number=number)
            if not found:
                self._require_campaign(conn, campaign_id)
                raise TrialNotFound(campaign_id, number)
        return found[0]

    def trials(self, campaign_id: int, statuses: Collection[str] | None = None) -> list[TrialRecord]:
        """The campaign's trials by number, optionally only those in `statuses`."""
        wanted = None if statuses is None else checks.trial_statuses(statuses)
        with self._read() as conn:
            self._require_campaign(conn, campaign_id)
            return _load_trials(conn, campaign_id, statuses=wanted)

    def trials_page(self, campaign_id: int, *, statuses: Collection[str] | None = None, sort: str = "number",
                    limit: int = 50, offset: int = 0) -> tuple[int, list[TrialRecord]]:
        """(total matching, one page of trials) with sorting and paging done in SQL, so a page costs
        the same however many trials the campaign has. `sort`: number, -number, fitness, -fitness
        (trials without fitness last, ties by number)."""
        orders = {
            "number": (TRIALS.c.number,), "-number": (TRIALS.c.number.desc(),),
            "fitness": (TRIALS.c.fitness.is_(None), TRIALS.c.fitness, TRIALS.c.number),
            "-fitness": (TRIALS.c.fitness.is_(None), TRIALS.c.fitness.desc(), TRIALS.c.number),
        }
        if sort not in orders:
            raise InvalidInput(f"sort must be one of {', '.join(orders)}, got {sort!r}")
        wanted = None if statuses is None else checks.trial_statuses(statuses)
        where = [TRIALS.c.campaign_id == campaign_id]
        if wanted is not None:
            where.append(TRIALS.c.status.in_(wanted))
        with self._read() as conn:
            self._require_campaign(conn, campaign_id)
            total = conn.execute(select(func.count()).select_from(TRIALS).where(*where)).scalar_one()
            numbers = list(conn.execute(select(TRIALS.c.number).where(*where).order_by(*orders[sort])
                                        .limit(limit).offset(offset)).scalars())
            if not numbers:
                return total, []
            found = {t.number: t for t in _load_trials(conn, campaign_id, numbers=numbers)}
        return total, [found[n] for n in numbers]

    def ping(self) -> None:
        """One round trip to the database (raises when it is unreachable)."""
        with self._read() as conn:
            conn.execute(select(1))

    def trial_summaries(self, campaign_id: int | None = None) -> dict[int, TrialSummary]:
        """Per campaign (one, or all that have trials): trials by status, best completed fitness,
        finished count and span. Three aggregate statements, however many trials there are (a
        campaign list or /metrics scrape never loads the trials themselves)."""
        where = [] if campaign_id is None else [TRIALS.c.campaign_id == campaign_id]
        by_status = select(TRIALS.c.campaign_id, TRIALS.c.status, func.count()).where(*where).group_by(
            TRIALS.c.campaign_id, TRIALS.c.status)
        best = select(TRIALS.c.campaign_id, func.max(TRIALS.c.fitness)).where(  # the search's raw best
            TRIALS.c.status == "completed", TRIALS.c.stage == "search", *where).group_by(TRIALS.c.campaign_id)
        spans = select(TRIALS.c.campaign_id, func.min(TRIALS.c.started_at), func.max(TRIALS.c.ended_at)).where(
            TRIALS.c.status.in_(FINISHED_TRIAL_STATUSES), *where).group_by(TRIALS.c.campaign_id)
        fields: dict[int, dict] = {}
        with self._read() as conn:
            for cid, status, n in conn.execute(by_status):
                fields.setdefault(cid, {"by_status": {}})["by_status"][status] = n
            for cid, fitness in conn.execute(best):
                fields[cid]["best_fitness"] = fitness
            for cid, first, last in conn.execute(spans):
                fields[cid].update(first_started=first, last_ended=last)
        return {cid: TrialSummary(campaign_id=cid, **values) for cid, values in fields.items()}

    def epochs(self, campaign_id: int, number: int) -> list[EpochRecord]:
        """Epochs reported by the trial's current attempt, in epoch order."""
        with self._read() as conn:
            trial_id, _, attempt = self._trial_state(conn, campaign_id, number)
            rows = conn.execute(select(EPOCHS.c.epoch, EPOCHS.c.metrics, EPOCHS.c.fitness).where(
                EPOCHS.c.trial_id == trial_id, EPOCHS.c.attempt == attempt).order_by(EPOCHS.c.epoch)).all()
        return [EpochRecord(number=number, attempt=attempt, epoch=row.epoch,
                            metrics={k: _float_or_nan(v) for k, v in row.metrics.items()}, fitness=row.fitness)
                for row in rows]

    def _trial_state(self, conn: Connection, campaign_id: int, number: int) -> tuple[int, str, int]:
        """(row id, status, attempt) of a trial; TrialNotFound / CampaignNotFound if absent."""
        row = conn.execute(_TRIAL_STATE, {"w_campaign": campaign_id, "w_number": number}).first()
        if row is None:
            self._require_campaign(conn, campaign_id)
            raise TrialNotFound(campaign_id, number)
        return row.id, row.status, row.attempt

    # ----------------------------------------------------------------------------- generations
    def close_generation(self, campaign_id: int, index: int, size: int) -> GenerationRecord | None:
        """Close generation `index` (trials index*size ... index*size+size-1) once all are finished.

        Failed, pruned and cancelled trials count as finished; best / mean fitness are over the
        completed trials that have a fitness (None when there are none, and the generation still
        closes). Ties for best go to the lower trial number. Returns None while a trial is
        missing or unfinished; once closed, returns the same stored row every time.
        """
        index = checks.integer(index, "generation index", 0)
        size = checks.integer(size, "generation size", 1)
        first = index * size
        with self._write() as conn:
            rows = conn.execute(_GENERATION_TRIALS,
                                {"w_campaign": campaign_id, "w_first": first, "w_end": first + size}).all()
            if len(rows) < size or any(row.status in ACTIVE_TRIAL_STATUSES for row in rows):
                if not rows:
                    self._require_campaign(conn, campaign_id)
                return None
            stored = conn.execute(_STORED_GENERATION, {"w_campaign": campaign_id, "w_number": index}).first()
            if stored is not None:
                return _generation_record(stored)
            completed = [row for row in rows if row.status == "completed"]
            scored = [row for row in completed if ranks(row, status=None)]
            best_fitness = mean_fitness = best_trial = None
            if scored:
                best = best_of(scored)
                best_fitness, best_trial = best.fitness, best.number
                mean_fitness = sum(row.fitness for row in scored) / len(scored)
            values = {"campaign_id": campaign_id, "number": index, "size": size, "completed": len(completed),
                      "best_fitness": best_fitness, "mean_fitness": mean_fitness, "best_trial": best_trial,
                      "closed_at": _now()}
            conn.execute(insert(GENERATIONS).values(**values))
        return GenerationRecord(campaign_id=campaign_id, index=index, best_fitness=best_fitness,
                                mean_fitness=mean_fitness, best_trial=best_trial, closed_at=values["closed_at"],
                                size=size, completed=len(completed))

    def generations(self, campaign_id: int) -> list[GenerationRecord]:
        """Closed generations, by index."""
        with self._read() as conn:
            self._require_campaign(conn, campaign_id)
            rows = conn.execute(select(GENERATIONS).where(GENERATIONS.c.campaign_id == campaign_id)
                                .order_by(GENERATIONS.c.number)).all()
        return [_generation_record(row) for row in rows]

    # ----------------------------------------------------------------------------- imported parents
    def add_imported_parents(self, campaign_id: int, rows: Sequence[tuple[dict, dict, float]]) -> int:
        """Append (hyp, metrics, fitness) rows to the parent pool; returns how many were added.

        A row equal to one already stored is skipped, so importing the same evolve.csv twice does
        not double its weight in parent selection.
        """
        clean = []
        for i, row in enumerate(rows):
            if not isinstance(row, Sequence) or len(row) != 3:
                raise InvalidInput(f"imported parent row {i} must be (hyp, metrics, fitness), got {row!r}")
            hyp, metrics, fitness = row
            clean.append((checks.hyperparameters(hyp, f"imported parent row {i} hyp"),
                          checks.metrics(metrics, f"imported parent row {i} metrics"),
                          checks.finite(fitness, f"imported parent row {i} fitness")))
        with self._write() as conn:
            self._require_campaign(conn, campaign_id)
            stored = conn.execute(select(IMPORTED.c.position, IMPORTED.c.hyp, IMPORTED.c.metrics, IMPORTED.c.fitness)
                                  .where(IMPORTED.c.campaign_id == campaign_id)).all()
            seen = {_parent_key(row.hyp, row.metrics, row.fitness) for row in stored}
            position = max((row.position for row in stored), default=-1) + 1
            new = []
            for hyp, metrics, fitness in clean:
                key = _parent_key(hyp, metrics, fitness)
                if key in seen:
                    continue
                seen.add(key)
                new.append({"campaign_id": campaign_id, "position": position, "hyp": hyp, "metrics": metrics,
                            "fitness": fitness})
                position += 1
            if new:
                conn.execute(insert(IMPORTED), new)
        return len(new)

    def imported_parents(self, campaign_id: int) -> list[ImportedParent]:
        with self._read() as conn:
            self._require_campaign(conn, campaign_id)
            rows = conn.execute(select(IMPORTED).where(IMPORTED.c.campaign_id == campaign_id)
                                .order_by(IMPORTED.c.position)).all()
        return [ImportedParent(index=row.position, hyp=dict(row.hyp),
                               metrics={k: _float_or_nan(v) for k, v in row.metrics.items()}, fitness=row.fitness)
                for row in rows]

    # ----------------------------------------------------------------------------- artefacts
    def add_artefact(self, campaign_id: int, name: str, kind: str, path: str | Path, *,
                     trial_number: int | None = None) -> ArtefactRecord:
        """Record a file (size and sha256 computed now); a name already recorded is replaced,
        since files like hyp_evolved.yaml are rewritten after every trial."""
        name = checks.text(name, "artefact name", 200)
        kind = checks.text(kind, "artefact kind", 64)
        if trial_number is not None:
            trial_number = checks.integer(trial_number, "trial_number")
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"artefact {name!r}: no file at {file}")
        size, digest = _size_and_sha256(file)
        values = {"trial_number": trial_number, "kind": kind, "path": str(file), "size": size, "sha256": digest,
                  "created_at": _now()}
        with self._write() as conn:
            self._require_campaign(conn, campaign_id)
            artefact_id = conn.execute(update(ARTEFACTS).where(
                ARTEFACTS.c.campaign_id == campaign_id, ARTEFACTS.c.name == name).values(**values)
                .returning(ARTEFACTS.c.id)).scalar()
            if artefact_id is None:
                artefact_id = conn.execute(insert(ARTEFACTS).values(campaign_id=campaign_id, name=name, **values)
                                           .returning(ARTEFACTS.c.id)).scalar_one()
        return ArtefactRecord(id=artefact_id, campaign_id=campaign_id, name=name, **values)

    def remove_artefact(self, campaign_id: int, name: str) -> bool:
        """Forget an artefact (the file itself is the caller's); True if a row was removed."""
        with self._write() as conn:
            self._require_campaign(conn, campaign_id)
            result = conn.execute(delete(ARTEFACTS).where(ARTEFACTS.c.campaign_id == campaign_id,
                                                          ARTEFACTS.c.name == name))
            return result.rowcount > 0

    def artefacts(self, campaign_id: int) -> list[ArtefactRecord]:
        with self._read() as conn:
            self._require_campaign(conn, campaign_id)
            rows = conn.execute(select(ARTEFACTS).where(ARTEFACTS.c.campaign_id == campaign_id)
                                .order_by(ARTEFACTS.c.name)).all()
        return [ArtefactRecord(id=row.id, campaign_id=row.campaign_id, trial_number=row.trial_number, name=row.name,
                               kind=row.kind, path=row.path, size=row.size, sha256=row.sha256,
                               created_at=row.created_at) for row in rows]


# --------------------------------------------------------------------------------- row -> record
def _campaign_record(row: Row) -> CampaignRecord:
    return CampaignRecord(id=row.id, name=row.name, status=row.status, spec=json.loads(json.dumps(row.spec)),
                          run_dir=row.run_dir, job_id=row.job_id, error=row.error, created_at=row.created_at,
                          updated_at=row.updated_at, holder=row.holder, lease_expires_at=row.lease_expires_at)


def _generation_record(row: Row) -> GenerationRecord:
    return GenerationRecord(campaign_id=row.campaign_id, index=row.number, best_fitness=row.best_fitness,
                            mean_fitness=row.mean_fitness, best_trial=row.best_trial, closed_at=row.closed_at,
                            size=row.size, completed=row.completed)


def _load_trials(conn: Connection, campaign_id: int, *, number: int | None = None,
                 statuses: tuple[str, ...] | None = None, numbers: Sequence[int] | None = None) -> list[TrialRecord]:
    """Trials with their params, parents and metrics: four queries however many trials."""
    where = [TRIALS.c.campaign_id == campaign_id]
    if number is not None:
        where.append(TRIALS.c.number == number)
    if numbers is not None:
        where.append(TRIALS.c.number.in_(list(numbers)))
    if statuses is not None:
        where.append(TRIALS.c.status.in_(statuses))
    rows = conn.execute(select(TRIALS).where(*where).order_by(TRIALS.c.number)).all()
    if not rows:
        return []

    def children(table, *columns, order):
        query = (select(table.c.trial_id, *columns).join(TRIALS, table.c.trial_id == TRIALS.c.id)
                 .where(*where).order_by(table.c.trial_id, order))
        grouped = defaultdict(list)
        for child in conn.execute(query):
            grouped[child[0]].append(child[1:])
        return grouped

    hyps = children(PARAMS, PARAMS.c.name, PARAMS.c.value, order=PARAMS.c.id)  # id order = insertion order
    parents = children(PARENTS, PARENTS.c.parent_number, order=PARENTS.c.position)
    metrics = children(METRICS, METRICS.c.name, METRICS.c.value, order=METRICS.c.id)
    return [TrialRecord(
        campaign_id=row.campaign_id, number=row.number, generation=row.generation, status=row.status,
        attempt=row.attempt, hyp={name: value for name, value in hyps.get(row.id, ())},
        parents=tuple(parent for (parent,) in parents.get(row.id, ())), seed=row.seed, worker=row.worker,
        node_id=row.node_id, node_ip=row.node_ip, gpu_id=row.gpu_id, started_at=row.started_at,
        ended_at=row.ended_at, metrics={name: _float_or_nan(value) for name, value in metrics.get(row.id, ())},
        fitness=row.fitness, epochs_done=row.epochs_done, error=row.error, weights_path=row.weights_path,
        stage=row.stage, split=row.split)
        for row in rows]


def _parent_key(hyp: dict, metrics: dict, fitness: float) -> str:
    return json.dumps([hyp, metrics, fitness], sort_keys=True)


def _size_and_sha256(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
