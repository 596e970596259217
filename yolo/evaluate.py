"""Scoring a saved checkpoint on one split of a dataset: `evaluate_checkpoint(weights, data, split)`.

Training validates its EMA weights on `val` after every epoch, and a search picks its winner by
those numbers, so they are optimistic for the winner; its score on `test`, a split the search
never saw, is the honest one. This module gives that score, and any other split's, with the
loader, thresholds and loss that training's validation uses, so that the numbers of different
splits (and of training's own epochs) compare like with like.
"""

from __future__ import annotations

from pathlib import Path

import torch

from yolo.checkpoint import Checkpoint, load_model
from yolo.data import DataConfig, DatasetIndex, load_data_config, scan_dataset
from yolo.device import select_device
from yolo.fitness import DEFAULT_FITNESS_WEIGHTS
from yolo.hyp import Hyperparameters
from yolo.loader import DatasetCache, DetectionDataset, create_dataloader
from yolo.loss import DetectionLoss
from yolo.val import ValResult, inference_copy, validate

# Rectangular batches get half a stride of padding beyond their images, as YOLOv5's val.py.
VAL_PAD = 0.5


def split_loader(
    data: DataConfig, split: str, img_size: int, batch_size: int, hyp: Hyperparameters, *, workers: int = 0,
    dataset_cache: DatasetCache | None = None,
) -> tuple[torch.utils.data.DataLoader, DatasetIndex]:
    """The loader validation reads a split with (no augmentation, letterboxed into rectangular
    batches of `batch_size`, unshuffled), and the scanned index behind it.

    `dataset_cache` shares scanned labels and resized images with the trainings of this process.
    A split that does not exist is the ValueError of `DataConfig.split_files`.
    """
    files = data.split_files(split)
    index = (dataset_cache.scan if dataset_cache is not None else scan_dataset)(files, data.nc)
    dataset = DetectionDataset(index, img_size, hyp, augment=False, rect=True, batch_size=batch_size, pad=VAL_PAD,
                               dataset_cache=dataset_cache)
    return create_dataloader(dataset, batch_size, shuffle=False, workers=workers, seed=0), index


def require_same_classes(weights: str | Path, checkpoint: Checkpoint, data: DataConfig) -> None:
    """Weights for another number of classes than the data names cannot be scored on it: a
    one-line ValueError up front, not an index error deep in the loss."""
    nc = int(checkpoint.model_config["nc"])
    if nc != data.nc:
        raise ValueError(f"{weights} predicts {nc} classes but {data.yaml_path} names {data.nc}")


def checkpoint_hyp(checkpoint: Checkpoint) -> Hyperparameters:
    """The hyperparameters the checkpoint was trained with (its loss gains and anchor threshold
    define the val losses); YOLOv5's defaults for a file that records none."""
    return Hyperparameters.from_dict(checkpoint.hyp) if checkpoint.hyp else Hyperparameters()


def evaluate_checkpoint(
    weights: str | Path, data: str | Path, split: str, *, img_size: int, batch_size: int = 32,
    device: str = "cpu", fitness_weights: tuple[float, float, float, float] = DEFAULT_FITNESS_WEIGHTS,
    workers: int = 0, dataset_cache: DatasetCache | None = None, progress: bool = False,
) -> ValResult:
    """Validate `weights` (an evolver checkpoint or a YOLOv5 .pt; their EMA weights) on `split`
    ("train", "val" or "test") of the data yaml `data`.

    Everything is as in training's validation after an epoch: the weights fused and channels-last,
    conf 0.001, NMS IoU 0.6, 300 detections per image, the checkpoint's own loss (so val losses
    are reported), mixed precision on a GPU. `batch_size` is the val batch, which training makes
    twice its own: evaluating a run's last.pt on "val" with that batch and its img_size repeats
    the final epoch's metrics. A split the yaml lacks, one without a usable image, or weights for
    another number of classes are ValueErrors with a one-line message.
    """
    config = load_data_config(data)
    torch_device = select_device(device)
    model, checkpoint = load_model(weights, torch_device)
    require_same_classes(weights, checkpoint, config)
    hyp = checkpoint_hyp(checkpoint)
    loader, index = split_loader(config, split, img_size, batch_size, hyp, workers=workers,
                                 dataset_cache=dataset_cache)
    if not len(index):
        raise ValueError(f"{config.yaml_path}: no usable images in the '{split}' split ({index.summary()})")
    return validate(
        inference_copy(model), loader, nc=config.nc, names=config.names, device=torch_device,
        loss_fn=DetectionLoss.from_model(model, hyp, img_size), fitness_weights=fitness_weights,
        amp=torch_device.type == "cuda", progress=progress,
    )
