"""Ray actors that train one trial each on one GPU or CPU slot, and the pool that manages them.

A `TrialSpec` goes in, `EpochUpdate`s come out while it trains, a `TrialResult` comes back.
Importing this package starts nothing; Ray actors are created by `WorkerPool.sync()`.
"""

from workers.actor import TrialWorker, describe_error, start_worker
from workers.pool import WorkerHandle, WorkerPool, cpu_worker_share
from workers.spec import (
    DEFAULT_FITNESS_WEIGHTS,
    METRIC_KEYS,
    SYNTHETIC_DATA,
    TRAIN_LOSS_KEYS,
    EpochUpdate,
    TrialOutcome,
    TrialResult,
    TrialSpec,
)
from workers.trainers import SleepTrialTrainer, TrialTrainer, YoloTrialTrainer, build_trainer

__all__ = [
    "DEFAULT_FITNESS_WEIGHTS", "METRIC_KEYS", "SYNTHETIC_DATA", "TRAIN_LOSS_KEYS", "EpochUpdate",
    "SleepTrialTrainer", "TrialOutcome", "TrialResult", "TrialSpec", "TrialTrainer", "TrialWorker",
    "WorkerHandle", "WorkerPool", "YoloTrialTrainer", "build_trainer", "cpu_worker_share", "describe_error",
    "start_worker",
]
