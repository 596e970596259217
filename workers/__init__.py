"""Ray actors that train one trial each on one GPU or CPU slot, and the pool that manages them.

A `TrialSpec` goes in, `EpochUpdate`s come out while it trains, a `TrialResult` comes back.
Importing this package starts nothing; Ray actors are created by `WorkerPool.sync()`.
"""

from workers.actor import TrialWorker, describe_error, start_worker
from workers.gpu_memory import GPU_MEMORY_KEYS
from workers.pool import WorkerHandle, WorkerPool, cpu_worker_share, gpu_share
from workers.spec import (
    METRIC_KEYS,
    SYNTHETIC_DATA,
    TRAIN_LOSS_KEYS,
    EpochUpdate,
    TrialOutcome,
    TrialResult,
    TrialSpec,
    WorkerLocation,
)
from workers.trainers import SleepTrialTrainer, TrialTrainer, YoloTrialTrainer, build_trainer

__all__ = [
    "GPU_MEMORY_KEYS", "METRIC_KEYS", "SYNTHETIC_DATA", "TRAIN_LOSS_KEYS", "EpochUpdate", "SleepTrialTrainer",
    "TrialOutcome", "TrialResult", "TrialSpec", "TrialTrainer", "TrialWorker", "WorkerHandle", "WorkerLocation", "WorkerPool",
    "YoloTrialTrainer", "build_trainer", "cpu_worker_share", "describe_error", "gpu_share", "start_worker",
]
