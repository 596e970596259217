"""What travels between the coordinator and a worker: a trial in, epoch updates and a result out.

These are plain frozen dataclasses of builtins so that Ray can ship them between processes and
nodes without either side importing the other's machinery. Workers stay thin: the coordinator
decides what to train and records everything; a worker only trains and reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from yolo.fitness import DEFAULT_FITNESS_WEIGHTS

# The final metrics of a trial, in the order fitness weights refer to the first four.
METRIC_KEYS = ("precision", "recall", "map50", "map", "val_box_loss", "val_obj_loss", "val_cls_loss")
TRAIN_LOSS_KEYS = ("train_box_loss", "train_obj_loss", "train_cls_loss")

SYNTHETIC_DATA = "synthetic"  # TrialSpec.data value meaning "the built-in synthetic dataset"


@dataclass(frozen=True)
class TrialSpec:
    """One training to run: who it is (campaign, number, attempt) and how to train it."""

    campaign_id: int
    number: int
    attempt: int
    hyp: dict[str, float]
    data: str  # data yaml path, or a name of yolo.synthetic.BUILTIN_DATASETS ("synthetic", ...)
    cfg: str | None = None  # None: the architecture of `weights`, else yolov5n
    epochs: int = 10
    img_size: int = 640
    batch_size: int = 16
    seed: int = 0
    out_dir: str = ""  # the trial's folder (weights land in out_dir/weights/best.pt); "" = a temp dir
    fitness_weights: tuple[float, float, float, float] = DEFAULT_FITNESS_WEIGHTS
    loader_workers: int = 0  # data-loader processes; 0 loads in the training thread
    weights: str | None = None  # a checkpoint to fine-tune from (YOLOv5's evolution fine-tunes)
    freeze: tuple[int, ...] = ()  # layer indices whose parameters do not train

    @property
    def key(self) -> tuple[int, int, int]:
        """(campaign_id, number, attempt): identifies this run of the trial."""
        return self.campaign_id, self.number, self.attempt


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
    metrics: dict[str, float]  # METRIC_KEYS of the last finished epoch; {} if none finished
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

