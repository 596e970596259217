"""Fitting anchors to a dataset's box sizes, as YOLOv5's AutoAnchor does.

Needed whenever the number of anchors per level is not the default 3 (the `anchors` hyp is
evolved), and useful when the default COCO anchors fit a dataset badly. The fit is a k-means on
box widths/heights, then a genetic refinement of the same ratio metric the loss uses to match
targets to anchors (a target matches when neither side ratio exceeds anchor_t), so the anchors
are judged by what training will actually see.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Boxes smaller than this (both sides, pixels) are noise for anchor fitting, as in YOLOv5.
MIN_BOX_SIDE = 2.0
_MUTATION_PROB = 0.9
_MUTATION_SIGMA = 0.1
_KMEANS_RESTARTS = 30
_KMEANS_MAX_ITER = 100
_KMEANS_MAX_POINTS = 20_000
_KMEANS_TOLERANCE = 1e-5


def _best_ratio(wh: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per box and anchor, the worse of the two side ratios (<= 1); and each box's best anchor."""
    r = wh[:, None] / anchors[None]
    worst_side = np.minimum(r, 1 / r).min(2)  # [n, k]
    return worst_side, worst_side.max(1)


def anchor_fitness(wh: np.ndarray, anchors: np.ndarray, anchor_t: float) -> float:
    """Mean best-anchor ratio over boxes, counting only boxes some anchor would match."""
    wh = np.asarray(wh, dtype=np.float64)
    _, best = _best_ratio(wh, np.asarray(anchors, dtype=np.float64).reshape(-1, 2))
    return float((best * (best > 1 / anchor_t)).mean())


def best_possible_recall(wh: np.ndarray, anchors: np.ndarray, anchor_t: float) -> tuple[float, float]:
    """(share of boxes that some anchor can match, mean number of anchors matching a box).

    `anchors` may be [k, 2] or [nl, na, 2]; all are pooled, as the loss tries every level.
    """
    wh = np.asarray(wh, dtype=np.float64)
    worst_side, best = _best_ratio(wh, np.asarray(anchors, dtype=np.float64).reshape(-1, 2))
    threshold = 1 / anchor_t
    return float((best > threshold).mean()), float((worst_side > threshold).sum(1).mean())


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray | None:
    """Lloyd's k-means with random restarts; the centroids of least distortion, or None.

    None when every restart lost a cluster (fewer distinct points than k), which is when YOLOv5
    falls back to random anchors too.
    """
    if len(points) > _KMEANS_MAX_POINTS:  # a random subset pins the clusters down just as well
        points = points[rng.choice(len(points), size=_KMEANS_MAX_POINTS, replace=False)]
    best, best_distortion = None, np.inf
    for _ in range(_KMEANS_RESTARTS):
        centroids = points[rng.choice(len(points), size=k, replace=False)]
        distortion = np.inf
        for _ in range(_KMEANS_MAX_ITER):
            dist_sq = _squared_distances(points, centroids)
            nearest = dist_sq.argmin(1)
            counts = np.bincount(nearest, minlength=k)
            if (counts == 0).any():  # a lost cluster: this restart cannot give k anchors
                distortion = np.inf
                break
            previous, distortion = distortion, np.sqrt(dist_sq.min(1)).mean()
            if previous - distortion <= _KMEANS_TOLERANCE:  # scipy's stopping rule
                break
            sums = [np.bincount(nearest, weights=points[:, d], minlength=k) for d in range(points.shape[1])]
            centroids = np.stack(sums, 1) / counts[:, None]
        if distortion < best_distortion:
            best, best_distortion = centroids, distortion
    return best


def _squared_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return ((points[:, None] - centroids[None]) ** 2).sum(2)


class _LogRatioFitness:
    """anchor_fitness for one fixed set of boxes, fast enough to call a thousand times.

    min(r, 1/r) over both sides equals exp(-max |log box - log anchor|), so the logs of the
    boxes are taken once and each call costs a few [n, k] float32 operations.
    """

    def __init__(self, wh: np.ndarray, anchor_t: float) -> None:
        self.log_wh = np.log(np.maximum(wh, 1e-6)).astype(np.float32)  # a 0-px side matches nothing
        self.threshold = 1 / anchor_t

    def __call__(self, anchors: np.ndarray) -> float:
        log_anchors = np.log(anchors).astype(np.float32)
        gap_w = np.abs(self.log_wh[:, 0:1] - log_anchors[None, :, 0])
        gap_h = np.abs(self.log_wh[:, 1:2] - log_anchors[None, :, 1])
        best = np.exp(-np.maximum(gap_w, gap_h).min(1))
        return float((best * (best > self.threshold)).mean())


def _sort_by_area(anchors: np.ndarray) -> np.ndarray:
    return anchors[np.argsort(anchors.prod(1), kind="stable")]


def fit_anchors(
    wh: np.ndarray,
    n_anchors: int,
    anchor_t: float,
    img_size: int,
    generations: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Anchors [n_anchors, 2] in pixels at img_size, sorted by area, fitted to box sizes `wh`.

    Same seed and data give the same anchors. Raises ValueError when no box is large enough.
    """
    if n_anchors < 1:
        raise ValueError(f"n_anchors must be >= 1, got {n_anchors}")
    rng = np.random.default_rng(seed)
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    wh = wh[(wh >= MIN_BOX_SIDE).any(1)]
    if len(wh) == 0:
        raise ValueError(f"no boxes with a side >= {MIN_BOX_SIDE} px to fit anchors to")

    # k-means on whitened sizes (so width and height weigh alike), then back to pixels.
    scale = wh.std(0)
    scale[scale == 0] = 1.0
    centroids = _kmeans(wh / scale, n_anchors, rng) if len(wh) >= n_anchors else None
    if centroids is None:
        anchors = np.sort(rng.random(n_anchors * 2)).reshape(n_anchors, 2) * img_size
    else:
        anchors = centroids * scale
    anchors = np.clip(anchors, MIN_BOX_SIDE, None)

    # Genetic refinement: multiplicative mutations, kept only when the fitness improves.
    fitness_of = _LogRatioFitness(wh, anchor_t)
    fitness = fitness_of(anchors)
    for _ in range(generations):
        factor = np.ones_like(anchors)
        while (factor == 1).all():  # guarantee that something mutates
            mutate = rng.random(anchors.shape) < _MUTATION_PROB
            step = rng.random() * rng.standard_normal(anchors.shape) * _MUTATION_SIGMA
            factor = (mutate * step + 1).clip(0.3, 3.0)
        candidate = (anchors * factor).clip(min=MIN_BOX_SIDE)
        candidate_fitness = fitness_of(candidate)
        if candidate_fitness > fitness:
            fitness, anchors = candidate_fitness, candidate
    return _sort_by_area(anchors)


def anchors_for_levels(
    wh: np.ndarray,
    anchors_per_level: int,
    n_levels: int,
    anchor_t: float,
    img_size: int,
    seed: int = 0,
    generations: int = 1000,
) -> np.ndarray:
    """Fitted anchors [n_levels, anchors_per_level, 2] in pixels; smallest go to P3 (stride 8)."""
    fitted = fit_anchors(wh, anchors_per_level * n_levels, anchor_t, img_size, generations, seed)
    return fitted.reshape(n_levels, anchors_per_level, 2)


def label_box_sizes(
    labels: Sequence[np.ndarray], shapes: Sequence[tuple[int, int]], img_size: int
) -> np.ndarray:
    """Box sizes [n, 2] in pixels after each image is resized so its long side is img_size.

    `labels` rows are (cls, cx, cy, w, h) normalised; `shapes` the original (h, w) per image.
    """
    if len(labels) != len(shapes):
        raise ValueError(f"{len(labels)} label arrays for {len(shapes)} image shapes")
    sizes = [np.zeros((0, 2))]
    for label, (h, w) in zip(labels, shapes):
        label = np.asarray(label, dtype=np.float64).reshape(-1, 5)
        resize = img_size / max(h, w)
        sizes.append(label[:, 3:5] * np.array([w * resize, h * resize]))
    return np.concatenate(sizes, 0)
