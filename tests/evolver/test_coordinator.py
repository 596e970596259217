"""The coordinator on a real local Ray and real SQLite: campaigns complete, survive a dead worker,
sync mode waits for generations, pruning and failures are recorded, cancel stops."""

from __future__ import annotations

import csv
import sys
import threading
import time
from dataclasses import dataclass

import pytest
import yaml

from evolver import lifecycle
from evolver.campaign import CampaignSpec
from evolver.coordinator import Coordinator, CoordinatorSettings
from evolver.store import Store
from workers import SleepTrialTrainer, WorkerPool, build_trainer

ray = pytest.importorskip("ray")

FAST = CoordinatorSettings(poll_seconds=0.2, progress_seconds=0.2, control_seconds=0.3, grow_seconds=1.0,
                           progress=False)


def make_campaign(tmp_path, **fields) -> tuple[Store, int]:
    """A stored campaign; without the confirmation stage unless `confirm` is given (most tests here
    count the search's trials; tests/evolver/test_confirmation.py covers the stage)."""
    fields.setdefault("confirm", False)
    store = Store.open(Store.sqlite_url(tmp_path / "evolver.db"))
    spec = CampaignSpec(**fields)
    run_dir = tmp_path / spec.name
    return store, store.create_campaign(spec.name, spec.to_json_dict(), str(run_dir))


def run(store: Store, campaign_id: int, pool: WorkerPool | None = None, settings=FAST):
    spec = CampaignSpec.model_validate(store.campaign(campaign_id).spec)
    pool = pool or WorkerPool(build_trainer(spec.trainer), cpu_workers=spec.cpu_workers)
    try:
        return Coordinator(store, campaign_id, pool, settings).run()
    finally:
        pool.shutdown()


def test_campaign_spec_builds_each_trials_train_config():
    spec = CampaignSpec(data="/d/data.yaml", cfg="yolov5s", epochs=3, img_size=320, batch_size=8, loader_workers=2,
                        fitness_weights=(0.1, 0.2, 0.3, 0.4), freeze=[2, 0, 1], weights="/w/campaign.pt")
    config = spec.train_config(seed=42, save_dir="/run/trials/00007", weights="/run/start-weights/converted.pt")
    assert (config.data, config.cfg, config.epochs, config.img_size, config.batch_size, config.workers) == (
        "/d/data.yaml", "yolov5s", 3, 320, 8, 2)
    assert (config.seed, config.save_dir, config.weights) == (42, "/run/trials/00007", "/run/start-weights/converted.pt")
    assert config.fitness_weights == (0.1, 0.2, 0.3, 0.4) and config.freeze == (0, 1, 2) and not config.progress
    assert type(config).from_dict(config.to_dict()) == config  # what a checkpoint records reads back the same


def test_small_real_campaign_completes(local_ray, tiny_synthetic, tmp_path):
    store, cid = make_campaign(tmp_path, name="real", data=str(tiny_synthetic), epochs=1, img_size=64,
                               batch_size=16, generations=3, population=2, cpu_workers=2, keep_top_k=3)
    outcome = run(store, cid)
    assert outcome.status == "completed" and outcome.completed == 6, outcome
    trials = store.trials(cid)
    assert [t.number for t in trials] == list(range(6))
    assert all(t.status == "completed" and t.attempt == 1 and t.fitness is not None for t in trials)
    assert trials[0].hyp == CampaignSpec(data=str(tiny_synthetic)).base_hyp()  # first trial: base unchanged
    assert all(t.parents for t in trials[1:] if t.number > 1)  # later ones were bred
    generations = store.generations(cid)
    assert [g.index for g in generations] == [0, 1, 2]
    for g in generations:
        members = [t for t in trials if t.generation == g.index]
        assert g.best_fitness == max(t.fitness for t in members)
        assert g.mean_fitness == pytest.approx(sum(t.fitness for t in members) / 2)
    assert {t.worker for t in trials} == {"cpu-0", "cpu-1"}  # both workers got work
    assert all(len(store.epochs(cid, t.number)) == 1 for t in trials)  # live progress reached SQL
    run_dir = tmp_path / "real"
    with open(run_dir / "evolve.csv") as f:
        assert len(list(csv.reader(f))) == 1 + 6
    header = (run_dir / "hyp_evolved.yaml").read_text()
    best = max(trials, key=lambda t: (t.fitness, -t.number))
    assert f"trial {best.number}" in header and "(6 trials finished)" in header
    assert yaml.safe_load(header) == pytest.approx(best.hyp)
    onnx = [a for a in store.artefacts(cid) if a.kind == "onnx"]  # the winner, exported at completion
    assert len(onnx) == 1 and onnx[0].trial_number == best.number and onnx[0].size > 0
    kept = [a for a in store.artefacts(cid) if a.kind == "weights"]
    assert len(kept) == 3
    on_disk = sorted(run_dir.glob("trials/*/weights/*.pt"))
    assert sorted(a.path for a in kept) == sorted(str(p) for p in on_disk)  # the rest were deleted


def test_small_real_campaign_confirms_on_the_test_split(local_ray, tiny_synthetic, tmp_path):
    from evolver.confirmation import build_report

    store, cid = make_campaign(tmp_path, name="sure", data=str(tiny_synthetic), epochs=1, img_size=64,
                               batch_size=16, generations=2, population=2, cpu_workers=2,
                               confirm={"top_k": 1, "seeds": 2, "epochs": 2})
    outcome = run(store, cid)
    trials = store.trials(cid)
    retrainings = [t for t in trials if t.stage == "confirm"]
    assert outcome.status == "completed" and len(trials) == 4 + 4, outcome
    assert all(t.status == "completed" and t.split == "test" and t.epochs_done == 2 for t in retrainings)
    for t in retrainings:  # training validated on val every epoch; the final score is the test split's
        last_val_epoch = store.epochs(cid, t.number)[-1]
        assert t.fitness != pytest.approx(last_val_epoch.fitness, abs=1e-9) or t.fitness == 0.0
    report = build_report(CampaignSpec.model_validate(store.campaign(cid).spec), trials, campaign_ended=True)
    assert report.state == "confirmed" and report.split == "test" and len(report.candidates) == 2
    winner = report.winner
    assert "confirmation: confirmed" in (tmp_path / "sure" / "hyp_evolved.yaml").read_text()
    onnx = [a for a in store.artefacts(cid) if a.kind == "onnx"]  # the model exported is a retraining's
    assert len(onnx) == 1 and onnx[0].trial_number == min(winner.trials)


def test_sync_waits_for_each_generation_and_seed_repeats(local_ray, tmp_path):
    def campaign(folder):
        folder.mkdir()
        store, cid = make_campaign(folder, name="sync", trainer="sleep", epochs=2, generations=3, population=3,
                                   sync=True, cpu_workers=2, seed=7)
        outcome = run(store, cid)
        return store, cid, outcome

    store, cid, outcome = campaign(tmp_path / "a")
    assert outcome.completed == 9
    trials = store.trials(cid)
    for g in (1, 2):
        previous_end = max(t.ended_at for t in trials if t.generation == g - 1)
        assert min(t.started_at for t in trials if t.generation == g) >= previous_end
    store_b, cid_b, _ = campaign(tmp_path / "b")
    assert [t.hyp for t in store_b.trials(cid_b)] == [t.hyp for t in trials]


def test_dead_worker_requeues_its_trial(local_ray, tiny_synthetic, tmp_path):
    store, cid = make_campaign(tmp_path, name="kill", data=str(tiny_synthetic), epochs=2, img_size=64,
                               generations=3, population=1, cpu_workers=1, exports=[])
    pool = WorkerPool(build_trainer("yolo"), cpu_workers=1)
    killed = []

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = [t for t in store.trials(cid, statuses=("running",)) if t.number == 1]
            if running and store.epochs(cid, 1) == [] and time.time() - running[0].started_at.timestamp() > 0.5:
                ray.kill(pool.workers[0].actor, no_restart=True)
                killed.append(1)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=killer)
    thread.start()
    watcher_store = store
    outcome = run(watcher_store, cid, pool)
    thread.join()
    assert killed, "the trial never ran long enough to be killed"
    trials = store.trials(cid)
    assert outcome.completed == 3 and len(trials) == 3
    assert [t.attempt for t in trials] == [1, 2, 1]


def test_failing_trials_are_recorded_and_campaign_fails(local_ray, tiny_synthetic, tmp_path):
    store, cid = make_campaign(tmp_path, name="nan", data=str(tiny_synthetic), epochs=1, img_size=64,
                               generations=2, population=1, hyp={"lr0": 1e12, "warmup_epochs": 0.0},
                               search_space={"lr0": {"upper": 1e13}})
    outcome = run(store, cid)
    assert outcome.status == "failed" and outcome.failed == 2
    trials = store.trials(cid)
    assert all(t.status == "failed" and t.error and t.fitness is None for t in trials)
    assert store.campaign(cid).status == "failed"
    assert not (tmp_path / "nan" / "hyp_evolved.yaml").exists()


def test_median_pruning_stops_weak_trials(local_ray, tmp_path):
    store, cid = make_campaign(tmp_path, name="prune", trainer="sleep", epochs=4, generations=10, population=1,
                               cpu_workers=2, early_stopping={"rule": "median", "min_epochs": 1, "min_trials": 2})
    # Epochs of ~0.4 s: long enough for the live progress polls (every 0.2 s) to see them.
    outcome = run(store, cid, WorkerPool(SleepTrialTrainer(min_seconds=1.4, max_seconds=1.8), cpu_workers=2))
    trials = store.trials(cid)
    pruned = [t for t in trials if t.status == "pruned"]
    assert outcome.pruned == len(pruned) > 0 and outcome.completed + outcome.pruned == 10
    for t in pruned:
        assert 1 <= t.epochs_done < 4 and t.metrics  # partial metrics kept
    pruned_numbers = {t.number for t in pruned}
    assert not any(set(t.parents) & pruned_numbers for t in trials)  # pruned trials are never parents


def test_cancel_through_sql_stops_within_seconds(local_ray, tmp_path):
    store, cid = make_campaign(tmp_path, name="cancel", trainer="sleep", epochs=50, generations=10, population=1,
                               cpu_workers=2)

    def cancel_soon():
        while not store.trials(cid, statuses=("running",)):
            time.sleep(0.05)
        time.sleep(0.5)
        lifecycle.cancel(Store.open(Store.sqlite_url(tmp_path / "evolver.db")), cid)

    thread = threading.Thread(target=cancel_soon)
    thread.start()
    started = time.monotonic()
    outcome = run(store, cid, WorkerPool(SleepTrialTrainer(min_seconds=60, max_seconds=90), cpu_workers=2))
    thread.join()
    assert outcome.status == "cancelled"
    assert time.monotonic() - started < 40  # the 60-90 s trials were stopped, not waited for
    statuses = {t.status for t in store.trials(cid)}
    assert statuses <= {"cancelled", "completed"} and "cancelled" in statuses
    assert store.campaign(cid).status == "cancelled"

    # Resumed, it runs to the 10 trials it asked for: the cancelled ones again, as attempt 2.
    cancelled = [t.number for t in store.trials(cid) if t.status == "cancelled"]
    lifecycle.reopen(store, cid)
    outcome = run(store, cid, WorkerPool(SleepTrialTrainer(min_seconds=0.05, max_seconds=0.1), cpu_workers=2))
    trials = store.trials(cid)
    assert outcome.status == "completed" and outcome.completed == 10 and len(trials) == 10
    assert all(t.status == "completed" for t in trials)
    assert all(trials[n].attempt == 2 for n in cancelled)
    record = store.campaign(cid)
    assert record.status == "completed" and record.holder is None


def test_campaign_fine_tunes_a_yolov5_checkpoint_through_a_converted_copy(local_ray, tiny_synthetic, tmp_path):
    import torch

    from tests.paths import YOLOV5_FIXTURES
    from yolo.checkpoint import load_checkpoint

    yolov5_file = YOLOV5_FIXTURES / "yolov5n-coco128-best.pt"
    store, cid = make_campaign(tmp_path, name="tune", data=str(tiny_synthetic), weights=str(yolov5_file), epochs=1,
                               img_size=64, batch_size=16, generations=1, population=2, cpu_workers=1,
                               keep_top_k=2, exports=[])
    outcome = run(store, cid)
    assert outcome.status == "completed" and outcome.completed == 2, outcome
    (converted,) = (tmp_path / "tune" / "start-weights").glob("*.pt")
    assert torch.load(converted, weights_only=True)["format"] == "evolver-yolo-1"  # the workers' file: no pickle
    for artefact in (a for a in store.artefacts(cid) if a.kind == "weights"):
        trained = load_checkpoint(artefact.path)
        assert trained.train_config["weights"] == str(converted)
        assert trained.model_config["name"] == "yolov5n" and trained.model_config["nc"] == 4


def test_unreadable_start_weights_fail_the_campaign_with_the_reason(local_ray, tiny_synthetic, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    store, cid = make_campaign(tmp_path, name="bad", data=str(tiny_synthetic), weights=str(bad), epochs=1,
                               img_size=64, generations=1, population=1, cpu_workers=1)
    with pytest.raises(ValueError):
        run(store, cid)
    record = store.campaign(cid)
    assert record.status == "failed" and record.error.startswith("weights: ") and "bad.pt" in record.error
    assert store.trials(cid) == []


@pytest.mark.parametrize("searcher", ["random", "tpe", "cmaes"])
def test_other_searchers_breed_through_the_coordinator_and_repeat_with_their_seed(local_ray, tmp_path, searcher):
    pytest.importorskip("optuna")

    def campaign(folder):
        folder.mkdir()
        store, cid = make_campaign(folder, name=searcher, trainer="sleep", epochs=1, generations=3, population=2,
                                   sync=True, cpu_workers=2, seed=3, searcher=searcher)
        return store, cid, run(store, cid)

    store, cid, outcome = campaign(tmp_path / "a")
    assert outcome.status == "completed" and outcome.completed == 6
    trials = store.trials(cid)
    assert trials[0].hyp == CampaignSpec().base_hyp() and len({tuple(t.hyp.values()) for t in trials}) == 6
    assert all(t.parents == () for t in trials)  # no GA parents
    store_b, cid_b, _ = campaign(tmp_path / "b")
    assert [t.hyp for t in store_b.trials(cid_b)] == [t.hyp for t in trials]


def test_a_tpe_campaign_resumed_after_a_cancel_rebuilds_its_study_from_sql(local_ray, tmp_path):
    pytest.importorskip("optuna")
    store, cid = make_campaign(tmp_path, name="tpe-resume", trainer="sleep", epochs=1, generations=12, population=1,
                               cpu_workers=2, searcher="tpe")

    def cancel_after_four():
        while len(store.trials(cid, statuses=("completed",))) < 4:
            time.sleep(0.05)
        lifecycle.cancel(Store.open(Store.sqlite_url(tmp_path / "evolver.db")), cid)

    thread = threading.Thread(target=cancel_after_four)
    thread.start()
    run(store, cid, WorkerPool(SleepTrialTrainer(min_seconds=0.3, max_seconds=0.5), cpu_workers=2))
    thread.join()
    before = {t.number: t.hyp for t in store.trials(cid) if t.status == "completed"}
    assert store.campaign(cid).status == "cancelled" and len(before) >= 4
    lifecycle.reopen(store, cid)
    outcome = run(store, cid, WorkerPool(SleepTrialTrainer(min_seconds=0.05, max_seconds=0.1), cpu_workers=2))
    trials = store.trials(cid)
    assert outcome.status == "completed" and [t.status for t in trials] == ["completed"] * 12
    assert all(trials[n].hyp == hyp for n, hyp in before.items())  # finished trials are kept as they were
    assert len({tuple(t.hyp.values()) for t in trials}) == 12  # the rebuilt study went on, not over


@dataclass(frozen=True)
class FailingEveryThirdTrial:
    """The sleep trainer, except that trials 2, 5, 8, ... raise (the worker reports them failed)."""

    sleep: SleepTrialTrainer

    def __call__(self, spec, report, should_stop):
        if spec.number % 3 == 2:
            raise RuntimeError(f"trial {spec.number} fails on purpose")
        return self.sleep(spec, report, should_stop)


def test_a_tpe_study_learns_pruned_and_failed_trials_as_such_and_a_resume_rebuilds_it(local_ray, tmp_path):
    pytest.importorskip("optuna")
    store, cid = make_campaign(tmp_path, name="tpe-ends", trainer="sleep", epochs=4, generations=10, population=1,
                               cpu_workers=2, searcher="tpe",
                               early_stopping={"rule": "median", "min_epochs": 1, "min_trials": 2})
    pool = WorkerPool(FailingEveryThirdTrial(SleepTrialTrainer(min_seconds=1.4, max_seconds=1.8)), cpu_workers=2)
    coordinator = Coordinator(store, cid, pool, FAST)
    try:
        outcome = coordinator.run()
    finally:
        pool.shutdown()
    assert outcome.failed == 3 and outcome.pruned > 0 and outcome.completed + outcome.pruned == 7
    states = {"completed": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}
    live = coordinator.breeding.searcher
    assert live.pending == set()  # nothing left running (TPE's constant liar would count it as bad)
    assert [t.state.name for t in live.study.trials] == [states[t.status] for t in store.trials(cid)]
    resumed = Coordinator(store, cid, WorkerPool(cpu_workers=1), FAST)  # what a restart rebuilds from SQL
    resumed._load()
    assert [(t.state, t.params, t.value) for t in resumed.breeding.searcher.study.trials] == \
        [(t.state, t.params, t.value) for t in live.study.trials]


def test_a_searcher_that_cannot_be_made_fails_the_campaign_with_the_reason(local_ray, tmp_path, monkeypatch):
    store, cid = make_campaign(tmp_path, name="no-optuna", trainer="sleep", generations=2, searcher="tpe")
    monkeypatch.setitem(sys.modules, "optuna", None)  # this environment without the optional extra
    with pytest.raises(ImportError, match="needs Optuna"):
        run(store, cid)
    record = store.campaign(cid)
    assert record.status == "failed" and "pip install 'evolver[optuna]'" in record.error and record.holder is None
    assert store.trials(cid) == []
