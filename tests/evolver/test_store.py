"""The SQL store, run against SQLite and PostgreSQL alike (same tests, parametrised backend)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from evolver.store import (
    CampaignNotFound,
    InvalidInput,
    Placement,
    Store,
    TrialAlreadyFinished,
    TrialNotFound,
)
from evolver.store.models import Base, Trial, TrialEpoch, TrialMetric, TrialParam

HYP = {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937}
METRICS = {"precision": 0.5, "recall": 0.4, "map50": 0.3, "map": 0.2,
           "val_box_loss": 0.05, "val_obj_loss": 0.04, "val_cls_loss": 0.01}
TABLES = {"campaigns", "generations", "trials", "trial_params", "trial_parents", "trial_metrics", "trial_epochs",
          "imported_parents", "artefacts"}


@pytest.fixture
def campaign(store, tmp_path) -> int:
    return store.create_campaign("demo", {"population": 2, "epochs": 1}, str(tmp_path))


def _count(store: Store, model) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()


def _run_trial(store, campaign, number, *, status="completed", fitness=0.5, population=2):
    store.add_trial(campaign, number, number // population, HYP, [], seed=number)
    store.start_trial(campaign, number, 1, Placement("w0", "node", "127.0.0.1", "0"))
    assert store.finish_trial(campaign, number, 1, status, metrics=METRICS, fitness=fitness, epochs_done=1)


# ------------------------------------------------------------------------------------ schema
def test_migrated_schema_matches_models(store):
    with store.engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert TABLES <= names
    assert diff == []
    assert version == "0003"


def test_reopen_keeps_data_and_migrates_idempotently(store_url):
    with Store.open(store_url) as first:
        campaign = first.create_campaign("keep", {}, "/runs/keep")
    with Store.open(store_url) as second:
        assert [c.id for c in second.campaigns()] == [campaign]


def test_sqlite_uses_wal_and_foreign_keys(tmp_path):
    with Store.open(Store.sqlite_url(tmp_path / "evolver.db")) as store, store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    assert (tmp_path / "evolver.db").is_file()


def test_sqlite_writers_take_the_write_lock_at_begin(tmp_path):
    """A batch holds SQLite's write lock from its first call, even a read (BEGIN IMMEDIATE), so it
    never finds at its first write that another process wrote first; plain reads do not take it."""
    path = tmp_path / "evolver.db"
    with Store.open(Store.sqlite_url(path)) as store:
        campaign = store.create_campaign("lock", {}, str(tmp_path))
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            with store.engine.connect() as reader:
                reader.execute(text("SELECT 1 FROM campaigns")).all()
                other.execute("BEGIN IMMEDIATE")  # a reader's transaction leaves the lock free
                other.execute("ROLLBACK")
            with store.batch():
                store.campaign(campaign)
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


def test_unsupported_database_is_refused_by_name():
    with pytest.raises(ValueError, match="'mysql'"):
        Store.open("mysql://user@localhost/evolver")


def test_threads_and_a_second_store_share_the_database(store_url):
    """The coordinator writes from several threads while another process (the API) reads."""
    with Store.open(store_url) as writer, Store.open(store_url) as reader:
        campaign = writer.create_campaign("threads", {}, "/runs/t")

        def run(number: int) -> str:
            writer.add_trial(campaign, number, 0, HYP, [], number)
            writer.start_trial(campaign, number, 1, Placement("w", "n", "ip", None))
            writer.finish_trial(campaign, number, 1, "completed", metrics=METRICS, fitness=0.1, epochs_done=1)
            return reader.trial(campaign, number).status

        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(run, range(24))) == {"completed"}
        assert len(reader.trials(campaign, statuses=["completed"])) == 24


def test_status_check_constraint_is_enforced_by_the_database(store, campaign):
    store.add_trial(campaign, 0, 0, HYP, [], 0)
    with pytest.raises(Exception, match="(?i)check"), store.engine.begin() as conn:
        conn.execute(Trial.__table__.update().values(status="exploded"))
    assert store.trial(campaign, 0).status == "pending"


# ------------------------------------------------------------------------------------ campaigns
def test_campaign_lifecycle(store, tmp_path):
    spec = {"population": 4, "space": {"lr0": {"gain": 0.5}}}
    campaign_id = store.create_campaign("c1", spec, str(tmp_path))
    record = store.campaign(campaign_id)
    assert (record.name, record.status, record.spec, record.run_dir) == ("c1", "queued", spec, str(tmp_path))
    assert record.created_at.tzinfo is not None and record.created_at.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - record.created_at).total_seconds()) < 60

    spec["population"] = 99  # the caller's dict is not the stored one
    record.spec["population"] = 98  # nor is the returned one
    assert store.campaign(campaign_id).spec["population"] == 4

    assert store.transition_campaign(campaign_id, from_statuses=("queued",), status="running")
    assert store.transition_campaign(campaign_id, from_statuses=None, job_id="raysubmit_123")
    assert not store.transition_campaign(campaign_id, from_statuses=("queued",), status="completed")  # not queued
    assert store.transition_campaign(campaign_id, from_statuses=("running",), status="failed", error="boom")
    record = store.campaign(campaign_id)
    assert (record.status, record.job_id, record.error) == ("failed", "raysubmit_123", "boom")
    assert record.updated_at >= record.created_at
    assert [c.id for c in store.campaigns()] == [campaign_id]


def test_campaign_bad_input_names_it_and_writes_nothing(store, campaign):
    with pytest.raises(ValueError, match="'paused'"):
        store.transition_campaign(campaign, from_statuses=None, status="paused")
    assert store.campaign(campaign).status == "queued"
    with pytest.raises(CampaignNotFound, match="campaign 999"):
        store.transition_campaign(999, from_statuses=None, status="running")
    with pytest.raises(CampaignNotFound):
        store.campaign(999)
    with pytest.raises(ValueError, match="spec"):
        store.create_campaign("nan", {"x": float("nan")}, "/r")
    assert len(store.campaigns()) == 1


# ------------------------------------------------------------------------------------ trials
def test_add_trial_is_pending_and_idempotent(store, campaign):
    record = store.add_trial(campaign, 0, 0, HYP, [-1, 3], seed=7)
    assert (record.status, record.attempt, record.parents, record.seed, record.hyp) == ("pending", 1, (-1, 3), 7, HYP)
    assert store.trial(campaign, 0) == record
    assert list(store.trial(campaign, 0).hyp) == list(HYP)  # order kept

    again = store.add_trial(campaign, 0, 0, {"lr0": 0.5}, [], seed=8)
    assert again == record
    assert _count(store, TrialParam) == len(HYP) and _count(store, Trial) == 1


def test_add_trial_bad_input_writes_nothing(store, campaign):
    with pytest.raises(CampaignNotFound, match="campaign 42"):
        store.add_trial(42, 0, 0, HYP, [], 0)
    with pytest.raises(ValueError, match="lr0"):
        store.add_trial(campaign, 0, 0, {"lr0": float("nan")}, [], 0)
    with pytest.raises(ValueError, match="trial number"):
        store.add_trial(campaign, -1, 0, HYP, [], 0)
    assert _count(store, Trial) == 0 and _count(store, TrialParam) == 0


def test_trial_lifecycle_records_result(store, campaign):
    store.add_trial(campaign, 0, 0, HYP, [], 0)
    assert store.start_trial(campaign, 0, 1, Placement("w1", "n1", "10.0.0.1", "1"))
    running = store.trial(campaign, 0)
    assert (running.status, running.worker, running.node_id, running.node_ip, running.gpu_id) == \
        ("running", "w1", "n1", "10.0.0.1", "1")
    assert running.started_at.tzinfo is not None and not running.finished

    assert store.finish_trial(campaign, 0, 1, "completed", metrics=METRICS, fitness=0.21, epochs_done=3,
                              weights_path="/w/best.pt")
    done = store.trial(campaign, 0)
    assert (done.status, done.metrics, done.fitness, done.epochs_done, done.weights_path) == \
        ("completed", METRICS, 0.21, 3, "/w/best.pt")
    assert done.finished and done.ended_at >= done.started_at


def test_worker_times_can_be_given(store, campaign):
    store.add_trial(campaign, 0, 0, HYP, [], 0)
    store.start_trial(campaign, 0, 1, Placement("w", "n", "ip", None), started_at=1_700_000_000.0)
    store.finish_trial(campaign, 0, 1, "completed", metrics={}, fitness=None, epochs_done=0,
                       ended_at=datetime(2024, 1, 1, tzinfo=UTC))
    record = store.trial(campaign, 0)
    assert record.started_at == datetime.fromtimestamp(1_700_000_000.0, UTC)
    assert record.ended_at == datetime(2024, 1, 1, tzinfo=UTC)


def test_finished_trials_are_never_modified(store, campaign):
    store.add_trial(campaign, 0, 0, HYP, [], 0)
    store.start_trial(campaign, 0, 1, Placement("w", "n", "ip", None))
    assert store.record_epoch(campaign, 0, 1, 0, {"map": 0.1}, 0.1)
    assert store.finish_trial(campaign, 0, 1, "failed", metrics={}, fitness=None, epochs_done=1, error="NaN loss")
    before = store.trial(campaign, 0)
    metric_rows = _count(store, TrialMetric)

    assert not store.finish_trial(campaign, 0, 1, "completed", metrics=METRICS, fitness=0.9, epochs_done=9)
    assert not store.start_trial(campaign, 0, 1, Placement("x", "y", "z", "3"))
    assert not store.record_epoch(campaign, 0, 1, 1, {"map": 0.2}, 0.2)
    with pytest.raises(TrialAlreadyFinished, match="already failed"):
        store.requeue_trial(campaign, 0)

    assert store.trial(campaign, 0) == before
    assert before.error == "NaN loss"
    assert _count(store, TrialMetric) == metric_rows
    assert [e.epoch for e in store.epochs(campaign, 0)] == [0]


def test_same_result_twice_changes_nothing(store, campaign):
    store.add_trial(campaign, 0, 0, HYP, [], 0)
    store.start_trial(campaign, 0, 1, Placement("w", "n", "ip", None))
    assert store.record_epoch(campaign, 0, 1, 0, {"map": 0.1}, 0.1)
    assert not store.record_epoch(campaign, 0, 1, 0, {"map": 0.7}, 0.7)
    assert _count(store, TrialEpoch) == 1
    assert store.epochs(campaign, 0)[0].metrics == {"map": 0.1}

    assert store.finish_trial(campaign, 0, 1, "completed", metrics=METRICS, fitness=0.3, epochs_done=1)
    first = store.trial(campaign, 0)
    assert not store.finish_trial(campaign, 0, 1, "completed", metrics=METRICS, fitness=0.3, epochs_done=1)
    assert store.trial(campaign, 0) == first
    assert _count(store, TrialMetric) == len(METRICS)


def test_finish_bad_input_names_it_and_writes_nothing(store, campaign):
    store.add_trial(campaign, 0, 0, HYP, [], 0)
    store.start_trial(campaign, 0, 1, Placement("w", "n", "ip", None))
    before = store.trial(campaign, 0)
    with pytest.raises(ValueError, match="'done'"):
        store.finish_trial(campaign, 0, 1, "done", metrics=METRICS, fitness=0.1, epochs_done=1)
    with pytest.raises(ValueError, match="'running'"):
        store.finish_trial(campaign, 0, 1, "running", metrics=METRICS, fitness=0.1, epochs_done=1)
    with pytest.raises(ValueError, match="map"):
        store.finish_trial(campaign, 0, 1, "completed", metrics={"map": "high"}, fitness=0.1, epochs_done=1)
    with pytest.raises(TrialNotFound, match="trial 5"):
        store.finish_trial(campaign, 5, 1, "completed", metrics=METRICS, fitness=0.1, epochs_done=1)
    with pytest.raises(CampaignNotFound):
        store.finish_trial(77, 0, 1, "completed", metrics=METRICS, fitness=0.1, epochs_done=1)
    assert store.trial(campaign, 0) == before
    assert _count(store, TrialMetric) == 0


def test_non_finite_results_are_stored_as_missing(store, campaign):
    store.add_trial(campaign, 0, 0, HYP, [], 0)
    store.start_trial(campaign, 0, 1, Placement("w", "n", "ip", None))
    store.record_epoch(campaign, 0, 1, 0, {"map": float("nan"), "val_box_loss": float("inf")}, float("nan"))
    store.finish_trial(campaign, 0, 1, "failed", metrics={"map": float("nan")}, fitness=float("nan"), epochs_done=1)
    record = store.trial(campaign, 0)
    assert math.isnan(record.metrics["map"]) and record.fitness is None
    epoch = store.epochs(campaign, 0)[0]
    assert math.isnan(epoch.metrics["map"]) and math.isnan(epoch.metrics["val_box_loss"]) and epoch.fitness is None


def test_requeue_starts_a_new_attempt_and_fences_the_old_one(store, campaign):
    store.add_trial(campaign, 0, 0, HYP, [], 0)
    store.start_trial(campaign, 0, 1, Placement("w", "n", "ip", "0"))
    store.record_epoch(campaign, 0, 1, 0, {"map": 0.1}, 0.1)
    assert store.requeue_trial(campaign, 0) == 2
    record = store.trial(campaign, 0)
    assert (record.status, record.attempt, record.worker, record.started_at) == ("pending", 2, None, None)
    assert store.epochs(campaign, 0) == []  # epochs of the current attempt only

    # The dead attempt's late messages are ignored.
    assert not store.start_trial(campaign, 0, 1, Placement("w", "n", "ip", "0"))
    assert not store.record_epoch(campaign, 0, 1, 1, {"map": 0.2}, 0.2)
    assert not store.finish_trial(campaign, 0, 1, "completed", metrics=METRICS, fitness=0.9, epochs_done=2)
    assert store.trial(campaign, 0) == record

    assert store.start_trial(campaign, 0, 2, Placement("w2", "n2", "ip2", "1"))
    assert store.record_epoch(campaign, 0, 2, 0, {"map": 0.3}, 0.3)
    assert store.finish_trial(campaign, 0, 2, "completed", metrics=METRICS, fitness=0.3, epochs_done=1)
    assert [(e.attempt, e.fitness) for e in store.epochs(campaign, 0)] == [(2, 0.3)]
    with pytest.raises(TrialNotFound):
        store.requeue_trial(campaign, 9)


def test_a_cancelled_attempt_with_partial_metrics_runs_again_clean(store, campaign):
    store.add_trial(campaign, 0, 0, HYP, [], 0)
    store.start_trial(campaign, 0, 1, Placement("w", "n", "ip", None))
    assert store.finish_trial(campaign, 0, 1, "cancelled", metrics=METRICS, fitness=0.2, epochs_done=1)
    assert store.requeue_trial(campaign, 0) == 2
    record = store.trial(campaign, 0)
    assert (record.metrics, record.fitness, record.epochs_done, record.weights_path) == ({}, None, 0, None)
    store.start_trial(campaign, 0, 2, Placement("w", "n", "ip", None))
    assert store.finish_trial(campaign, 0, 2, "completed", metrics=METRICS, fitness=0.4, epochs_done=2)
    assert store.trial(campaign, 0).fitness == 0.4 and store.trial(campaign, 0).metrics == pytest.approx(METRICS)


def test_trials_listing_and_status_filter(store, campaign):
    for number in (2, 0, 1):
        store.add_trial(campaign, number, number // 2, {**HYP, "lr0": 0.01 * (number + 1)}, [number - 1], number)
    store.start_trial(campaign, 1, 1, Placement("w", "n", "ip", None))
    store.finish_trial(campaign, 1, 1, "pruned", metrics={"map": 0.1}, fitness=0.1, epochs_done=1)
    everything = store.trials(campaign)
    assert [t.number for t in everything] == [0, 1, 2]
    assert [t.hyp["lr0"] for t in everything] == [0.01, 0.02, 0.03]
    assert [t.parents for t in everything] == [(-1,), (0,), (1,)]
    assert [t.number for t in store.trials(campaign, statuses=["pending"])] == [0, 2]
    assert [t.metrics for t in store.trials(campaign, statuses={"pruned"})] == [{"map": 0.1}]
    with pytest.raises(ValueError, match="'finished'"):
        store.trials(campaign, statuses=["finished"])
    with pytest.raises(CampaignNotFound):
        store.trials(404)


def test_records_are_frozen_copies(store, campaign):
    record = store.add_trial(campaign, 0, 0, HYP, [], 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "completed"
    record.hyp["lr0"] = 1.0
    assert store.trial(campaign, 0).hyp["lr0"] == HYP["lr0"]


# ------------------------------------------------------------------------------------ generations
def test_close_generation_waits_for_every_trial(store, campaign):
    assert store.close_generation(campaign, 0, 2) is None  # no trials yet
    _run_trial(store, campaign, 0, fitness=0.4)
    assert store.close_generation(campaign, 0, 2) is None  # trial 1 missing
    store.add_trial(campaign, 1, 0, HYP, [], 1)
    assert store.close_generation(campaign, 0, 2) is None  # trial 1 pending
    store.start_trial(campaign, 1, 1, Placement("w", "n", "ip", None))
    store.finish_trial(campaign, 1, 1, "completed", metrics=METRICS, fitness=0.6, epochs_done=1)

    closed = store.close_generation(campaign, 0, 2)
    assert (closed.index, closed.best_fitness, closed.best_trial, closed.size, closed.completed) == (0, 0.6, 1, 2, 2)
    assert closed.mean_fitness == pytest.approx(0.5)
    assert closed.closed_at.tzinfo is not None
    assert store.close_generation(campaign, 0, 2) == closed  # idempotent, same row
    assert store.generations(campaign) == [closed]
    with pytest.raises(CampaignNotFound):
        store.close_generation(31, 0, 2)


def test_close_generation_counts_failed_pruned_cancelled_as_finished(store, campaign):
    _run_trial(store, campaign, 0, population=4, fitness=0.2)
    _run_trial(store, campaign, 1, population=4, status="failed", fitness=None)
    _run_trial(store, campaign, 2, population=4, status="pruned", fitness=0.9)  # pruned: not in best / mean
    store.add_trial(campaign, 3, 0, HYP, [], 3)
    store.finish_trial(campaign, 3, 1, "cancelled", metrics={}, fitness=None, epochs_done=0)
    closed = store.close_generation(campaign, 0, 4)
    assert (closed.best_fitness, closed.mean_fitness, closed.best_trial, closed.completed) == (0.2, 0.2, 0, 1)


def test_generation_without_completed_trials_still_closes(store, campaign):
    _run_trial(store, campaign, 2, status="failed", fitness=None)
    _run_trial(store, campaign, 3, status="failed", fitness=None)
    closed = store.close_generation(campaign, 1, 2)
    assert closed is not None
    assert (closed.index, closed.best_fitness, closed.mean_fitness, closed.best_trial) == (1, None, None, None)
    assert [g.index for g in store.generations(campaign)] == [1]


# ------------------------------------------------------------------------------------ imports, artefacts
def test_imported_parents_keep_order_and_skip_duplicates(store, campaign):
    rows = [({"lr0": 0.01}, {"map": 0.3}, 0.3), ({"lr0": 0.02}, {"map": 0.4}, 0.4)]
    assert store.add_imported_parents(campaign, rows) == 2
    assert store.add_imported_parents(campaign, rows + [({"lr0": 0.03}, {"map": 0.1}, 0.1)]) == 1
    parents = store.imported_parents(campaign)
    assert [(p.index, p.hyp["lr0"], p.fitness) for p in parents] == [(0, 0.01, 0.3), (1, 0.02, 0.4), (2, 0.03, 0.1)]
    with pytest.raises(ValueError, match="row 1 fitness"):
        store.add_imported_parents(campaign, [rows[0], ({"lr0": 0.5}, {}, float("nan"))])
    assert len(store.imported_parents(campaign)) == 3


def test_artefacts_are_hashed_replaced_and_removed(store, campaign, tmp_path):
    path = tmp_path / "hyp_evolved.yaml"
    path.write_bytes(b"lr0: 0.01\n")
    first = store.add_artefact(campaign, "hyp_evolved.yaml", "hyp", path)
    assert (first.size, first.sha256) == (10, hashlib.sha256(b"lr0: 0.01\n").hexdigest())

    path.write_bytes(b"lr0: 0.02\nlrf: 0.1\n")
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"\0" * 100)
    second = store.add_artefact(campaign, "hyp_evolved.yaml", "hyp", path, trial_number=4)
    store.add_artefact(campaign, "weights/best.pt", "weights", weights, trial_number=4)
    listed = store.artefacts(campaign)
    assert [a.name for a in listed] == ["hyp_evolved.yaml", "weights/best.pt"]
    assert listed[0] == second and second.id == first.id and second.size == 19 and second.trial_number == 4

    assert store.remove_artefact(campaign, "weights/best.pt")
    assert not store.remove_artefact(campaign, "weights/best.pt")
    assert [a.name for a in store.artefacts(campaign)] == ["hyp_evolved.yaml"]
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        store.add_artefact(campaign, "model.onnx", "onnx", tmp_path / "missing.onnx")


def test_trials_page_sorts_and_pages_in_sql(store, campaign):
    fitnesses = [0.3, None, 0.9, 0.3, 0.1, 0.7]
    for number, fitness in enumerate(fitnesses):
        if fitness is None:
            _run_trial(store, campaign, number, status="failed", fitness=None)
        else:
            _run_trial(store, campaign, number, fitness=fitness)
    store.add_trial(campaign, 6, 3, HYP, [], seed=6)  # pending, no fitness
    everything = store.trials(campaign)
    python_order = sorted(everything, key=lambda t: (t.fitness is None, -(t.fitness or 0.0), t.number))
    total, page = store.trials_page(campaign, sort="-fitness", limit=3, offset=1)
    assert total == 7 and page == python_order[1:4]
    total, page = store.trials_page(campaign, sort="fitness", limit=10)
    assert [t.number for t in page] == [4, 0, 3, 5, 2, 1, 6]
    total, page = store.trials_page(campaign, statuses=["completed"], sort="-number", limit=2)
    assert total == 5 and [t.number for t in page] == [5, 4]
    assert store.trials_page(campaign, offset=50) == (7, [])
    with pytest.raises(ValueError, match="sort"):
        store.trials_page(campaign, sort="hyp")


def test_add_running_trial_and_finish_with_epochs_in_one_transaction(store, campaign):
    placed = Placement(worker="gpu-1", node_id="n1", node_ip="127.0.0.1", gpu_id="1")
    record = store.add_trial(campaign, 0, 0, HYP, [], seed=3, running_on=placed)
    assert record.status == "running" and record.worker == "gpu-1" and record.started_at is not None
    assert store.trial(campaign, 0) == record
    epochs = [(0, METRICS, 0.25), (1, METRICS, 0.5)]
    store.record_epoch(campaign, 0, 1, 0, METRICS, 0.25)  # the first one arrived live already
    assert store.finish_trial(campaign, 0, 1, "completed", metrics=METRICS, fitness=0.5, epochs_done=2, epochs=epochs)
    assert [(e.epoch, e.fitness) for e in store.epochs(campaign, 0)] == [(0, 0.25), (1, 0.5)]
    # the same result again: no change, and no epoch slips in through it
    assert not store.finish_trial(campaign, 0, 1, "completed", metrics=METRICS, fitness=0.9, epochs_done=3,
                                  epochs=[(2, METRICS, 0.9)])
    assert len(store.epochs(campaign, 0)) == 2 and store.trial(campaign, 0).fitness == 0.5


def test_placement_is_checked_when_made_and_the_store_takes_nothing_else(store, campaign):
    with pytest.raises(InvalidInput, match="worker"):
        Placement(worker="", node_id="n", node_ip="127.0.0.1", gpu_id=None)
    with pytest.raises(InvalidInput, match="node_ip"):
        Placement(worker="w", node_id="n", node_ip="1" * 65, gpu_id=None)
    with pytest.raises(InvalidInput, match="gpu_id"):
        Placement(worker="w", node_id="n", node_ip="127.0.0.1", gpu_id=0)
    placed = {"worker": "w", "node_id": "n", "node_ip": "127.0.0.1", "gpu_id": None}
    with pytest.raises(InvalidInput, match="Placement"):
        store.add_trial(campaign, 0, 0, HYP, [], seed=1, running_on=placed)
    store.add_trial(campaign, 0, 0, HYP, [], seed=1)
    with pytest.raises(InvalidInput, match="Placement"):
        store.start_trial(campaign, 0, 1, placed)
    assert store.trial(campaign, 0).status == "pending"


def test_batch_commits_its_calls_together_and_reads_see_them(store, campaign):
    placed = Placement(worker="gpu-0", node_id="n0", node_ip="127.0.0.1", gpu_id="0")
    store.add_trial(campaign, 0, 0, HYP, [], seed=1, running_on=placed)
    with store.batch():
        assert store.finish_trial(campaign, 0, 1, "completed", metrics=METRICS, fitness=0.4, epochs_done=1,
                                  epochs=[(0, METRICS, 0.4)])
        store.add_trial(campaign, 1, 0, HYP, [0], seed=2, running_on=placed)
        assert store.trial(campaign, 0).status == "completed"  # the block reads its own writes
        assert store.close_generation(campaign, 0, 2) is None  # trial 1 still running
        with Store(store.engine) as outsider:  # another connection sees nothing before the commit
            assert outsider.trial(campaign, 0).status == "running"
            assert outsider.trials(campaign, ["running"])[0].number == 0
    assert store.trial(campaign, 0).fitness == 0.4
    assert store.trial(campaign, 1).status == "running" and store.trial(campaign, 1).parents == (0,)


def test_batch_that_raises_writes_nothing(store, campaign):
    store.add_trial(campaign, 0, 0, HYP, [], seed=1)
    with pytest.raises(TrialNotFound), store.batch():
        store.start_trial(campaign, 0, 1, Placement("gpu-0", "n", "127.0.0.1", "0"))
        store.add_trial(campaign, 1, 0, HYP, [0], seed=2)
        store.start_trial(campaign, 7, 1, Placement("gpu-0", "n", "127.0.0.1", "0"))
    assert [t.number for t in store.trials(campaign)] == [0]
    assert store.trial(campaign, 0).status == "pending"
    with store.batch():  # the store is usable again, and an empty block writes nothing
        pass
    with pytest.raises(RuntimeError, match="nest"), store.batch(), store.batch():
        pass


def test_add_trial_for_a_missing_campaign_names_it_inside_a_batch_too(store, campaign):
    with pytest.raises(CampaignNotFound):
        store.add_trial(campaign + 99, 0, 0, HYP, [], seed=1)
    with pytest.raises(CampaignNotFound), store.batch():
        store.add_trial(campaign, 0, 0, HYP, [], seed=1)
        store.add_trial(campaign + 99, 0, 0, HYP, [], seed=1)
    assert store.trials(campaign) == []


def test_values_written_read_back_exactly(store, campaign):
    """What the per-trial calls write (microsecond datetimes, JSON epochs, NULLs, NaN, extreme
    floats, 64-bit seeds) reads back exactly on both backends."""
    started = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    store.add_trial(campaign, 0, 0, HYP, [], seed=2**63 - 1)
    store.start_trial(campaign, 0, 1, Placement("w", "n", "::1", None), started_at=started)
    odd = {**METRICS, "precision": float("nan"), "recall": 1e-300}
    store.finish_trial(campaign, 0, 1, "completed", metrics=odd, fitness=0.123456789012345, epochs_done=1,
                       epochs=[(0, odd, None)], ended_at=started.timestamp() + 1.5)
    trial = store.trial(campaign, 0)
    assert trial.started_at == started and trial.gpu_id is None and trial.seed == 2**63 - 1
    assert (trial.ended_at - started).total_seconds() == pytest.approx(1.5)
    assert trial.fitness == 0.123456789012345 and trial.metrics["recall"] == 1e-300
    assert math.isnan(trial.metrics["precision"])
    (epoch,) = store.epochs(campaign, 0)
    assert epoch.fitness is None and math.isnan(epoch.metrics["precision"]) and epoch.metrics["map"] == 0.2
