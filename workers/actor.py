"""The Ray actor that trains trials one at a time on its GPU (or CPU share).

`TrialWorker` is a plain class; `start_worker` turns it into a threaded Ray actor. Threaded, so
that `poll()` and `stop()` are answered while `run()` is busy training: the coordinator reads
per-epoch progress and cancels or prunes trials without waiting for them to end.

A trial that raises (NaN loss, unreadable data, anything) comes back as a "failed" result with
the error text; the worker itself stays usable. Only the death of the process or node surfaces
as an exception (Ray's `RayActorError`) on the coordinator's side.

Several workers may share one GPU (`trials_per_gpu`), each its own process. A trial that runs out
of GPU memory fails with that reason (workers/gpu_memory.py) and the worker frees the allocator's
cache before its next trial; its neighbours on the GPU, other processes, run on. Every result
carries the trial's peak GPU memory among its metrics when the trial used CUDA.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections import deque
from typing import Any

import ray
import torch

from workers.gpu_memory import (
    out_of_memory_reason,
    peak_gpu_memory,
    release_cached_gpu_memory,
    reset_peak_gpu_memory,
)
from workers.spec import EpochUpdate, TrialOutcome, TrialResult, TrialSpec, WorkerLocation
from workers.trainers import TrialTrainer, YoloTrialTrainer, final_metrics

log = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENCY = 3  # run() plus poll() and stop() at the same time
ERROR_TRACEBACK_FRAMES = 4  # the innermost frames kept in a failed trial's error text


class TrialWorker:
    """Trains one trial at a time with `trainer` (default `YoloTrialTrainer`, whose image cache
    then lives as long as this worker). `torch_threads` sets torch's intra-op threads for the
    whole process (a CPU worker's share of the node's cores). `trials_per_gpu`: how many workers
    share this one's GPU, for the advice of a trial that runs out of its memory."""

    def __init__(self, worker_name: str, trainer: TrialTrainer | None = None,
                 torch_threads: int | None = None, trials_per_gpu: int = 1) -> None:
        if torch_threads is not None:
            torch.set_num_threads(max(1, int(torch_threads)))
        self.worker_name = worker_name
        self.trials_per_gpu = trials_per_gpu
        self._trainer: TrialTrainer = trainer if trainer is not None else YoloTrialTrainer()
        self._location = _where_am_i()
        self._lock = threading.Lock()  # guards the fields below
        self._updates: deque[EpochUpdate] = deque()
        self._current: tuple[int, int] | None = None  # (campaign_id, number) being trained
        self._stop_requested = threading.Event()
        self._one_trial_at_a_time = threading.Lock()
        self._trials = 0

    def run(self, spec: TrialSpec) -> TrialResult:
        """Train `spec` and say how it ended; never raises for the trial's own errors."""
        with self._one_trial_at_a_time:
            started = time.time()
            stop = threading.Event()
            with self._lock:
                self._current = (spec.campaign_id, spec.number)
                self._stop_requested = stop
            reported: list[EpochUpdate] = []

            def report(update: EpochUpdate) -> None:
                reported.append(update)
                with self._lock:
                    self._updates.append(update)

            error: str | None = None
            out_of_memory = False
            reset_peak_gpu_memory()
            try:
                outcome = self._trainer(spec, report, stop.is_set)
            except Exception as err:  # noqa: BLE001 -- any trial error is reported, the worker lives on
                error = self._failure_text(spec, err)
                out_of_memory = isinstance(err, torch.cuda.OutOfMemoryError)
                log.warning("%s: trial %s/%s failed: %s", self.worker_name, spec.campaign_id, spec.number,
                            error.splitlines()[0])
                outcome = _partial_outcome(reported)
            finally:
                with self._lock:
                    self._current = None
                    self._trials += 1
            gpu_memory = peak_gpu_memory()
            if out_of_memory:  # the failed trial's tensors are unreachable now (`err` is gone)
                release_cached_gpu_memory()
            if error is not None:
                status = "failed"
            else:
                status = "stopped" if outcome.stopped else "completed"
            return TrialResult(
                campaign_id=spec.campaign_id, number=spec.number, attempt=spec.attempt, status=status,
                metrics={**outcome.metrics, **gpu_memory}, fitness=None if error else outcome.fitness,
                epochs_done=outcome.epochs_done, weights_path=outcome.weights_path, error=error,
                worker=self.worker_name, node_id=self._location.node_id,
                node_ip=self._location.node_ip, gpu_id=self._location.gpu_id,
                started_at=started, ended_at=time.time(), train_seconds=outcome.train_seconds,
                updates=tuple(reported),
            )

    def _failure_text(self, spec: TrialSpec, err: Exception) -> str:
        """A failed trial's error text; one that ran out of GPU memory says so first, with what to do."""
        text = describe_error(err)
        if isinstance(err, torch.cuda.OutOfMemoryError):
            return f"{out_of_memory_reason(spec.campaign_id, self._location.gpu_id, self.trials_per_gpu)}\n{text}"
        return text

    def poll(self) -> list[EpochUpdate]:
        """Epoch updates queued since the last poll, oldest first. A finished trial's result also
        carries all of its updates, so nothing is lost between the last poll and the result."""
        with self._lock:
            updates = list(self._updates)
            self._updates.clear()
        return updates

    def stop(self, campaign_id: int, number: int) -> bool:
        """Ask the running trial to stop after its current batch; False if it is not running here."""
        with self._lock:
            if self._current != (campaign_id, number):
                return False
            self._stop_requested.set()
            return True

    def location(self) -> WorkerLocation:
        """Where this worker runs: node, IP and GPU as Ray assigned them."""
        return self._location

    def diagnostics(self) -> dict[str, Any]:
        """Worker name, trials run, torch threads, the GPU(s) its trials see (CUDA_VISIBLE_DEVICES
        as Ray set it) and how many workers share it, and whatever the trainer describes (device,
        image cache use): for tests, logs and benchmarks."""
        with self._lock:
            info: dict[str, Any] = {"worker": self.worker_name, "trials": self._trials,
                                    "busy": self._current is not None}
        info["torch_threads"] = torch.get_num_threads()
        info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        info["trials_per_gpu"] = self.trials_per_gpu
        describe = getattr(self._trainer, "describe", None)
        if callable(describe):
            info.update(describe())
        return info


def start_worker(
    worker_name: str, *, trainer: TrialTrainer | None = None, num_gpus: float = 0,
    num_cpus: float = 0, torch_threads: int | None = None, actor_name: str | None = None,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY, trials_per_gpu: int = 1,
) -> ray.actor.ActorHandle:
    """Start a `TrialWorker` actor with these resources (Ray must be initialised). A fraction of a
    GPU (`num_gpus` 1/N, `trials_per_gpu` N) shares one GPU with other workers: Ray still sets
    CUDA_VISIBLE_DEVICES to that one GPU.

    Not restartable: a dead worker's trial must go back to the coordinator's queue, and a
    silently restarted actor would have lost it. Not detached: workers die with their driver.
    """
    if not ray.is_initialized():  # an implicit ray.init here would start an unconfigured local Ray
        raise RuntimeError("Ray is not initialised: call ray.init(...) before starting workers")
    if max_concurrency < 2:
        raise ValueError("max_concurrency must be >= 2 so that poll() and stop() run beside run()")
    remote_class = ray.remote(TrialWorker)
    return remote_class.options(
        name=actor_name, num_gpus=num_gpus, num_cpus=num_cpus, max_concurrency=max_concurrency,
        max_restarts=0,
    ).remote(worker_name, trainer, torch_threads, trials_per_gpu)


def describe_error(err: BaseException) -> str:
    """"Type: message" and the innermost frames of the traceback, short enough for a SQL column."""
    frames = traceback.extract_tb(err.__traceback__)[-ERROR_TRACEBACK_FRAMES:]
    return (f"{type(err).__name__}: {err}\nTraceback (innermost {len(frames)} frames):\n"
            + "".join(traceback.format_list(frames)).rstrip())


def _partial_outcome(reported: list[EpochUpdate]) -> TrialOutcome:
    """What a failed trial got done: its last finished epoch's metrics, if any."""
    last = reported[-1] if reported else None
    return TrialOutcome(
        metrics=final_metrics(last.metrics) if last else {}, fitness=None,
        epochs_done=len(reported), weights_path=None, stopped=False, train_seconds=0.0,
    )


def _where_am_i() -> WorkerLocation:
    """Node and GPU as Ray assigned them; outside Ray (a worker used in-process), local values."""
    if not ray.is_initialized():
        return WorkerLocation(node_id="local", node_ip="127.0.0.1", gpu_id=None)
    gpu_ids = ray.get_gpu_ids()
    return WorkerLocation(
        node_id=ray.get_runtime_context().get_node_id(),
        node_ip=ray.util.get_node_ip_address(),
        gpu_id=",".join(str(i) for i in gpu_ids) if gpu_ids else None,
    )
