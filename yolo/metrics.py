"""Detection metrics that reproduce COCOeval's bbox mAP, computed fast enough to run every epoch.

Why not just call pycocotools: it walks every (image, category, area range) in Python and is the
slowest part of a short validation. Why not YOLOv5's own AP: its numbers drift from COCO's
(different matching, interpolation and detection cap), and fitness is compared against the
COCO-style numbers people quote. So this module keeps COCO's exact rules (area 'all', maxDets 100,
no crowd boxes) and vectorises the work:

- per image, detections are stably sorted by score (descending) and capped at 100 per class;
- one class-masked IoU matrix per image, in float64 on [x1, y1, x2, y2] with no "+1" and no eps;
- greedy matching for all 10 IoU thresholds at once: each detection, in score order, takes the
  still-unmatched same-class ground truth with the highest IoU >= the threshold (ties go to the
  later ground truth, as in COCOeval's `iou >= best` loop); when no ground truth is wanted by
  two detections, the loop is skipped because matching cannot conflict;
- per class, a stable (mergesort) score sort across images, the precision envelope, sampled at
  recall 0:0.01:1 with `searchsorted(..., 'left')`; classes without ground truth are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from yolo.fitness import DEFAULT_FITNESS_WEIGHTS, FITNESS_METRICS
from yolo.fitness import fitness as weighted_fitness

# Built exactly as COCOeval builds them, so threshold comparisons agree bit for bit.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETECTIONS = 100  # per image and class, COCO's maxDets[-1]
CONFIDENCE_GRID = np.linspace(0.0, 1.0, 1000)  # where P/R curves are sampled to pick max F1


@dataclass(frozen=True, eq=False)  # eq would compare numpy arrays elementwise and raise
class DetectionMetrics:
    """Result of one evaluation; the per-class arrays are aligned with `classes`.

    `precision`/`recall` are means over classes with ground truth at the single confidence that
    maximises the class-mean F1 (see `DetectionEvaluator.compute`); `map50`/`map` are COCO's
    AP@0.5 and AP@0.5:0.95. With no ground truth at all every number is 0 (COCO reports -1).
    """

    precision: float
    recall: float
    map50: float
    map: float
    confidence: float  # the confidence threshold where the mean F1 peaks
    classes: np.ndarray  # class ids present in the ground truth, ascending
    ap50_per_class: np.ndarray
    ap_per_class: np.ndarray  # AP@0.5:0.95 of each class
    precision_per_class: np.ndarray  # at `confidence`
    recall_per_class: np.ndarray  # at `confidence`
    instances_per_class: np.ndarray  # ground-truth boxes of each class
    images: int
    instances: int  # ground-truth boxes
    detections: int  # detections evaluated, after the 100-per-image-and-class cap

    def as_vector(self) -> np.ndarray:
        """[P, R, mAP@0.5, mAP@0.5:0.95], the order YOLOv5's fitness weights expect."""
        return np.array([self.precision, self.recall, self.map50, self.map])


def fitness(metrics: DetectionMetrics, weights: Sequence[float] = DEFAULT_FITNESS_WEIGHTS) -> float:
    """The fitness (`yolo.fitness`) of these validation metrics."""
    return weighted_fitness({key: getattr(metrics, key) for key in FITNESS_METRICS}, weights)


def _to_numpy(x: torch.Tensor | np.ndarray, columns: int, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        array = x.detach().cpu().double().numpy()
    else:
        array = np.asarray(x, dtype=float)
    array = array.reshape(-1, columns) if array.size == 0 else array
    if array.ndim != 2 or array.shape[1] != columns:
        raise ValueError(f"{what} must have shape [n, {columns}], got {tuple(array.shape)}")
    return array


def coco_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes [N, 4] x [M, 4] -> [N, M], with COCO's rule (no +1, no eps)."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def _cap_per_class(classes: np.ndarray, limit: int) -> np.ndarray:
    """Mask keeping the first `limit` entries of each class (input already in score order)."""
    by_class = np.argsort(classes, kind="stable")
    sorted_classes = classes[by_class]
    starts = np.flatnonzero(np.r_[True, sorted_classes[1:] != sorted_classes[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(classes)]))
    rank = np.empty(len(classes), dtype=np.int64)
    rank[by_class] = np.arange(len(classes)) - group_start
    return rank < limit


def match_detections(iou: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """COCO greedy matching: rows of `iou` [D, G] in score order -> true-positive flags [D, T].

    Entries of `iou` for pairs that may not match (different classes) must be < every threshold.
    """
    thresholds = np.minimum(thresholds, 1 - 1e-10)  # COCOeval's cap, so IoU 1.0 matches at t=1
    num_thr, num_gt = len(thresholds), iou.shape[1]
    tp = np.zeros((iou.shape[0], num_thr), dtype=bool)
    if num_gt == 0 or iou.shape[0] == 0:
        return tp
    eligible = iou >= thresholds.min()
    if eligible.sum(0).max() <= 1:  # no ground truth is contested: every detection gets its best
        return iou.max(1)[:, None] >= thresholds[None, :]
    taken = np.zeros((num_thr, num_gt), dtype=bool)
    rows = np.arange(num_thr)
    for d in np.flatnonzero(eligible.any(1)):
        open_ = (iou[d][None, :] >= thresholds[:, None]) & ~taken
        scores = np.where(open_, iou[d][None, :], -1.0)
        best = num_gt - 1 - scores[:, ::-1].argmax(1)  # last index among equal best IoUs
        hit = open_[rows, best]
        taken[rows[hit], best[hit]] = True
        tp[d] = hit
    return tp


class DetectionEvaluator:
    """Accumulates detections image by image; `compute()` returns COCO-equivalent metrics."""

    def __init__(self, nc: int, names: list[str] | None = None) -> None:
        if names is not None and len(names) != nc:
            raise ValueError(f"{len(names)} names given for nc={nc}")
        self.nc = nc
        self.names = list(names) if names is not None else [str(i) for i in range(nc)]
        self.reset()

    def reset(self) -> None:
        self._scores: list[np.ndarray] = []
        self._classes: list[np.ndarray] = []
        self._true_positives: list[np.ndarray] = []
        self._instances = np.zeros(self.nc, dtype=np.int64)
        self._images = 0

    def update(self, detections: torch.Tensor, ground_truth: torch.Tensor) -> None:
        """Add one image: detections [n, 6] = x1, y1, x2, y2, conf, cls and ground truth
        [m, 5] = cls, x1, y1, x2, y2, both in the same pixel space (the original image's, for
        numbers comparable with COCO's).
        """
        det = _to_numpy(detections, 6, "detections")
        gt = _to_numpy(ground_truth, 5, "ground_truth")
        det_cls, gt_cls = det[:, 5].astype(np.int64), gt[:, 0].astype(np.int64)
        for name, cls in (("detections", det_cls), ("ground_truth", gt_cls)):
            if len(cls) and (cls.min() < 0 or cls.max() >= self.nc):
                raise ValueError(f"{name} has class ids outside [0, {self.nc})")
        self._images += 1
        self._instances += np.bincount(gt_cls, minlength=self.nc)
        order = np.argsort(-det[:, 4], kind="mergesort")
        det, det_cls = det[order], det_cls[order]
        if len(det) > MAX_DETECTIONS:
            keep = _cap_per_class(det_cls, MAX_DETECTIONS)
            det, det_cls = det[keep], det_cls[keep]
        iou = coco_iou(det[:, :4], gt[:, 1:])
        iou[det_cls[:, None] != gt_cls[None, :]] = -1.0
        self._scores.append(det[:, 4])
        self._classes.append(det_cls)
        self._true_positives.append(match_detections(iou))

    def compute(self) -> DetectionMetrics:
        """Per-class COCO AP plus YOLOv5-style P/R at the confidence of maximal mean F1.

        P/R: for each class, precision and recall at IoU 0.5 after each detection (in score
        order) are linearly interpolated onto a 1000-point confidence grid (precision 1, recall 0
        above the top score); F1 is averaged over classes with ground truth and the grid index
        with the largest mean F1 (first one on ties, no smoothing) gives P, R and `confidence`.
        """
        scores = np.concatenate([np.zeros(0), *self._scores])
        classes = np.concatenate([np.zeros(0, np.int64), *self._classes])
        tp = np.concatenate([np.zeros((0, len(IOU_THRESHOLDS)), bool), *self._true_positives])
        order = np.argsort(-scores, kind="mergesort")  # images in update order break ties, as COCO
        order = order[np.argsort(classes[order], kind="stable")]
        scores, classes, tp = scores[order], classes[order], tp[order]
        bounds = np.searchsorted(classes, np.arange(self.nc + 1))
        present = np.flatnonzero(self._instances > 0)
        k = len(present)
        ap_by_threshold = np.zeros((k, len(IOU_THRESHOLDS)))
        p_curve, r_curve = np.zeros((k, len(CONFIDENCE_GRID))), np.zeros((k, len(CONFIDENCE_GRID)))
        for i, c in enumerate(present):
            lo, hi = bounds[c], bounds[c + 1]
            if hi == lo:
                continue
            tpc = np.cumsum(tp[lo:hi], axis=0).astype(float)
            fpc = np.cumsum(~tp[lo:hi], axis=0).astype(float)
            recall = tpc / self._instances[c]
            precision = tpc / (fpc + tpc + np.spacing(1))
            ap_by_threshold[i] = _coco_average_precision(recall, precision)
            p_curve[i] = np.interp(-CONFIDENCE_GRID, -scores[lo:hi], precision[:, 0], left=1)
            r_curve[i] = np.interp(-CONFIDENCE_GRID, -scores[lo:hi], recall[:, 0], left=0)
        f1 = 2 * p_curve * r_curve / (p_curve + r_curve + 1e-16)
        best = int(f1.mean(0).argmax()) if k else 0
        p, r = p_curve[:, best], r_curve[:, best]
        ap50, ap = ap_by_threshold[:, 0], ap_by_threshold.mean(1)
        return DetectionMetrics(
            precision=_mean(p), recall=_mean(r), map50=_mean(ap50), map=_mean(ap),
            confidence=float(CONFIDENCE_GRID[best]), classes=present, ap50_per_class=ap50,
            ap_per_class=ap, precision_per_class=p, recall_per_class=r,
            instances_per_class=self._instances[present].copy(), images=self._images,
            instances=int(self._instances.sum()), detections=len(scores),
        )


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else 0.0


def _coco_average_precision(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """AP per IoU threshold from cumulative curves [D, T]: COCO's 101-point interpolated AP."""
    envelope = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
    ap = np.empty(recall.shape[1])
    for t in range(recall.shape[1]):
        idx = np.searchsorted(recall[:, t], RECALL_POINTS, side="left")
        sampled = np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1), t], 0.0)
        ap[t] = sampled.mean()
    return ap


def ap_table(metrics: DetectionMetrics, names: list[str]) -> str:
    """Fixed-width per-class lines (labels, P, R, AP50, AP50-95) under an 'all' row, for logs."""
    row = "{:>20} {:>8} {:>8.3f} {:>8.3f} {:>8.3f} {:>8.3f}"
    header = "{:>20} {:>8} {:>8} {:>8} {:>8} {:>8}"
    lines = [header.format("class", "labels", "P", "R", "AP50", "AP")]
    lines.append(row.format("all", metrics.instances, *metrics.as_vector()))
    for i, c in enumerate(metrics.classes):
        name = names[c] if c < len(names) else str(c)
        lines.append(row.format(
            name, metrics.instances_per_class[i], metrics.precision_per_class[i],
            metrics.recall_per_class[i], metrics.ap50_per_class[i], metrics.ap_per_class[i],
        ))
    return "\n".join(lines)
