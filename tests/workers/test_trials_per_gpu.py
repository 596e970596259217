"""Several trials per GPU (`trials_per_gpu`), on a local Ray with 2 fake GPUs (loopback only).

Ray hands fractional GPUs out as it hands out whole ones: CUDA_VISIBLE_DEVICES names the one GPU a
worker shares. CUDA sees no device here, so the trials sleep (or run out of memory on purpose);
the pool, Ray, the coordinator, the store and the CLI are the real ones. The joining-node test
swaps the local Ray for a two-node loopback cluster, so it stays last in the file.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import ray
import torch
import yaml

from evolver import lifecycle
from evolver.campaign import CampaignSpec
from evolver.cli import main
from evolver.coordinator import Coordinator, CoordinatorSettings
from evolver.store import Store
from workers import GPU_MEMORY_KEYS, METRIC_KEYS, SleepTrialTrainer, TrialOutcome, TrialSpec, WorkerPool, gpu_share
from yolo.hyp import Hyperparameters
from yolo.train import TrainConfig

FAST = CoordinatorSettings(poll_seconds=0.1, progress_seconds=0.2, control_seconds=0.3, grow_seconds=1.0,
                           progress=False)


@dataclass(frozen=True)
class RunsOutOfGpuMemory:
    """Tests only: sleeps like the dry-run trainer, except that the trials numbered in `numbers` fail
    as a training that runs out of GPU memory fails (CUDA's allocator raising torch's error)."""

    numbers: tuple[int, ...]
    sleep: SleepTrialTrainer = field(default_factory=lambda: SleepTrialTrainer(0.8, 1.0))

    def __call__(self, spec: TrialSpec, report, should_stop) -> TrialOutcome:
        if spec.number in self.numbers:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
                                              "capacity of 79.19 GiB of which 1.06 GiB is free.")
        return self.sleep(spec, report, should_stop)


def sleep_spec(number: int, out_dir: Path, epochs: int = 2) -> TrialSpec:
    config = TrainConfig(data="unused", save_dir=str(out_dir), seed=number, epochs=epochs, progress=False)
    return TrialSpec(campaign_id=7, number=number, attempt=1, hyp=Hyperparameters().to_dict(), train=config)


def store_campaign(tmp_path: Path, **fields) -> tuple[Store, int]:
    store = Store.open(Store.sqlite_url(tmp_path / "evolver.db"))
    spec = CampaignSpec(trainer="sleep", confirm=False, **fields)
    return store, store.create_campaign(spec.name, spec.to_json_dict(), str(tmp_path / spec.name))


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals (start, end) open at one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


def trial_times(trials) -> list[tuple[float, float]]:
    return [(t.started_at.timestamp(), t.ended_at.timestamp()) for t in trials]


@pytest.fixture
def fake_gpus(ray_for_tests):
    """The shared local Ray: 2 CPUs, 2 fake GPUs ("0" and "1")."""
    ray_for_tests.local()
    assert ray.cluster_resources().get("GPU") == 2


def test_gpu_share_fits_n_workers_on_one_gpu():
    assert gpu_share(1) == 1.0 and gpu_share(2) == 0.5 and gpu_share(4) == 0.25
    for n in (3, 7, 64):
        assert n * gpu_share(n) <= 1.0 and gpu_share(n) > 1 / n - 1e-4
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="trials_per_gpu must be an integer >= 1"):
            gpu_share(bad)


def test_two_fake_gpus_times_two_run_four_trials_at_once_two_per_device(fake_gpus, tmp_path):
    pool = WorkerPool(SleepTrialTrainer(1.5, 1.5), trials_per_gpu=2)
    try:
        started = pool.sync()
        assert [w.name for w in started] == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"] and all(w.gpu for w in started)
        assert pool.sync() == []  # both GPUs are covered twice: nothing more to start
        places = ray.get([w.actor.location.remote() for w in pool.workers], timeout=60)
        assert Counter(p.gpu_id for p in places) == {"0": 2, "1": 2}  # each pair shares one device id
        for worker, place in zip(pool.workers, places):
            diagnostics = ray.get(worker.actor.diagnostics.remote())
            # Each trial still sees exactly one device: the one its worker shares.
            assert diagnostics["cuda_visible_devices"] == place.gpu_id, worker.name
            assert diagnostics["trials_per_gpu"] == 2 and diagnostics["torch_threads"] == 1  # 2 CPUs / 4 workers
        where = [(w.name, p.gpu_id) for w, p in zip(pool.workers, places)]
        results = ray.get([w.actor.run.remote(sleep_spec(i, tmp_path)) for i, w in enumerate(pool.workers)],
                          timeout=60)
    finally:
        pool.shutdown()
    assert [r.status for r in results] == ["completed"] * 4
    assert most_at_once([(r.started_at, r.ended_at) for r in results]) == 4
    assert [(r.worker, r.gpu_id) for r in results] == where
    for result in results:  # no CUDA behind a fake GPU: no memory figure, rather than a zero never measured
        assert tuple(result.metrics) == METRIC_KEYS and not set(GPU_MEMORY_KEYS) & set(result.metrics)


def test_a_campaign_keeps_four_trials_running_on_two_gpus(fake_gpus, tmp_path):
    store, cid = store_campaign(tmp_path, name="shared", epochs=2, generations=12, population=1)
    pool = WorkerPool(SleepTrialTrainer(0.8, 1.0), trials_per_gpu=2)
    try:
        outcome = Coordinator(store, cid, pool, FAST).run()
    finally:
        pool.shutdown()
    trials = store.trials(cid)
    assert outcome.status == "completed" and outcome.completed == 12 and len(trials) == 12
    assert most_at_once(trial_times(trials)) == 4
    assert {t.worker for t in trials} == {"gpu-0", "gpu-1", "gpu-2", "gpu-3"}
    devices = {t.worker: t.gpu_id for t in trials}
    assert Counter(devices.values()) == {"0": 2, "1": 2}  # two distinct workers per device


def test_out_of_gpu_memory_fails_that_trial_alone_and_its_worker_trains_on(fake_gpus, tmp_path):
    store, cid = store_campaign(tmp_path, name="oom", epochs=2, generations=10, population=1)
    pool = WorkerPool(RunsOutOfGpuMemory(numbers=(2, 5)), trials_per_gpu=2)
    try:
        outcome = Coordinator(store, cid, pool, FAST).run()
    finally:
        pool.shutdown()
    trials = store.trials(cid)
    assert outcome.status == "completed" and (outcome.completed, outcome.failed) == (8, 2), outcome
    for t in trials:
        if t.number in (2, 5):
            first_line = t.error.splitlines()[0]
            assert first_line.startswith(f"out of GPU memory on GPU {t.gpu_id} with 2 trials per GPU: "), t.error
            assert f"`evolver resume {cid} --trials-per-gpu 1`" in first_line
            assert "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" in t.error
            assert t.status == "failed" and t.fitness is None and t.attempt == 1
            later = [u for u in trials if u.worker == t.worker and u.started_at > t.ended_at]
            assert any(u.status == "completed" for u in later), f"{t.worker} trained nothing after running out"
        else:  # the neighbours on the same GPU were not taken down: every other trial completed, first try
            assert (t.status, t.attempt) == ("completed", 1), t
    assert not {2, 5} & {p for t in trials for p in t.parents}  # never a parent


def test_a_worker_dying_on_a_shared_gpu_requeues_its_trial_only(fake_gpus, tmp_path):
    store, cid = store_campaign(tmp_path, name="death", epochs=4, generations=8, population=1)
    pool = WorkerPool(SleepTrialTrainer(2.0, 2.0), trials_per_gpu=2)
    killed: dict[str, object] = {}

    def kill_one_of_a_pair():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = [t for t in store.trials(cid, statuses=("running",)) if t.gpu_id == "0"]
            if len(running) == 2 and all(time.time() - t.started_at.timestamp() > 0.4 for t in running):
                victim, neighbour = running
                handle = next(w for w in pool.workers if w.name == victim.worker)
                ray.kill(handle.actor, no_restart=True)
                killed.update(victim=victim, neighbour=neighbour)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=kill_one_of_a_pair)
    thread.start()
    try:
        outcome = Coordinator(store, cid, pool, FAST).run()
    finally:
        thread.join()
        pool.shutdown()
    assert killed, "two trials never ran on GPU 0 at once"
    victim, neighbour = killed["victim"], killed["neighbour"]
    trials = {t.number: t for t in store.trials(cid)}
    assert outcome.status == "completed" and outcome.completed == 8 and len(trials) == 8
    assert (trials[victim.number].status, trials[victim.number].attempt) == ("completed", 2)
    # Its neighbour on the GPU kept running: done on its first attempt, by the same worker.
    after = trials[neighbour.number]
    assert (after.status, after.attempt, after.worker, after.epochs_done) == ("completed", 1, neighbour.worker, 4)
    assert sum(t.attempt for t in trials.values()) == 9  # nothing else went back to the queue
    replacement = {t.worker: t.gpu_id for t in trials.values()}.get("gpu-4")
    assert replacement == "0"  # the dead worker's half of GPU 0 went to its replacement


def test_resume_with_fewer_trials_per_gpu_through_the_cli(fake_gpus, tmp_path, capsys):
    db = Store.sqlite_url(tmp_path / "evolver.db")
    spec = tmp_path / "pairs.yaml"
    spec.write_text(yaml.safe_dump({"name": "pairs", "trainer": "sleep", "epochs": 2, "dry_run_seconds": [2.0, 2.0],
                                    "generations": 10, "population": 1, "confirm": False, "trials_per_gpu": 2}))
    store = Store.open(db)

    def cancel_once_four_run():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            campaigns = store.campaigns()
            if campaigns and len(store.trials(campaigns[0].id, statuses=("running",))) == 4:
                lifecycle.cancel(store, campaigns[0].id)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=cancel_once_four_run)
    thread.start()
    try:
        assert main(["run", str(spec), "--db", db, "--project", str(tmp_path), "--quiet"]) == 0
    finally:
        thread.join()
    (campaign,) = store.campaigns()
    first = store.trials(campaign.id)
    assert campaign.status == "cancelled" and most_at_once(trial_times(first)) == 4
    cancelled = [t.number for t in first if t.status == "cancelled"]
    assert cancelled and all(t.status in ("completed", "cancelled") for t in first)

    resumed_at = time.time()
    assert main(["resume", str(campaign.id), "--db", db, "--trials-per-gpu", "1", "--quiet"]) == 0
    assert "1 trial(s) per GPU for this run (--trials-per-gpu; the campaign's spec says 2)" in capsys.readouterr().out
    trials = store.trials(campaign.id)
    assert store.campaign(campaign.id).status == "completed" and len(trials) == 10
    assert all(t.status == "completed" for t in trials)
    assert all(trials[n].attempt == 2 for n in cancelled)  # the interrupted ones ran again
    second = [t for t in trials if t.started_at.timestamp() >= resumed_at]
    assert len(second) == 10 - sum(t.status == "completed" for t in first)
    assert most_at_once(trial_times(second)) == 2  # one per GPU now
    assert {(t.worker, t.gpu_id) for t in second} in ({("gpu-0", "0"), ("gpu-1", "1")},
                                                      {("gpu-0", "1"), ("gpu-1", "0")})
    assert CampaignSpec.model_validate(store.campaign(campaign.id).spec).trials_per_gpu == 2  # as submitted


def test_a_joining_node_gets_n_workers_on_its_gpu(ray_for_tests):
    """Last in the module: replaces the local Ray with a loopback two-node cluster."""
    ray_for_tests.start_cluster(num_cpus=1, num_gpus=1)
    pool = WorkerPool(SleepTrialTrainer(0.05, 0.1), trials_per_gpu=2)
    try:
        assert [w.name for w in pool.sync()] == ["gpu-0", "gpu-1"]
        node = ray_for_tests.add_node(num_cpus=1, num_gpus=1)
        assert [w.name for w in pool.sync()] == ["gpu-2", "gpu-3"] and pool.sync() == []
        places = ray.get([w.actor.location.remote() for w in pool.workers], timeout=60)
        assert Counter(p.node_id for p in places) == {places[0].node_id: 2, node.node_id: 2}
        assert {p.gpu_id for p in places} == {"0"}  # each node's only GPU, shared by two workers
        results = ray.get([w.actor.run.remote(sleep_spec(i, Path("."))) for i, w in enumerate(pool.workers)],
                          timeout=60)
        assert [r.status for r in results] == ["completed"] * 4
    finally:
        pool.shutdown()
        ray_for_tests.stop()
