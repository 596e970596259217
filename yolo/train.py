"""Training a detector: one library call, `train(config, hyp, callbacks) -> TrainResult`.

The loop does the step; everything else (schedule, EMA, validation, checkpoints, results.csv,
callbacks) hangs off the epoch boundary. The CLI (`evolver train`) is a thin shell over this.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from yolo.checkpoint import Checkpoint, build_model_from, load_checkpoint, save_checkpoint
from yolo.data import DataConfig, DatasetIndex, load_data_config, scan_dataset
from yolo.loader import DetectionDataset, DatasetCache, create_dataloader
from yolo.device import parse_device, resolve_device
from yolo.distributed import (
    RankInfo, any_rank, backend_for, broadcast_flag, broadcast_json, check_replicas, check_sync_bn, current_rank,
    process_group,
)
from yolo.freeze import freeze_layers
from yolo.ema import ModelEMA
from yolo.hyp import Hyperparameters
from yolo.image_size import require_stride_multiple
from yolo.loss import DetectionLoss
from yolo.model import ModelConfig, build_model
from yolo.optim import NOMINAL_BATCH, Schedule, accumulation_steps, build_optimizer
from yolo.results import ResultsWriter
from yolo.anchors import anchors_for_levels, best_possible_recall, label_box_sizes
from yolo.fitness import DEFAULT_FITNESS_WEIGHTS
from yolo.val import ValResult, inference_copy, validate

log = logging.getLogger(__name__)

DEFAULT_CFG = "yolov5n"  # the model trained when neither a size nor weights are given
# Fine-tuning that carries fewer of the model's tensors than this is mostly training from scratch:
# said in a warning naming the weights' architecture and the one being trained.
TRANSFER_WARN_FRACTION = 0.9


@dataclass(frozen=True)
class TrainConfig:
    data: str  # data yaml path
    cfg: str | None = None  # model size; None: the architecture of `weights`, else yolov5n
    epochs: int = 10
    img_size: int = 640
    batch_size: int = 16
    device: str = "cpu"  # 'cpu', '0', 'cuda:1', or several GPUs '2,3' (one DDP process each)
    seed: int = 0
    workers: int = 1  # one loader process; more only fight the 2 training threads for cores
    save_dir: str = "runs/train/exp"  # used as is: callers choose a fresh folder
    weights: str | None = None  # start from a checkpoint's weights (fine-tuning): ours or YOLOv5's
    cos_lr: bool = False
    cache_images: bool = True
    fitness_weights: tuple[float, float, float, float] = DEFAULT_FITNESS_WEIGHTS
    progress: bool = True  # tqdm bars
    # Layer indices whose parameters do not train (yolo.freeze.parse_freeze reads the CLI's
    # spelling: `--freeze 10` is (0, ..., 9), the backbone). Empty: everything trains.
    freeze: tuple[int, ...] = ()
    sync_bn: bool = False  # SyncBatchNorm across DDP ranks (NCCL only)
    amp: bool = True  # mixed precision (autocast + GradScaler) on CUDA; False trains in float32 (no effect on CPU)

    def to_dict(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["fitness_weights"] = list(self.fitness_weights)
        row["freeze"] = list(self.freeze)
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in row.items() if k in known}
        if "fitness_weights" in values:
            values["fitness_weights"] = tuple(values["fitness_weights"])
        if "freeze" in values:
            values["freeze"] = tuple(int(i) for i in values["freeze"])
        return cls(**values)


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 0-based
    epochs: int
    train_losses: tuple[float, float, float]  # box, obj, cls
    val: ValResult
    fitness: float
    best_fitness: float
    learning_rates: tuple[float, ...]
    seconds: float


# A callback sees every finished epoch; returning True asks training to stop (early stopping).
EpochCallback = Callable[[EpochReport], bool | None]


class TrainingStopped(Exception):
    """Raised between batches when `should_stop()` turned true (a cancelled or pruned trial).
    `last_report` is the latest finished epoch (None if none finished): its metrics are the
    trial's partial result."""

    def __init__(self, epoch: int, last_report: EpochReport | None):
        super().__init__(f"training stopped on request during epoch {epoch + 1}")
        self.epoch = epoch
        self.last_report = last_report


@dataclass(frozen=True)
class TrainResult:
    metrics: dict[str, float]  # final epoch: P, R, mAP@0.5, mAP@0.5:0.95, val losses, fitness
    fitness: float  # of the final epoch
    best_fitness: float
    best_epoch: int
    epochs_completed: int
    stopped_early: bool
    weights: Path  # best.pt
    last: Path
    save_dir: Path
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: how rank 0 hands the result to the other ranks and to the launcher."""
        row = dataclasses.asdict(self)
        row.update(weights=str(self.weights), last=str(self.last), save_dir=str(self.save_dir))
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "TrainResult":
        return cls(**{**row, "weights": Path(row["weights"]), "last": Path(row["last"]),
                      "save_dir": Path(row["save_dir"])})


def train(
    config: TrainConfig,
    hyp: Hyperparameters | None = None,
    callbacks: Sequence[EpochCallback] = (),
    resume_from: str | Path | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
    dataset_cache: DatasetCache | None = None,
) -> TrainResult:
    """Train `config.cfg` on `config.data` with `hyp`; with `resume_from` (a last.pt), continue it.

    `should_stop` is polled before every batch; when it returns True, `TrainingStopped` is raised
    (the checkpoints of finished epochs stay on disk). `dataset_cache` shares scanned labels and decoded
    images with earlier trainings in this process: a worker reads a dataset once, not per trial.

    Several GPUs in `config.device` ('0,1') from a plain process: one process per GPU is launched
    (`yolo.ddp_main`) and their result returned; callbacks cannot cross into those processes, so
    they are refused there. Inside a torchrun rank this function trains that rank: the batch is
    split across ranks, rank 0 alone validates, saves and runs callbacks, and every rank returns
    rank 0's result.
    """
    hyp = hyp or Hyperparameters()
    _check_config(config)
    request = parse_device(config.device)
    rank = current_rank()
    if request.is_multi_gpu and not rank.is_distributed:
        if callbacks or should_stop is not None or dataset_cache is not None:
            raise ValueError(f"device {config.device!r} trains in {request.processes} launched processes: "
                             "callbacks, should_stop and dataset_cache cannot reach them; run one process "
                             "per GPU under torchrun to use them")
        from yolo.ddp_main import train_distributed

        return train_distributed(config, hyp, resume_from)
    device = resolve_device(request, rank.local_rank)
    check_sync_bn(config.sync_bn, backend_for(device))  # fails fast on CPU, before any data is read
    if rank.is_distributed and config.batch_size % rank.world_size:
        raise ValueError(f"--batch {config.batch_size} (the total batch) must be a multiple of the "
                         f"{rank.world_size} DDP processes")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # stray allocations must not land on GPU 0
    with process_group(rank, device):
        result = _train_rank(config, hyp, callbacks, resume_from, should_stop, dataset_cache, rank, device)
        if rank.is_distributed:
            result = TrainResult.from_dict(broadcast_json(result.to_dict() if rank.is_main else None, device))
    return result


def _train_rank(
    config: TrainConfig, hyp: Hyperparameters, callbacks: Sequence[EpochCallback], resume_from: str | Path | None,
    should_stop: Callable[[], bool] | None, dataset_cache: DatasetCache | None, rank: RankInfo,
    device: torch.device,
) -> TrainResult | None:
    """The training loop of one process (the only one, or one DDP rank); None on ranks other than 0."""
    start_time = time.perf_counter()
    torch.manual_seed(config.seed)  # same seed on every rank: identical initial weights
    run, resumed = _set_up(config, hyp, resume_from, dataset_cache, rank, device)
    progress = _restore(run, resumed, resume_from) if resumed is not None else _Progress()
    _log_plan(run)
    for epoch in range(progress.start_epoch, config.epochs):
        epoch_start = time.perf_counter()
        train_losses = _train_epoch(run, progress, epoch, should_stop)
        if not rank.is_main:
            if broadcast_flag(False, device):  # rank 0 validates meanwhile, then says whether to stop
                break
            continue
        stop = _end_epoch(run, progress, epoch, train_losses, epoch_start, callbacks)
        if broadcast_flag(stop, device):
            progress.stopped_early = epoch + 1 < config.epochs
            run.say("a callback stopped training after epoch %d", epoch + 1)
            break
    return _result(run, progress, time.perf_counter() - start_time)


@dataclass(frozen=True)
class _Run:
    """Everything one process trains with, built once before the first epoch."""

    config: TrainConfig
    hyp: Hyperparameters
    rank: RankInfo
    device: torch.device
    say: Callable[..., None]  # log.info on rank 0, silent elsewhere
    data: DataConfig
    val_images: int  # the whole validation set, for the log (only rank 0 loads it)
    train_set: DetectionDataset
    train_loader: torch.utils.data.DataLoader  # this rank's share of every batch
    val_loader: torch.utils.data.DataLoader | None  # rank 0 alone validates
    model: torch.nn.Module  # the weights, state and gradients that are saved
    train_model: torch.nn.Module  # what the step calls: `model`, or `model` wrapped in DDP
    ema: ModelEMA
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss_fn: DetectionLoss
    scaler: torch.amp.GradScaler
    results: ResultsWriter | None  # rank 0 alone writes results.csv

    @property
    def amp(self) -> bool:
        return self.device.type == "cuda" and self.config.amp

    @property
    def weights_dir(self) -> Path:
        return Path(self.config.save_dir) / "weights"


@dataclass
class _Progress:
    """What changes as training goes. last.pt keeps the epoch, the best so far and the last step,
    so that a resumed run goes on exactly where the interrupted one was."""

    start_epoch: int = 0
    best_fitness: float = 0.0
    best_epoch: int = -1  # -1 until an epoch has been validated
    last_step: int = -1  # global batch index of the last optimiser step
    last_report: EpochReport | None = None
    stopped_early: bool = False


def _set_up(
    config: TrainConfig, hyp: Hyperparameters, resume_from: str | Path | None, dataset_cache: DatasetCache | None,
    rank: RankInfo, device: torch.device,
) -> tuple[_Run, Checkpoint | None]:
    """Read the data, build the model (fresh, fine-tuned or resumed), its loaders and optimiser.
    The resumed checkpoint comes back too: `_restore` puts its state into what was built.

    The data yaml and the checkpoints are read before the images are scanned: a wrong path or
    file is refused before the slow part starts."""
    say = log.info if rank.is_main else _quiet
    warn = log.warning if rank.is_main else _quiet
    data = load_data_config(config.data)
    resumed = load_checkpoint(resume_from) if resume_from else None
    pretrained = load_checkpoint(config.weights) if config.weights and resumed is None else None
    train_index, val_index = _scan_data(config, data, dataset_cache, say)
    if rank.is_main:  # only once the inputs are known to be good
        (Path(config.save_dir) / "weights").mkdir(parents=True, exist_ok=True)
    if resumed is not None:
        model = build_model_from(resumed)  # its anchors, fitted or not, are in the checkpoint
    else:
        model = _initial_model(config, hyp, pretrained, train_index, data.nc, say, warn)
    model.to(device)
    say("%s", freeze_layers(model, config.freeze))
    train_set, train_loader, val_loader = _build_loaders(config, hyp, train_index, val_index, rank, dataset_cache)
    optimizer = build_optimizer(model, hyp, config.batch_size)  # total batch: same decay as one device
    schedule = Schedule(hyp, config.epochs, len(train_loader), cosine=config.cos_lr)
    loss_fn = DetectionLoss.from_model(model, hyp, config.img_size)
    ema = ModelEMA(model)  # before SyncBN: the EMA copy keeps plain BatchNorm, which fuses for validation
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and config.amp)
    results = ResultsWriter(Path(config.save_dir) / "results.csv") if rank.is_main else None
    train_model = _distributed_model(model, config, rank, device, say)
    run = _Run(
        config=config, hyp=hyp, rank=rank, device=device, say=say, data=data, val_images=len(val_index),
        train_set=train_set, train_loader=train_loader, val_loader=val_loader, model=model,
        train_model=train_model, ema=ema, optimizer=optimizer, schedule=schedule, loss_fn=loss_fn, scaler=scaler,
        results=results,
    )
    return run, resumed


def _scan_data(
    config: TrainConfig, data: DataConfig, dataset_cache: DatasetCache | None, say: Callable[..., None],
) -> tuple[DatasetIndex, DatasetIndex]:
    """The data yaml's scanned train / val images; no usable training images is an error."""
    scan = dataset_cache.scan if dataset_cache is not None else scan_dataset
    train_index = scan(data.train, data.nc)
    val_index = scan(data.val, data.nc)
    say("train: %s", train_index.summary())
    say("val: %s", val_index.summary())
    if not len(train_index):
        raise ValueError(f"{config.data}: no usable training images")
    return train_index, val_index


def _build_loaders(
    config: TrainConfig, hyp: Hyperparameters, train_index: DatasetIndex, val_index: DatasetIndex, rank: RankInfo,
    dataset_cache: DatasetCache | None,
) -> tuple[DetectionDataset, torch.utils.data.DataLoader, torch.utils.data.DataLoader | None]:
    """The augmented training set and this rank's loader of it; on rank 0 also the validation
    loader (rectangular batches of twice the training batch, as YOLOv5), None elsewhere."""
    train_set = DetectionDataset(
        train_index, config.img_size, hyp, augment=True, cache_images=config.cache_images, seed=config.seed,
        dataset_cache=dataset_cache,
    )
    train_loader = create_dataloader(train_set, config.batch_size // rank.world_size, shuffle=True,
                                     workers=config.workers, seed=config.seed, rank=rank.rank,
                                     world_size=rank.world_size)
    if not rank.is_main:
        return train_set, train_loader, None
    val_set = DetectionDataset(
        val_index, config.img_size, hyp, augment=False, cache_images=config.cache_images,
        rect=True, batch_size=config.batch_size * 2, pad=0.5, seed=config.seed, dataset_cache=dataset_cache,
    )
    val_loader = create_dataloader(val_set, config.batch_size * 2, shuffle=False, workers=config.workers,
                                   seed=config.seed)
    return train_set, train_loader, val_loader


def _restore(run: _Run, resumed: Checkpoint, resume_from: str | Path | None) -> _Progress:
    """Put an interrupted run's state back: raw and EMA weights, optimiser, RNG, the epoch to
    start from, the best so far, and the gradients accumulated since the last step."""
    run.model.load_state_dict(resumed.train_state)
    run.ema.ema.load_state_dict(resumed.model_state)
    run.ema.updates = resumed.ema_updates
    run.optimizer.load_state_dict(resumed.optimizer_state)
    progress = _Progress(start_epoch=resumed.epoch + 1, best_fitness=resumed.best_fitness,
                         best_epoch=int(resumed.metrics.get("best_epoch", -1)))
    if resumed.torch_rng is not None:
        torch.set_rng_state(resumed.torch_rng)
    run.say("resuming %s from epoch %d of %d", resume_from, progress.start_epoch, run.config.epochs)
    progress.last_step = progress.start_epoch * len(run.train_loader) - 1
    if resumed.last_step >= 0:
        # An epoch can end mid-accumulation: put back the gradients the interrupted run held.
        progress.last_step = resumed.last_step
        params = dict(run.model.named_parameters())
        for name, grad in (resumed.pending_grads or {}).items():
            params[name].grad = grad.to(run.device)
    return progress


def _log_plan(run: _Run) -> None:
    config, rank = run.config, run.rank
    run.say(
        "training %s on %s: %d epochs, img %d, batch %d%s (accumulated to %d), %d train / %d val images",
        run.model.config.name, run.device, config.epochs, config.img_size, config.batch_size,
        f" = {rank.world_size} ranks x {config.batch_size // rank.world_size}" if rank.is_distributed else "",
        NOMINAL_BATCH, len(run.train_set), run.val_images,
    )


def _train_epoch(run: _Run, progress: _Progress, epoch: int, should_stop: Callable[[], bool] | None) -> torch.Tensor:
    """One pass over this rank's batches, an optimiser step whenever enough have accumulated;
    the mean train losses (box, obj, cls) come back."""
    run.model.train()
    run.train_set.set_epoch(epoch)
    accumulate_full = accumulation_steps(run.config.batch_size)
    batches = len(run.train_loader)
    loss_mean = torch.zeros(3)
    bar = tqdm(run.train_loader, total=batches, desc=f"epoch {epoch + 1}/{run.config.epochs}",
               disable=not (run.config.progress and run.rank.is_main), leave=False)
    for i, (imgs, targets, _paths, _shapes) in enumerate(bar):
        if should_stop is not None and any_rank(should_stop(), run.device):
            bar.close()
            raise TrainingStopped(epoch, progress.last_report)
        step = i + batches * epoch
        run.schedule.apply(run.optimizer, epoch, step)
        # During warmup the effective batch grows from one batch to the nominal 64 images.
        accumulate = max(1, round(float(np.interp(step, [0, run.schedule.warmup_iterations], [1, accumulate_full]))))
        imgs = imgs.to(run.device, non_blocking=True).float().div_(255)
        with torch.autocast(run.device.type, enabled=run.amp):
            loss, items = run.loss_fn(run.train_model(imgs), targets.to(run.device))
        # The loss is a per-rank mean times the per-rank batch; DDP averages gradients over
        # ranks, so scaling by the world size gives one device's gradient for the total batch.
        loss = loss * run.rank.world_size
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, batch {i + 1}")
        run.scaler.scale(loss).backward()
        if step - progress.last_step >= accumulate:
            run.scaler.unscale_(run.optimizer)
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), max_norm=10.0)
            run.scaler.step(run.optimizer)
            run.scaler.update()
            run.optimizer.zero_grad(set_to_none=True)
            run.ema.update(run.model)
            progress.last_step = step
        loss_mean = (loss_mean * i + items.cpu()) / (i + 1)
        bar.set_postfix(box=f"{loss_mean[0]:.4f}", obj=f"{loss_mean[1]:.4f}", cls=f"{loss_mean[2]:.4f}")
    bar.close()
    return loss_mean


def _end_epoch(
    run: _Run, progress: _Progress, epoch: int, train_losses: torch.Tensor, epoch_start: float,
    callbacks: Sequence[EpochCallback],
) -> bool:
    """Rank 0 after an epoch: validate the EMA weights, append to results.csv, save last.pt (and
    best.pt), then hand the report to the callbacks; True when one of them asks to stop."""
    val = validate(
        inference_copy(run.ema.ema), run.val_loader, nc=run.data.nc, names=run.data.names, device=run.device,
        loss_fn=run.loss_fn, fitness_weights=run.config.fitness_weights, amp=run.amp,
    )
    if val.fitness > progress.best_fitness or progress.best_epoch < 0:
        progress.best_fitness, progress.best_epoch = max(val.fitness, progress.best_fitness), epoch
    report = EpochReport(
        epoch=epoch, epochs=run.config.epochs, train_losses=tuple(train_losses.tolist()), val=val,
        fitness=val.fitness, best_fitness=progress.best_fitness,
        learning_rates=tuple(g["lr"] for g in run.optimizer.param_groups),
        seconds=time.perf_counter() - epoch_start,
    )
    run.results.append(report)
    run.say(
        "epoch %d/%d  loss %.4f %.4f %.4f  P %.3f R %.3f mAP50 %.3f mAP %.3f  (%.1fs)",
        epoch + 1, run.config.epochs, *report.train_losses, val.metrics.precision, val.metrics.recall,
        val.metrics.map50, val.metrics.map, report.seconds,
    )
    _save_checkpoints(run, progress, epoch, val)
    progress.last_report = report
    return any(callback(report) for callback in callbacks)


def _save_checkpoints(run: _Run, progress: _Progress, epoch: int, val: ValResult) -> None:
    """last.pt holds everything a resume needs; best.pt, written when this epoch is the best so
    far, only the EMA weights and their metadata."""
    checkpoint = Checkpoint(
        model_state=run.ema.ema.state_dict(), model_config=run.model.config.to_dict(), names=run.data.names,
        epoch=epoch, best_fitness=progress.best_fitness, hyp=run.hyp.to_dict(), train_config=run.config.to_dict(),
        metrics={**val.as_dict(), "best_epoch": progress.best_epoch},
        train_state=run.model.state_dict(), optimizer_state=run.optimizer.state_dict(),
        ema_updates=run.ema.updates, torch_rng=torch.get_rng_state(), last_step=progress.last_step,
        pending_grads={n: p.grad for n, p in run.model.named_parameters() if p.grad is not None},
    )
    save_checkpoint(run.weights_dir / "last.pt", checkpoint)
    if progress.best_epoch == epoch:
        save_checkpoint(run.weights_dir / "best.pt", dataclasses.replace(
            checkpoint, train_state=None, optimizer_state=None, torch_rng=None, pending_grads=None))


def _result(run: _Run, progress: _Progress, seconds: float) -> TrainResult | None:
    """Rank 0's result (None on the other ranks), after checking that DDP kept the replicas equal."""
    if run.rank.is_distributed:
        digest = check_replicas(run.model, run.device)
        run.say("DDP replicas identical after training: parameters sha256 %s on all %d ranks", digest,
                run.rank.world_size)
    if not run.rank.is_main:
        return None
    report = progress.last_report
    if report is None:
        raise ValueError(f"nothing to train: start epoch {progress.start_epoch} >= epochs {run.config.epochs}")
    return TrainResult(
        metrics=report.val.as_dict(),
        fitness=report.fitness,
        best_fitness=progress.best_fitness,
        best_epoch=progress.best_epoch,
        epochs_completed=report.epoch + 1,
        stopped_early=progress.stopped_early,
        weights=run.weights_dir / "best.pt",
        last=run.weights_dir / "last.pt",
        save_dir=Path(run.config.save_dir),
        seconds=seconds,
        history=run.results.rows,
    )


def resume(last: str | Path, callbacks: Sequence[EpochCallback] = ()) -> TrainResult:
    """Continue an interrupted run from its last.pt with the config and hyp it was started with."""
    checkpoint = load_checkpoint(last)
    if checkpoint.optimizer_state is None or checkpoint.train_state is None:
        raise ValueError(f"{last} holds no optimizer state (best.pt cannot be resumed; use last.pt)")
    config = TrainConfig.from_dict(checkpoint.train_config)
    return train(config, Hyperparameters.from_dict(checkpoint.hyp), callbacks, resume_from=last)


DEFAULT_ANCHORS_PER_LEVEL = 3


def _check_config(config: TrainConfig) -> None:
    """What can be refused before any file is read: a one-line ValueError naming the field."""
    for name in ("epochs", "batch_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if config.workers < 0:
        raise ValueError(f"workers must be 0 or more, got {config.workers}")
    require_stride_multiple(config.img_size)
    if config.cfg is not None:
        ModelConfig.for_scale(config.cfg)  # an unknown size names the valid ones


def _initial_model(config: TrainConfig, hyp: Hyperparameters, pretrained: Checkpoint | None, train_index,
                   nc: int, say: Callable[..., None], warn: Callable[..., None]) -> torch.nn.Module:
    """A fresh model of `config.cfg`, or, fine-tuning, of the weights' architecture with their
    tensors (as YOLOv5's train.py: another nc keeps all but the head's output convs).

    The anchors to start from are the weights' (AutoAnchor'ed ones included) when the model is
    theirs, else YOLOv5's defaults; AutoAnchor keeps them unless they fit the new data badly."""
    cfg = config.cfg or (pretrained.model_config["name"] if pretrained is not None else DEFAULT_CFG)
    start = None
    if pretrained is not None and ModelConfig.for_scale(cfg).name == pretrained.model_config["name"]:
        anchors = ModelConfig.from_dict(pretrained.model_config).anchors
        start = anchors if len(anchors[0]) == hyp.anchors_per_level else None
    fitted = prepare_anchors(train_index, config.img_size, hyp, config.seed, say, start)
    model = build_model(cfg, nc=nc, anchors=fitted if fitted is not None else start)
    if pretrained is not None:
        matched, total = _load_matching_weights(model, pretrained, say)
        if matched < TRANSFER_WARN_FRACTION * total:
            warn("%s", _poor_transfer(config.weights, pretrained, model.config.name, matched, total))
    return model


def _poor_transfer(weights: str | None, pretrained: Checkpoint, trained: str, matched: int, total: int) -> str:
    """One line: which architectures met, how little carried over, and what to do about it."""
    theirs = pretrained.model_config["name"]
    if theirs != trained:
        return (f"weights {weights} are a {theirs} but cfg is {trained}: only {matched}/{total} tensors fit, "
                f"the rest train from scratch (leave out --cfg to fine-tune the {theirs} itself)")
    return (f"only {matched}/{total} tensors of weights {weights} fit the {trained} being trained; "
            "the rest train from scratch")


def prepare_anchors(index, img_size: int, hyp: Hyperparameters, seed: int,
                    say: Callable[..., None] = log.info, start: Any = None) -> np.ndarray | None:
    """None keeps the `start` anchors (pixels; None = YOLOv5's defaults); otherwise anchors fitted
    to the labels' sizes.

    Other than 3 anchors per level (without `start` anchors of that count) always means fitting.
    Otherwise the start anchors are kept unless they cover fewer than 98 % of the boxes (YOLOv5's
    AutoAnchor).
    """
    wh = label_box_sizes(index.labels, index.shapes, img_size)
    if start is not None or hyp.anchors_per_level == DEFAULT_ANCHORS_PER_LEVEL:
        from yolo.model import DEFAULT_ANCHORS

        kind = "default" if start is None else "pretrained"
        current = np.asarray(DEFAULT_ANCHORS if start is None else start, dtype=np.float32).reshape(-1, 2)
        bpr = best_possible_recall(wh, current, hyp.anchor_t)[0] if len(wh) else 1.0
        if bpr >= 0.98:
            say("anchors: %s anchors fit the data (best possible recall %.3f)", kind, bpr)
            return None
        say("anchors: best possible recall %.3f < 0.98 with the %s anchors, fitting new ones", bpr, kind)
    anchors = anchors_for_levels(wh, hyp.anchors_per_level, 3, hyp.anchor_t, img_size, seed)
    say("anchors: %d per level fitted to %d boxes", hyp.anchors_per_level, len(wh))
    return anchors


def _load_matching_weights(model: torch.nn.Module, checkpoint: Checkpoint,
                           say: Callable[..., None] = log.info) -> tuple[int, int]:
    """Copy every tensor whose name and shape match (a different nc leaves the head untouched).
    The anchors are not copied: the model was built with the ones to train with.
    Returns (tensors copied, tensors of the model)."""
    own = model.state_dict()
    matched = {k: v for k, v in checkpoint.model_state.items()
               if k in own and own[k].shape == v.shape and not k.endswith(".anchors")}
    model.load_state_dict(matched, strict=False)
    say("transferred %d/%d tensors from pretrained weights", len(matched), len(own))
    return len(matched), len(own)


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    """The log of ranks other than 0: one rank speaks for the run."""


def _distributed_model(model: torch.nn.Module, config: TrainConfig, rank: RankInfo, device: torch.device,
                       say: Callable[..., None]) -> torch.nn.Module:
    """The module the loop calls: `model` itself, or wrapped in DDP (after SyncBN conversion).

    SyncBatchNorm keeps the BatchNorm's own parameters and buffers (same state_dict names), so
    the optimiser, EMA and checkpoints built on `model` stay valid.
    """
    if not rank.is_distributed:
        if config.sync_bn:
            say("--sync-bn has no effect in a single process; plain BatchNorm is used")
        return model
    if config.sync_bn:
        check_sync_bn(True, backend_for(device))
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        say("BatchNorm converted to SyncBatchNorm across %d ranks", rank.world_size)
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
