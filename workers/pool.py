"""The worker pool: `trials_per_gpu` `TrialWorker`s per GPU of the Ray cluster (one by default), or a
few CPU workers without GPUs.

N workers per GPU each ask Ray for 1/N of a GPU; Ray packs them N to a GPU and sets each one's
CUDA_VISIBLE_DEVICES to that single GPU, so a trial sees one device whether it shares it or not.
Each is a worker like any other (its own name, process and trial); only the GPU is shared.

The coordinator calls `sync()` now and then: GPUs that joined the cluster (a new node) get their
workers, and nothing else changes. A worker whose actor died is swapped by `replace()`; the pool
never restarts actors on its own, because the coordinator must first put the dead worker's
trial back in its queue.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass

import ray

from workers.actor import DEFAULT_MAX_CONCURRENCY, start_worker
from workers.trainers import TrialTrainer

log = logging.getLogger(__name__)

RAY_RESOURCE_PRECISION = 1e-4  # Ray keeps fractional resources to 4 decimals


@dataclass
class WorkerHandle:
    """A worker as the coordinator sees it: a readable name ("gpu-0", "cpu-1") and its actor."""

    name: str
    actor: ray.actor.ActorHandle
    gpu: bool


@dataclass(frozen=True)
class _Slot:
    """The resources a worker was started with, so a replacement gets the same."""

    gpu: bool
    num_cpus: float
    torch_threads: int
    num_gpus: float = 0.0  # 1 / trials_per_gpu on a GPU worker


def cpu_worker_share(cluster_cpus: float, cpu_workers: int) -> tuple[float, int]:
    """(num_cpus per CPU worker, torch threads) when `cpu_workers` split `cluster_cpus`.

    Ray accepts fractions below one CPU but only whole numbers above it, so a share above one is
    rounded down. Torch gets the whole CPUs of the share, at least one thread.
    """
    if cpu_workers < 1:
        raise ValueError(f"cpu_workers must be >= 1, got {cpu_workers}")
    share = max(0.0, cluster_cpus) / cpu_workers
    if share >= 1:
        share = float(math.floor(share))
    else:
        share = math.floor(share / RAY_RESOURCE_PRECISION) * RAY_RESOURCE_PRECISION
    return share, max(1, math.floor(share))


def gpu_share(trials_per_gpu: int) -> float:
    """The `num_gpus` each of `trials_per_gpu` workers sharing one GPU asks Ray for: 1/N, rounded
    down to Ray's precision so that N of them always fit on one GPU."""
    if isinstance(trials_per_gpu, bool) or not isinstance(trials_per_gpu, int) or trials_per_gpu < 1:
        raise ValueError(f"trials_per_gpu must be an integer >= 1, got {trials_per_gpu!r}")
    if trials_per_gpu == 1:
        return 1.0
    return math.floor(1 / trials_per_gpu / RAY_RESOURCE_PRECISION) * RAY_RESOURCE_PRECISION


class WorkerPool:
    """Creates, tracks and replaces the trial workers of one coordinator (Ray must be initialised).

    Every worker gets `trainer` (default: `YoloTrialTrainer`); each actor receives its own copy.
    Actor names carry a per-pool token, so two pools in one Ray namespace never collide.
    `trials_per_gpu` workers share each GPU (without GPUs it changes nothing: `cpu_workers` count).
    """

    def __init__(self, trainer: TrialTrainer | None = None, cpu_workers: int = 1,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, trials_per_gpu: int = 1) -> None:
        if cpu_workers < 1:
            raise ValueError(f"cpu_workers must be >= 1, got {cpu_workers}")
        self._gpu_share = gpu_share(trials_per_gpu)
        self.trials_per_gpu = trials_per_gpu
        self._trainer = trainer
        self._cpu_workers = cpu_workers
        self._max_concurrency = max_concurrency
        self._workers: list[WorkerHandle] = []
        self._slots: dict[str, _Slot] = {}
        self._started = {"gpu": 0, "cpu": 0}  # serials for names: never reused
        self._token = uuid.uuid4().hex[:8]

    @property
    def workers(self) -> list[WorkerHandle]:
        return list(self._workers)

    def sync(self) -> list[WorkerHandle]:
        """Start workers for GPUs the cluster has and the pool lacks; returns the new ones.

        `trials_per_gpu` workers per GPU, each with `num_gpus=1/trials_per_gpu`. With no GPU in
        the cluster, `cpu_workers` CPU workers are started once, splitting the cluster's CPUs
        between them.
        """
        _require_ray()
        resources = ray.cluster_resources()
        gpus = math.floor(resources.get("GPU", 0.0) + RAY_RESOURCE_PRECISION)
        cpus = float(resources.get("CPU", 0.0))
        created: list[WorkerHandle] = []
        if gpus > 0:
            # The CPUs beside each GPU feed its workers' data pipelines (augmentation runs in torch/cv2).
            wanted = gpus * self.trials_per_gpu
            slot = _Slot(gpu=True, num_cpus=0.0, torch_threads=max(1, math.floor(cpus / wanted)),
                         num_gpus=self._gpu_share)
            while sum(w.gpu for w in self._workers) < wanted:
                created.append(self._start(slot))
        elif not any(not w.gpu for w in self._workers):
            num_cpus, threads = cpu_worker_share(cpus, self._cpu_workers)
            slot = _Slot(gpu=False, num_cpus=num_cpus, torch_threads=threads)
            created += [self._start(slot) for _ in range(self._cpu_workers)]
        if created:
            log.info("worker pool: started %s (cluster: %d GPU x %d trials, %.1f CPU)",
                     ", ".join(w.name for w in created), gpus, self.trials_per_gpu, cpus)
        return created

    def replace(self, handle: WorkerHandle) -> WorkerHandle:
        """Kill `handle`'s actor if it still lives and start a worker with the same resources."""
        slot = self._slots.pop(handle.name, None)
        if slot is None:
            raise ValueError(f"{handle.name} is not a worker of this pool")
        _kill(handle)
        new = self._start(slot, append=False)
        index = next((i for i, w in enumerate(self._workers) if w.name == handle.name), None)
        if index is None:
            self._workers.append(new)
        else:
            self._workers[index] = new
        log.info("worker pool: replaced %s with %s", handle.name, new.name)
        return new

    def shutdown(self) -> None:
        """Kill every worker (trials running on them are lost)."""
        for handle in self._workers:
            _kill(handle)
        self._workers.clear()
        self._slots.clear()

    def _start(self, slot: _Slot, append: bool = True) -> WorkerHandle:
        kind = "gpu" if slot.gpu else "cpu"
        name = f"{kind}-{self._started[kind]}"
        self._started[kind] += 1
        actor = start_worker(
            name, trainer=self._trainer, num_gpus=slot.num_gpus, num_cpus=slot.num_cpus,
            torch_threads=slot.torch_threads, actor_name=f"evolver-{self._token}-{name}",
            max_concurrency=self._max_concurrency, trials_per_gpu=self.trials_per_gpu if slot.gpu else 1,
        )
        handle = WorkerHandle(name=name, actor=actor, gpu=slot.gpu)
        self._slots[name] = slot
        if append:
            self._workers.append(handle)
        return handle


def _require_ray() -> None:
    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialised: call ray.init(...) before using the worker pool")


def _kill(handle: WorkerHandle) -> None:
    if not ray.is_initialized():  # Ray is gone and its actors with it; ray.kill would start a new Ray
        return
    try:
        ray.kill(handle.actor, no_restart=True)
    except Exception as err:  # noqa: BLE001 -- already gone: nothing to kill
        log.debug("worker pool: killing %s: %s", handle.name, err)
