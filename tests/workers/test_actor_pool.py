"""Workers as real Ray actors and the pool, on a local Ray with 2 fake GPUs (loopback only).

One local Ray serves the whole module; the joining-node test swaps it for a two-node loopback
cluster, so it stays last in the file.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray
from ray.exceptions import RayActorError

from workers import (
    METRIC_KEYS,
    SleepTrialTrainer,
    TrialSpec,
    WorkerPool,
    YoloTrialTrainer,
    start_worker,
)
from yolo.hyp import Hyperparameters
from yolo.train import TrainConfig

LOOPBACK = "127.0.0.1"
TINY = {"cfg": "yolov5n", "epochs": 1, "img_size": 64, "batch_size": 16, "workers": 0, "progress": False}


def tiny_spec(data: Path | str, out_dir: Path, number: int = 0, hyp: dict | None = None, **train) -> TrialSpec:
    """Trial `number` of campaign 3, seeded with its number; `train` overrides TrainConfig fields."""
    config = TrainConfig(data=str(data), save_dir=str(out_dir), **{"seed": number, **TINY, **train})
    return TrialSpec(campaign_id=3, number=number, attempt=1, hyp=hyp or Hyperparameters().to_dict(), train=config)


@pytest.fixture(scope="module")
def yolo_pool(ray_for_tests):
    """A pool of real YOLO workers, one per fake GPU."""
    ray_for_tests.local()
    pool = WorkerPool(trainer=YoloTrialTrainer())
    pool.sync()
    session = ray_for_tests.session
    yield pool
    if ray_for_tests.session == session:  # else that Ray, and these actors, are gone already
        pool.shutdown()


@pytest.fixture(scope="module")
def sleep_worker(ray_for_tests):
    """A CPU worker that trains nothing (a 3 s sleep per trial), with 2 torch threads."""
    ray_for_tests.local()
    actor = start_worker("cpu-sleep", trainer=SleepTrialTrainer(3.0, 3.0), num_cpus=0.5, torch_threads=2)
    ray.get(actor.location.remote(), timeout=60)  # started
    session = ray_for_tests.session
    yield actor
    if ray_for_tests.session == session:
        ray.kill(actor)


def test_pool_starts_one_worker_per_gpu_with_distinct_gpu_ids(yolo_pool):
    assert sorted(w.name for w in yolo_pool.workers) == ["gpu-0", "gpu-1"]
    assert all(w.gpu for w in yolo_pool.workers)
    places = ray.get([w.actor.location.remote() for w in yolo_pool.workers])
    assert sorted(p.gpu_id for p in places) == ["0", "1"]
    assert {p.node_ip for p in places} == {LOOPBACK}
    assert yolo_pool.sync() == [] and len(yolo_pool.workers) == 2  # nothing new to cover
    diagnostics = ray.get(yolo_pool.workers[0].actor.diagnostics.remote())
    assert diagnostics["torch_threads"] == 1  # 2 CPUs / 2 GPUs


def test_real_trial_on_a_fake_gpu_completes_on_cpu_with_epoch_updates(yolo_pool, tiny_synthetic, tmp_path):
    worker = yolo_pool.workers[0]
    place = ray.get(worker.actor.location.remote())
    result = ray.get(worker.actor.run.remote(tiny_spec(tiny_synthetic, tmp_path, number=5)), timeout=120)
    assert result.status == "completed", result.error
    assert (result.campaign_id, result.number, result.attempt) == (3, 5, 1)
    assert tuple(result.metrics) == METRIC_KEYS and result.fitness is not None and result.epochs_done == 1
    assert Path(result.weights_path).is_file() and result.weights_path.startswith(str(tmp_path))
    assert (result.worker, result.gpu_id, result.node_id, result.node_ip) == (
        worker.name, place.gpu_id, place.node_id, LOOPBACK)
    assert 0 < result.train_seconds < result.ended_at - result.started_at
    updates = ray.get(worker.actor.poll.remote())
    assert [(u.number, u.epoch, u.epochs) for u in updates] == [(5, 0, 1)]
    assert updates[0].fitness == pytest.approx(result.fitness)
    # Ray's fake GPU is not a CUDA device: the worker trained on the CPU instead of failing.
    assert ray.get(worker.actor.diagnostics.remote())["device"] == "cpu"


def test_second_trial_on_a_worker_decodes_no_image(yolo_pool, tiny_synthetic, tmp_path):
    worker = yolo_pool.workers[0]
    ray.get(worker.actor.run.remote(tiny_spec(tiny_synthetic, tmp_path / "a", number=6)), timeout=120)
    before = ray.get(worker.actor.diagnostics.remote())
    hyp = Hyperparameters().replace(lr0=0.005, hsv_h=0.03).to_dict()
    result = ray.get(worker.actor.run.remote(tiny_spec(tiny_synthetic, tmp_path / "b", number=7, hyp=hyp)),
                     timeout=120)
    after = ray.get(worker.actor.diagnostics.remote())
    assert result.status == "completed", result.error
    assert after["cache_misses"] == before["cache_misses"] and after["cache_hits"] > before["cache_hits"]
    assert after["trials"] == before["trials"] + 1


def test_failing_trial_comes_back_failed_and_the_worker_stays_usable(yolo_pool, tiny_synthetic, tmp_path):
    worker = yolo_pool.workers[1]
    failed = ray.get(worker.actor.run.remote(tiny_spec(tmp_path / "missing.yaml", tmp_path / "f", number=8)))
    assert failed.status == "failed" and failed.fitness is None and failed.weights_path is None
    assert failed.error.startswith("ValueError: data yaml not found") and "missing.yaml" in failed.error
    assert failed.gpu_id in ("0", "1")

    ok = ray.get(worker.actor.run.remote(tiny_spec(tiny_synthetic, tmp_path / "ok", number=9)), timeout=120)
    assert ok.status == "completed" and ok.error is None


def test_poll_and_stop_are_served_while_a_trial_runs(sleep_worker, tmp_path):
    spec = tiny_spec("unused", tmp_path, number=11, epochs=6)  # 6 epochs of 0.5 s
    pending = sleep_worker.run.remote(spec)
    polled, deadline = [], time.time() + 10
    while len(polled) < 2 and time.time() < deadline:
        polled += ray.get(sleep_worker.poll.remote(), timeout=5)
        time.sleep(0.05)
    assert [u.epoch for u in polled] == [0, 1]
    assert ray.wait([pending], timeout=0)[0] == []  # still training while we polled
    assert ray.get(sleep_worker.stop.remote(3, 99)) is False  # not the running trial
    asked = time.perf_counter()
    assert ray.get(sleep_worker.stop.remote(3, 11)) is True
    result = ray.get(pending, timeout=5)
    assert time.perf_counter() - asked < 1.0
    polled += ray.get(sleep_worker.poll.remote())
    assert result.status == "stopped" and result.epochs_done == len(polled) < 6
    assert result.metrics == {k: polled[-1].metrics[k] for k in METRIC_KEYS}
    assert result.fitness == pytest.approx(polled[-1].fitness) and result.gpu_id is None
    assert ray.get(sleep_worker.diagnostics.remote())["torch_threads"] == 2


def test_killed_worker_raises_actor_error_and_is_replaced(yolo_pool, tiny_synthetic, tmp_path):
    victim = yolo_pool.workers[1]
    pending = victim.actor.run.remote(tiny_spec(tiny_synthetic, tmp_path, number=12, epochs=50))
    deadline = time.time() + 60
    while not ray.get(victim.actor.diagnostics.remote())["busy"] and time.time() < deadline:
        time.sleep(0.1)
    ray.kill(victim.actor, no_restart=True)
    with pytest.raises(RayActorError):
        ray.get(pending, timeout=30)

    fresh = yolo_pool.replace(victim)
    assert fresh.name == "gpu-2" and fresh.gpu
    assert [w.name for w in yolo_pool.workers] == [yolo_pool.workers[0].name, "gpu-2"]
    assert ray.get(fresh.actor.location.remote(), timeout=60).gpu_id in ("0", "1")
    result = ray.get(fresh.actor.run.remote(tiny_spec(tmp_path / "missing.yaml", tmp_path / "r", number=13)),
                     timeout=60)
    assert result.status == "failed" and result.worker == "gpu-2"  # its run() works again


def test_a_joining_node_gets_a_gpu_worker(ray_for_tests):
    """Last in the module: replaces the local Ray with a loopback two-node cluster."""
    ray_for_tests.start_cluster(num_cpus=1, num_gpus=1)
    pool = WorkerPool(trainer=SleepTrialTrainer(0.05, 0.1))
    try:
        assert [w.name for w in pool.sync()] == ["gpu-0"]
        assert pool.sync() == []
        node = ray_for_tests.add_node(num_cpus=1, num_gpus=1)
        assert node.node_ip_address == LOOPBACK
        assert [w.name for w in pool.sync()] == ["gpu-1"]
        places = ray.get([w.actor.location.remote() for w in pool.workers], timeout=60)
        assert len({p.node_id for p in places}) == 2 and node.node_id in {p.node_id for p in places}
        assert {p.node_ip for p in places} == {LOOPBACK} and {p.gpu_id for p in places} == {"0"}
        results = ray.get([w.actor.run.remote(tiny_spec("unused", Path("."), number=i))
                           for i, w in enumerate(pool.workers)], timeout=60)
        assert [r.status for r in results] == ["completed", "completed"]
        assert {r.node_id for r in results} == {p.node_id for p in places}
    finally:
        pool.shutdown()
        ray_for_tests.stop()


def test_a_node_joining_mid_campaign_gets_trials(ray_for_tests, tmp_path):
    """The coordinator's periodic pool.sync() puts a worker on a node that joins while it runs."""
    import threading

    from evolver.campaign import CampaignSpec
    from evolver.coordinator import Coordinator, CoordinatorSettings
    from evolver.store import Store

    ray_for_tests.start_cluster(num_cpus=1, num_gpus=1)
    store = Store.open(Store.sqlite_url(tmp_path / "evolver.db"))
    spec = CampaignSpec(name="join", trainer="sleep", epochs=1, generations=40, population=1, confirm=False)
    cid = store.create_campaign(spec.name, spec.to_json_dict(), str(tmp_path / "join"))
    pool = WorkerPool(trainer=SleepTrialTrainer(0.4, 0.6))
    settings = CoordinatorSettings(poll_seconds=0.1, grow_seconds=0.3, progress=False)
    outcomes = []
    # Ray adds nodes from the main thread only (signal handlers), so the coordinator runs beside it.
    thread = threading.Thread(target=lambda: outcomes.append(Coordinator(store, cid, pool, settings).run()))
    thread.start()
    try:
        while len(store.trials(cid, statuses=("completed",))) < 2:
            time.sleep(0.05)
        joined = [ray_for_tests.add_node(num_cpus=1, num_gpus=1)]
        thread.join(timeout=120)
    finally:
        thread.join()
        pool.shutdown()
        ray_for_tests.stop()
    (outcome,) = outcomes
    trials = store.trials(cid)
    assert outcome.completed == 40 and len(trials) == 40, [w.name for w in pool.workers]
    assert joined and joined[0].node_id in {t.node_id for t in trials}, ([w.name for w in pool.workers], {t.worker for t in trials})
    assert {t.worker for t in trials} == {"gpu-0", "gpu-1"}
    assert {t.node_ip for t in trials} == {LOOPBACK}
