"""Trial trainers: the one call a worker makes per trial, `trainer(spec, report, should_stop)`.

A worker does not know what training is; it hands a `TrialSpec` to a trainer and gets a
`TrialOutcome` back. `YoloTrialTrainer` is the real thing. `SleepTrialTrainer` trains nothing
and exists so that the coordinator, the store and the pool can be exercised and benchmarked at
scale (thousands of trials, many fake GPUs) in seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from workers.spec import (
    METRIC_KEYS,
    EpochUpdate,
    TrialOutcome,
    TrialSpec,
)
from yolo.fitness import fitness

log = logging.getLogger(__name__)

Report = Callable[[EpochUpdate], None]
ShouldStop = Callable[[], bool]

__all__ = ["Report", "ShouldStop", "SleepTrialTrainer", "TrialOutcome", "TrialTrainer", "YoloTrialTrainer"]


class TrialTrainer(Protocol):
    """Trains one trial. Calls `report` after every finished epoch, polls `should_stop` often and
    returns `stopped=True` when it turned true; any other failure is raised to the worker."""

    def __call__(self, spec: TrialSpec, report: Report, should_stop: ShouldStop) -> TrialOutcome: ...


class _LoopClock:
    """Wraps `should_stop` to learn when the training loop began: yolo polls it before every
    batch, so its first call marks the end of setup (scan, model build, image decoding) and the
    start of what `train_seconds` counts (training, validation, per-epoch checkpoints)."""

    def __init__(self, should_stop: ShouldStop) -> None:
        self._should_stop = should_stop
        self.loop_started: float | None = None

    def __call__(self) -> bool:
        if self.loop_started is None:
            self.loop_started = time.perf_counter()
        return self._should_stop()

    def seconds_since_start(self) -> float:
        return 0.0 if self.loop_started is None else time.perf_counter() - self.loop_started


class YoloTrialTrainer:
    """Trains a trial with `yolo.train.train`, sharing one `DatasetCache` across all the trials of
    this process, so a worker decodes and resizes its dataset once, not once per trial.

    `device=None` picks "cuda:0" when CUDA works (Ray narrows CUDA_VISIBLE_DEVICES to the GPU
    it assigned, so that is the worker's GPU) and the CPU otherwise; a GPU that Ray assigned but
    CUDA cannot see (a fake GPU given to `ray start --num-gpus` on a CPU machine) falls back to
    the CPU with a warning rather than failing every trial.

    Copies shipped to other processes (Ray actor arguments) start with an empty cache: a cache
    belongs to the process that filled it.
    """

    def __init__(self, device: str | None = None) -> None:
        from yolo.loader import DatasetCache

        self.device = device
        self.dataset_cache = DatasetCache()
        self.last_device: str | None = None
        self._warned_fake_gpu = False

    def __getstate__(self) -> dict[str, Any]:
        return {"device": self.device}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def describe(self) -> dict[str, Any]:
        """Numbers for diagnostics: device of the last trial and image cache use."""
        return {"device": self.last_device, "cached_images": len(self.dataset_cache),
                "cache_hits": self.dataset_cache.hits, "cache_misses": self.dataset_cache.misses}

    def resolve_device(self) -> str:
        if self.device is not None:
            return self.device
        if torch.cuda.is_available():
            return "cuda:0"
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        if visible and not self._warned_fake_gpu:
            log.warning("GPU %s assigned to this worker but CUDA is not available here (a fake GPU?): "
                        "training on the CPU", visible)
            self._warned_fake_gpu = True
        return "cpu"

    def __call__(self, spec: TrialSpec, report: Report, should_stop: ShouldStop) -> TrialOutcome:
        from yolo.hyp import Hyperparameters
        from yolo.synthetic import resolve_data
        from yolo.train import EpochReport, TrainingStopped, train

        device = self.last_device = self.resolve_device()
        config = dataclasses.replace(spec.train, data=resolve_data(spec.train.data), device=device)
        hyp = Hyperparameters.from_dict(spec.hyp)
        clock = _LoopClock(should_stop)
        finished: list[dict[str, float]] = []

        def on_epoch(epoch_report: EpochReport) -> bool:
            metrics = epoch_metrics(epoch_report)
            finished.append(metrics)
            report(EpochUpdate(spec.campaign_id, spec.number, spec.attempt, epoch_report.epoch,
                               epoch_report.epochs, metrics, fitness(metrics, config.fitness_weights)))
            return False

        try:
            result = train(config, hyp, [on_epoch], should_stop=clock, dataset_cache=self.dataset_cache)
        except TrainingStopped:
            metrics = final_metrics(finished[-1]) if finished else {}
            best = Path(config.save_dir) / "weights" / "best.pt"
            return TrialOutcome(
                metrics=metrics, fitness=fitness(metrics, config.fitness_weights) if metrics else None,
                epochs_done=len(finished),
                weights_path=str(best) if best.is_file() else None, stopped=True,
                train_seconds=clock.seconds_since_start(),
            )
        metrics = final_metrics(finished[-1])  # the last epoch's, as YOLOv5's evolution scores
        if spec.split != "val":  # a confirmation retraining: the final model scored on an unseen split
            metrics = self._score(result.last, config, spec.split)
        train_seconds = clock.seconds_since_start()
        return TrialOutcome(
            metrics=metrics, fitness=fitness(metrics, config.fitness_weights),
            epochs_done=result.epochs_completed,
            weights_path=str(result.weights) if Path(result.weights).is_file() else None,
            stopped=False, train_seconds=train_seconds,
        )


    def _score(self, weights: Path, config: Any, split: str) -> dict[str, float]:
        """METRIC_KEYS of the final epoch's model (last.pt) on `split`, validated as training
        validates (same image size, batches, thresholds and loss)."""
        from yolo.evaluate import evaluate_checkpoint

        val = evaluate_checkpoint(weights, config.data, split, img_size=config.img_size,
                                  batch_size=2 * config.batch_size, device=config.device,  # as training's val
                                  fitness_weights=config.fitness_weights, workers=config.workers,
                                  dataset_cache=self.dataset_cache)
        m = val.metrics
        losses = val.losses or (math.nan, math.nan, math.nan)
        return {k: float(v) for k, v in zip(METRIC_KEYS, (m.precision, m.recall, m.map50, m.map, *losses))}


def epoch_metrics(epoch_report: Any) -> dict[str, float]:
    """The metrics dict of one yolo `EpochReport`: METRIC_KEYS plus the mean training losses."""
    m = epoch_report.val.metrics
    val_losses = epoch_report.val.losses or (math.nan, math.nan, math.nan)
    values = (m.precision, m.recall, m.map50, m.map, *val_losses, *epoch_report.train_losses)
    keys = (*METRIC_KEYS, "train_box_loss", "train_obj_loss", "train_cls_loss")
    return {k: float(v) for k, v in zip(keys, values)}


def final_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Only the METRIC_KEYS (a trial's result carries no training losses)."""
    return {k: metrics[k] for k in METRIC_KEYS}


@dataclass(frozen=True)
class SleepTrialTrainer:
    """Trains nothing: sleeps a random `min_seconds`..`max_seconds` (drawn from the trial's
    seed), spread over its `epochs`, and reports made-up metrics after each.

    For coordinator benchmarks and dry runs. The metrics are deterministic for a given spec
    (seed and hyperparameters) and rise as the hyperparameters get closer to YOLOv5's defaults,
    so a genetic search over them has something to climb. It polls `should_stop` every
    `poll_seconds`, so a stop request ends it within about that long.
    """

    min_seconds: float = 0.2
    max_seconds: float = 0.8
    poll_seconds: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.min_seconds <= self.max_seconds:
            raise ValueError(f"need 0 <= min_seconds <= max_seconds, got {self.min_seconds}, {self.max_seconds}")

    def __call__(self, spec: TrialSpec, report: Report, should_stop: ShouldStop) -> TrialOutcome:
        rng = np.random.default_rng(spec.train.seed)
        duration = float(rng.uniform(self.min_seconds, self.max_seconds))
        epochs = max(0, spec.train.epochs)
        quality = _closeness_to_defaults(spec.hyp)
        start = time.perf_counter()
        metrics: dict[str, float] = {}
        for epoch in range(epochs):
            deadline = start + duration * (epoch + 1) / epochs
            while (left := deadline - time.perf_counter()) > 0:
                if should_stop():
                    return self._outcome(metrics, spec, epoch, stopped=True, start=start)
                time.sleep(min(self.poll_seconds, left))
            metrics = _made_up_metrics(quality, (epoch + 1) / epochs, rng)
            report(EpochUpdate(spec.campaign_id, spec.number, spec.attempt, epoch, epochs, metrics,
                               fitness(metrics, spec.train.fitness_weights)))
        return self._outcome(metrics, spec, epochs, stopped=False, start=start)

    @staticmethod
    def _outcome(metrics: dict[str, float], spec: TrialSpec, epochs_done: int, stopped: bool,
                 start: float) -> TrialOutcome:
        final = final_metrics(metrics) if metrics else {}
        return TrialOutcome(
            metrics=final, fitness=fitness(final, spec.train.fitness_weights) if final else None,
            epochs_done=epochs_done, weights_path=None, stopped=stopped,
            train_seconds=time.perf_counter() - start,
        )


def _closeness_to_defaults(hyp: dict[str, float]) -> float:
    """1.0 at YOLOv5's default hyperparameters, falling with the mean squared log-ratio to them."""
    from yolo.hyp import Hyperparameters

    defaults = Hyperparameters().to_dict()
    ratios = [math.log(hyp[k] / v) ** 2 for k, v in defaults.items() if v > 0 and hyp.get(k, 0) > 0]
    return math.exp(-float(np.mean(ratios))) if ratios else 1.0


def _made_up_metrics(quality: float, progress: float, rng: np.random.Generator) -> dict[str, float]:
    noise = rng.normal(0.0, 0.01, size=4)
    level = 0.6 * quality * progress
    map_ = float(np.clip(level + noise[0], 0.0, 1.0))
    values = {
        "precision": float(np.clip(level * 1.4 + noise[1], 0.0, 1.0)),
        "recall": float(np.clip(level * 1.3 + noise[2], 0.0, 1.0)),
        "map50": float(np.clip(map_ * 1.6 + noise[3], 0.0, 1.0)),
        "map": map_,
    }
    loss = 1.0 - 0.5 * quality * progress
    values.update({"val_box_loss": 0.08 * loss, "val_obj_loss": 0.05 * loss, "val_cls_loss": 0.03 * loss,
                   "train_box_loss": 0.09 * loss, "train_obj_loss": 0.06 * loss, "train_cls_loss": 0.04 * loss})
    return values


TRAINERS = ("yolo", "sleep")


def build_trainer(name: str, dry_run_seconds: tuple[float, float] = (0.2, 0.8)) -> TrialTrainer:
    """The trainer a campaign names: "yolo" (real training) or "sleep" (a dry run, trains nothing,
    each trial taking `dry_run_seconds` = (min, max))."""
    if name == "yolo":
        return YoloTrialTrainer()
    if name == "sleep":
        return SleepTrialTrainer(*dry_run_seconds)
    raise ValueError(f"unknown trainer {name!r} (expected one of {', '.join(TRAINERS)})")
