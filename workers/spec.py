"""What travels between the coordinator and a worker: a trial in, epoch updates and a result out.

These are plain frozen dataclasses of builtins so that Ray can ship them between processes and
nodes without either side importing the other's machinery. Workers stay thin: the coordinator
decides what to train and records everything; a worker only trains and reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from yolo.train import TrainConfig

# The final metrics of a trial, in the order fitness weights refer to the first four.
METRIC_KEYS = ("precision", "recall", "map50", "map", "val_box_loss", "val_obj_loss", "val_cls_loss")
TRAIN_LOSS_KEYS = ("train_box_loss", "train_obj_loss", "train_cls_loss")

SYNTHETIC_DATA = "synthetic"  # TrialSpec.train.data value meaning "the built-in synthetic dataset"


@dataclass(frozen=True)
class TrialSpec:
    """One training to run: who it is (campaign, number, attempt), its hyperparameters, and how to
    train it. `train` is the whole training configuration (the campaign's, with this trial's seed
    and folder); its `data` may be SYNTHETIC, and its `device` is the worker's to choose. Training
    validates on val every epoch whatever `split` says; only the final score moves to `split`."""

    campaign_id: int
    number: int
    attempt: int
    hyp: dict[str, float]
    train: TrainConfig
    split: str = "val"  # the data split its final metrics are scored on (confirmation: test, usually)

    @property
    def key(self) -> tuple[int, int, int]:
        """(campaign_id, number, attempt): identifies this run of the trial."""
        return self.campaign_id, self.number, self.attempt


@dataclass(frozen=True)
class WorkerLocation:
    """Where a worker runs, as Ray placed it."""

    node_id: str
    node_ip: str
    gpu_id: str | None  # Ray's GPU ids, comma-separated; None on a CPU worker


@dataclass(frozen=True)
class EpochUpdate:
    """Progress after one finished epoch (0-based `epoch` of `epochs`), for live views and pruning."""

    campaign_id: int
    number: int
    attempt: int
    epoch: int
    epochs: int
    metrics: dict[str, float]  # METRIC_KEYS plus TRAIN_LOSS_KEYS
    fitness: float


@dataclass(frozen=True)
class TrialResult:
    """How a trial ended and where it really ran (node and GPU as Ray assigned them)."""

    campaign_id: int
    number: int
    attempt: int
    status: str  # "completed" | "failed" | "stopped" (stopped = asked to stop by the coordinator)
    metrics: dict[str, float]  # METRIC_KEYS of the last finished epoch ({} if none finished), and the
    # trial's peak GPU memory (workers.gpu_memory.GPU_MEMORY_KEYS) when it used CUDA
    fitness: float | None
    epochs_done: int
    weights_path: str | None
    error: str | None  # "Type: message" and the traceback's tail, for failed trials
    worker: str
    node_id: str
    node_ip: str
    gpu_id: str | None  # Ray's GPU ids, comma-separated; None on a CPU worker
    started_at: float  # time.time()
    ended_at: float
    train_seconds: float  # inside yolo training + validation; the rest of the trial is overhead
    updates: tuple[EpochUpdate, ...] = ()  # every epoch it reported, so none is lost between polls

    @property
    def overhead_seconds(self) -> float:
        """Wall time of the trial outside training and validation (setup, data, dispatch)."""
        return max(0.0, self.ended_at - self.started_at - self.train_seconds)


@dataclass(frozen=True)
class TrialOutcome:
    """What a trainer hands back to the worker; the worker adds identity and placement."""

    metrics: dict[str, float]
    fitness: float | None
    epochs_done: int
    weights_path: str | None
    stopped: bool
    train_seconds: float

