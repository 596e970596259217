"""Trainers and the worker logic in-process (no Ray): real tiny YOLO trials, the sleep trainer."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest

from workers import (
    METRIC_KEYS,
    TRAIN_LOSS_KEYS,
    EpochUpdate,
    SleepTrialTrainer,
    TrialSpec,
    TrialWorker,
    YoloTrialTrainer,
    cpu_worker_share,
)
from yolo.fitness import fitness
from yolo.hyp import Hyperparameters
from yolo.train import TrainConfig

TINY = {"cfg": "yolov5n", "epochs": 1, "img_size": 64, "batch_size": 16, "workers": 0, "progress": False}


def tiny_spec(data: Path | str, out_dir: Path, number: int = 0, hyp: dict | None = None, **train) -> TrialSpec:
    """Trial `number` of campaign 1, seeded with its number; `train` overrides TrainConfig fields."""
    config = TrainConfig(data=str(data), save_dir=str(out_dir), **{"seed": number, **TINY, **train})
    return TrialSpec(campaign_id=1, number=number, attempt=1, hyp=hyp or Hyperparameters().to_dict(), train=config)


def never() -> bool:
    return False


def test_yolo_trainer_trains_reports_and_second_trial_decodes_nothing(tiny_synthetic, tmp_path):
    trainer = YoloTrialTrainer()
    updates: list[EpochUpdate] = []
    outcome = trainer(tiny_spec(tiny_synthetic, tmp_path / "t0"), updates.append, never)

    assert not outcome.stopped and outcome.epochs_done == 1
    assert tuple(outcome.metrics) == METRIC_KEYS
    assert outcome.fitness == pytest.approx(fitness(outcome.metrics, (0.0, 0.0, 0.1, 0.9)))
    assert outcome.weights_path == str(tmp_path / "t0" / "weights" / "best.pt")
    assert Path(outcome.weights_path).is_file()
    assert 0 < outcome.train_seconds
    assert [u.epoch for u in updates] == [0] and updates[0].epochs == 1
    assert set(updates[0].metrics) == {*METRIC_KEYS, *TRAIN_LOSS_KEYS}
    assert {k: updates[0].metrics[k] for k in METRIC_KEYS} == outcome.metrics
    first = trainer.describe()
    assert first["device"] == "cpu" and first["cache_misses"] == 64 + 16 == first["cached_images"]

    hyp = Hyperparameters().replace(lr0=0.02, mosaic=0.5).to_dict()
    trainer(tiny_spec(tiny_synthetic, tmp_path / "t1", number=1, hyp=hyp), [].append, never)
    second = trainer.describe()
    assert second["cache_misses"] == first["cache_misses"]  # nothing decoded again
    assert second["cache_hits"] >= first["cache_hits"] + 64 + 16


def test_yolo_trainer_stops_between_batches_with_last_epoch_metrics(tiny_synthetic, tmp_path):
    calls = []

    def stop_in_second_epoch() -> bool:  # 64 images / batch 16 = 4 batches per epoch
        calls.append(1)
        return len(calls) > 6

    updates: list[EpochUpdate] = []
    outcome = YoloTrialTrainer()(tiny_spec(tiny_synthetic, tmp_path, epochs=3), updates.append,
                                 stop_in_second_epoch)
    assert outcome.stopped and outcome.epochs_done == 1 == len(updates)
    assert outcome.metrics == {k: updates[0].metrics[k] for k in METRIC_KEYS}
    assert outcome.fitness == pytest.approx(updates[0].fitness)
    assert Path(outcome.weights_path).is_file()


def test_trainer_copies_start_with_an_empty_cache():
    trainer = YoloTrialTrainer(device="cpu")
    trainer.dataset_cache.hits = 5
    clone = copy.deepcopy(trainer)
    assert clone.device == "cpu" and clone.dataset_cache is not trainer.dataset_cache
    assert clone.dataset_cache.hits == 0 and len(clone.dataset_cache) == 0


def test_worker_reports_a_trial_error_as_failed_and_stays_usable(tmp_path, tiny_synthetic):
    worker = TrialWorker("cpu-local", trainer=YoloTrialTrainer())
    failed = worker.run(tiny_spec(tmp_path / "nothing.yaml", tmp_path / "f"))
    assert failed.status == "failed" and failed.fitness is None and failed.epochs_done == 0
    assert failed.metrics == {} and failed.weights_path is None
    assert failed.error.startswith("ValueError: data yaml not found") and "nothing.yaml" in failed.error
    assert "Traceback (innermost" in failed.error and "yolo/data.py" in failed.error
    assert failed.worker == "cpu-local" and failed.node_ip == "127.0.0.1" and failed.gpu_id is None

    ok = worker.run(tiny_spec(tiny_synthetic, tmp_path / "ok"))
    assert ok.status == "completed" and ok.error is None and ok.epochs_done == 1
    assert [u.epoch for u in worker.poll()] == [0] and worker.poll() == []
    assert worker.diagnostics()["trials"] == 2 and not worker.diagnostics()["busy"]
    assert 0 < ok.train_seconds < ok.ended_at - ok.started_at


def test_sleep_trainer_is_deterministic_and_rewards_default_hyperparameters(tmp_path):
    trainer = SleepTrialTrainer(0.05, 0.1)
    spec = tiny_spec("unused", tmp_path, epochs=3, seed=7)
    first, second = [], []
    a = trainer(spec, first.append, never)
    b = trainer(spec, second.append, never)
    assert a.metrics == b.metrics and [u.metrics for u in first] == [u.metrics for u in second]
    assert a.epochs_done == 3 and [u.epoch for u in first] == [0, 1, 2] and a.weights_path is None
    assert 0.05 <= a.train_seconds < 0.1 + 0.05

    far = Hyperparameters().replace(lr0=0.09, momentum=0.6, box=0.19).to_dict()
    c = trainer(tiny_spec("unused", tmp_path, epochs=3, seed=7, hyp=far), [].append, never)
    assert c.fitness < a.fitness


def test_sleep_trainer_reads_seed_epochs_and_fitness_weights_from_the_train_config(tmp_path):
    updates: list[EpochUpdate] = []
    outcome = SleepTrialTrainer(0.0, 0.01)(
        tiny_spec("unused", tmp_path, epochs=2, seed=3, fitness_weights=(1.0, 0.0, 0.0, 0.0)), updates.append, never)
    assert outcome.epochs_done == 2 and [u.epochs for u in updates] == [2, 2]
    assert outcome.fitness == pytest.approx(outcome.metrics["precision"])
    same_seed = SleepTrialTrainer(0.0, 0.01)(tiny_spec("unused", tmp_path, number=9, epochs=2, seed=3), [].append, never)
    assert same_seed.metrics == outcome.metrics


def test_sleep_trainer_stops_promptly():
    trainer = SleepTrialTrainer(5.0, 5.0)
    deadline = time.perf_counter() + 0.3
    start = time.perf_counter()
    outcome = trainer(tiny_spec("unused", Path("."), epochs=10), [].append, lambda: time.perf_counter() > deadline)
    assert outcome.stopped and outcome.epochs_done == 0 and outcome.metrics == {} and outcome.fitness is None
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(("cpus", "workers", "expected"), [
    (2, 1, (2.0, 2)), (2, 2, (1.0, 1)), (2, 3, (0.6666, 1)), (16, 3, (5.0, 5)), (0, 2, (0.0, 1)),
])
def test_cpu_worker_share_gives_ray_valid_quantities(cpus, workers, expected):
    share, threads = cpu_worker_share(cpus, workers)
    assert share == pytest.approx(expected[0]) and threads == expected[1]


def test_cpu_worker_share_rejects_no_workers():
    with pytest.raises(ValueError, match="cpu_workers"):
        cpu_worker_share(4, 0)


def test_trial_freeze_leaves_those_layers_untrained(tiny_synthetic, tmp_path):
    """Two trials with the same seed but different lr0, layer 0 frozen: its weights stay the same
    initial values in both, while a trained layer differs."""
    import torch

    from yolo.checkpoint import load_checkpoint

    trainer = YoloTrialTrainer()
    states = []
    for lr0, name in ((0.01, "a"), (0.02, "b")):
        hyp = {**Hyperparameters().to_dict(), "lr0": lr0, "warmup_epochs": 0.0}
        outcome = trainer(tiny_spec(tiny_synthetic, tmp_path / name, seed=5, hyp=hyp, freeze=(0,)),
                          lambda update: None, lambda: False)
        states.append(load_checkpoint(outcome.weights_path).model_state)
    a, b = states
    frozen = [k for k in a if k.startswith("model.0.") and k.endswith("weight")]
    trained = [k for k in a if k.startswith("model.1.") and k.endswith("conv.weight")]
    assert frozen and all(torch.equal(a[k], b[k]) for k in frozen)
    assert trained and not all(torch.equal(a[k], b[k]) for k in trained)
