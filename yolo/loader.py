"""Samples and batches: the training / validation Dataset over a scanned index, and its loader.

Every random choice of a sample is drawn from `np.random.default_rng([seed, epoch, index])`, so a
sample is the same whichever worker process builds it and however many there are.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from yolo.augment import (
    augment_hsv, flip_lr, flip_ud, letterbox, mixup, mosaic4, mosaic_centre, random_perspective,
)
from yolo.boxes import xywhn2xyxy, xyxy2xywhn
from yolo.data import DatasetIndex, scan_dataset
from yolo.hyp import Hyperparameters

log = logging.getLogger(__name__)

Shapes = tuple[tuple[int, int], tuple[tuple[float, float], tuple[float, float]]]


class DatasetCache:
    """Scanned dataset indexes and decoded, resized images shared by successive trainings in one
    process (an evolution worker trains many trials on the same data, which must not change
    meanwhile). Images are keyed by path, size and resampling, so a train set (linear) and a val
    set (area) of the same files never mix. Thread-safe; unbounded, so give one to a process
    whose datasets fit in RAM, as `cache_images` already assumes."""

    def __init__(self) -> None:
        self._images: dict[tuple[str, int, int], np.ndarray] = {}
        self._indexes: dict[tuple[str, int], DatasetIndex] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def scan(self, image_files: Sequence[str | Path], nc: int) -> DatasetIndex:
        """`scan_dataset(image_files, nc)`, done once per list of files."""
        key = (tuple(str(f) for f in image_files), nc)
        with self._lock:
            index = self._indexes.get(key)
        if index is None:
            index = scan_dataset(image_files, nc)
            with self._lock:
                self._indexes[key] = index
        return index

    def get(self, path: Path, img_size: int, interpolation: int) -> np.ndarray | None:
        with self._lock:
            img = self._images.get((str(path), img_size, interpolation))
            if img is None:
                self.misses += 1
            else:
                self.hits += 1
            return img

    def put(self, path: Path, img_size: int, interpolation: int, img: np.ndarray) -> None:
        img.setflags(write=False)  # shared across datasets: augmentation must copy, never write
        with self._lock:
            self._images[(str(path), img_size, interpolation)] = img

    def __len__(self) -> int:
        return len(self._images)


class DetectionDataset(torch.utils.data.Dataset):
    """Samples for training (mosaic, warp, mixup, HSV, flips) or validation (letterbox, rect).

    Call `set_epoch(epoch)` before iterating a loader: the epoch lives in shared memory so
    persistent worker processes see it too. `copy_paste` is ignored: it needs segments.
    """

    def __init__(
        self, index: DatasetIndex, img_size: int, hyp: Hyperparameters, augment: bool,
        cache_images: bool = False, rect: bool = False, batch_size: int = 16, stride: int = 32,
        pad: float = 0.0, seed: int = 0, dataset_cache: DatasetCache | None = None,
    ) -> None:
        self.img_size, self.hyp, self.augment, self.rect, self.seed = img_size, hyp, augment, rect, seed
        self.batch_size = batch_size
        self.records = list(index.records)
        self.batch_shapes: np.ndarray | None = None
        if rect:  # images of similar aspect share a batch, padded only to that batch's shape
            order, self.batch_shapes = rect_batch_shapes(index.shapes, img_size, batch_size, stride, pad)
            self.records = [self.records[i] for i in order]
        self._warp = dict(degrees=hyp.degrees, translate=hyp.translate, scale=hyp.scale,
                          shear=hyp.shear, perspective=hyp.perspective)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._cache: list[np.ndarray] | None = None
        self._shared_cache = dataset_cache
        if cache_images:
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                self._cache = list(pool.map(self._read_resized, range(len(self.records))))

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def _read_resized(self, i: int) -> np.ndarray:
        """Read image i and resize it so its long side is img_size (via the shared cache if any)."""
        path = self.records[i].path
        # INTER_AREA is the better shrink; augmentation resamples anyway, so there go fast.
        shrink = cv2.INTER_LINEAR if self.augment else cv2.INTER_AREA
        if self._shared_cache is not None:
            cached = self._shared_cache.get(path, self.img_size, shrink)
            if cached is not None:
                return cached
        img = cv2.imread(str(path))
        if img is None:
            raise OSError(f"cannot read image {path}")
        h0, w0 = img.shape[:2]
        r = self.img_size / max(h0, w0)
        if r != 1:
            interp = cv2.INTER_LINEAR if r > 1 else shrink
            img = cv2.resize(img, (max(1, round(w0 * r)), max(1, round(h0 * r))), interpolation=interp)
        if self._shared_cache is not None:
            self._shared_cache.put(path, self.img_size, shrink, img)
        return img

    def load_image(self, i: int) -> np.ndarray:
        """Image i resized to long side img_size (from the RAM cache when there is one)."""
        return self._cache[i] if self._cache is not None else self._read_resized(i)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str, Shapes | None]:
        """(uint8 RGB [3, H, W], labels [n, 6] = (0, cls, cx, cy, w, h), path, shapes).

        `shapes` = ((h0, w0), ((gain_h, gain_w), (pad_w, pad_h))) maps boxes back to the original
        image; a mosaic has no single original, so there it is None.
        """
        rng = np.random.default_rng([self.seed, self.epoch, i])
        hyp, shapes = self.hyp, None
        if self.augment and not self.rect and rng.random() < hyp.mosaic:
            img, boxes = self._mosaic(i, rng)
            if rng.random() < hyp.mixup:  # YOLOv5 mixes only mosaics, with another mosaic
                img, boxes = mixup(img, boxes, *self._mosaic(int(rng.integers(len(self))), rng), rng)
        else:
            img, boxes, shapes = self._letterboxed(i)
            if self.augment:
                img, boxes = random_perspective(img, boxes, rng, **self._warp)
        h, w = img.shape[:2]
        labels = np.zeros((len(boxes), 5), dtype=np.float32)
        labels[:, 0] = boxes[:, 0]
        labels[:, 1:] = xyxy2xywhn(boxes[:, 1:5], w, h)
        if self.augment:
            img = augment_hsv(img, hyp.hsv_h, hyp.hsv_s, hyp.hsv_v, rng)
            if rng.random() < hyp.flipud:
                img, labels = flip_ud(img, labels)
            if rng.random() < hyp.fliplr:
                img, labels = flip_lr(img, labels)
        out = torch.zeros((len(labels), 6))
        out[:, 1:] = torch.from_numpy(labels)
        chw_rgb = np.ascontiguousarray(img.transpose(2, 0, 1)[::-1])
        return torch.from_numpy(chw_rgb), out, str(self.records[i].path), shapes

    def _letterboxed(self, i: int) -> tuple[np.ndarray, np.ndarray, Shapes]:
        img = self.load_image(i)
        h0, w0 = self.records[i].shape
        h, w = img.shape[:2]
        rect_shape = None if self.batch_shapes is None else self.batch_shapes[i // self.batch_size].tolist()
        shape = self.img_size if rect_shape is None else tuple(rect_shape)
        img, (gain_w, gain_h), (pad_w, pad_h) = letterbox(img, shape, auto=False, scaleup=self.augment)
        lab = self.records[i].labels
        boxes = np.empty((len(lab), 5), dtype=np.float32)
        boxes[:, 0] = lab[:, 0]
        boxes[:, 1:] = xywhn2xyxy(lab[:, 1:5], w * gain_w, h * gain_h, pad_w, pad_h)
        shapes = ((h0, w0), ((h * gain_h / h0, w * gain_w / w0), (pad_w, pad_h)))
        return img, boxes, shapes

    def _mosaic(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Item i and three random others on a 2s canvas, warped and cropped back to s."""
        picks = [i, *(int(k) for k in rng.integers(0, len(self), size=3))]
        s = self.img_size
        canvas, boxes = mosaic4([self.load_image(k) for k in picks], [self.records[k].labels for k in picks],
                                s, mosaic_centre(rng, s))
        return random_perspective(canvas, boxes, rng, **self._warp, border=(-(s // 2), -(s // 2)))

    @staticmethod
    def collate(batch: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor, tuple, tuple]:
        """Stack images; concatenate labels with each row's image index in column 0."""
        imgs, labels, paths, shapes = zip(*batch)
        targets = torch.cat(labels, 0)
        counts = torch.tensor([len(lab) for lab in labels])
        targets[:, 0] = torch.repeat_interleave(torch.arange(len(labels)), counts).to(targets.dtype)
        return torch.stack(imgs, 0), targets, paths, shapes


def rect_batch_shapes(
    shapes: Sequence[tuple[int, int]], img_size: int, batch_size: int, stride: int, pad: float
) -> tuple[np.ndarray, np.ndarray]:
    """Order images by aspect (h/w) and give each batch the smallest stride-multiple shape (h, w).

    Returns (order, batch_shapes [n_batches, 2]). A batch of wide images gets shape
    ceil(img_size * (max h/w, 1) / stride + pad) * stride, tall ones the mirror, mixed ones a square.
    """
    hw = np.array(shapes, dtype=np.float64).reshape(-1, 2)
    aspect = hw[:, 0] / hw[:, 1]
    order = np.argsort(aspect, kind="stable")
    aspect = aspect[order]
    n_batches = (len(aspect) + batch_size - 1) // batch_size
    ratios = np.ones((n_batches, 2))
    for b in range(n_batches):
        chunk = aspect[b * batch_size : (b + 1) * batch_size]
        if chunk.max() < 1:
            ratios[b] = (chunk.max(), 1.0)
        elif chunk.min() > 1:
            ratios[b] = (1.0, 1.0 / chunk.min())
    return order, (np.ceil(ratios * img_size / stride + pad).astype(int) * stride)


class EpochShuffle(torch.utils.data.Sampler[int]):
    """A permutation drawn from (seed, the dataset's epoch) alone, optionally one rank's shard.

    DataLoader's own shuffling shares its Generator with the per-iterator base seed, which a
    loader with persistent workers draws once and one without draws every epoch, so the order
    would depend on the worker count. This order does not, and a resumed run repeats it.

    Under DDP every rank draws the same permutation, pads it by wrapping around to a multiple of
    `world_size` (as DistributedSampler does) and takes every `world_size`-th index from `rank`:
    the shards are disjoint and cover the dataset, and a sample's augmentation still comes from
    rng(seed, epoch, index), so it is the same whichever rank builds it.
    """

    def __init__(self, dataset: DetectionDataset, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.dataset, self.seed, self.rank, self.world_size = dataset, seed, rank, world_size

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.world_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.dataset.epoch])
        order = rng.permutation(len(self.dataset))
        if self.world_size > 1:
            padded = len(self) * self.world_size
            order = np.resize(order, padded)[self.rank :: self.world_size]  # resize repeats from the start
        return iter(order.tolist())


def create_dataloader(
    dataset: DetectionDataset, batch_size: int, shuffle: bool, workers: int, seed: int,
    rank: int = 0, world_size: int = 1,
) -> torch.utils.data.DataLoader:
    """Batches of `dataset`, reshuffled per `dataset.set_epoch` when `shuffle`; same for any `workers`.

    With `world_size` > 1 (DDP training), each rank's loader yields only its shard of every
    epoch's permutation; `batch_size` is then the per-rank batch."""
    if world_size > 1 and not shuffle:
        raise ValueError("sharding across ranks is for the shuffled training loader only")
    if dataset.rect and (shuffle or batch_size != dataset.batch_size):
        log.warning("rect dataset: batches must follow its batch_size %d unshuffled; doing so",
                    dataset.batch_size)
        shuffle, batch_size = False, dataset.batch_size
    generator = torch.Generator()  # only seeds DataLoader's per-worker base seed; we draw nothing from it
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=EpochShuffle(dataset, seed, rank, world_size) if shuffle else None,
        num_workers=workers, persistent_workers=workers > 0, collate_fn=DetectionDataset.collate,
        generator=generator, pin_memory=torch.cuda.is_available(),
    )
