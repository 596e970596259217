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
    best, best_distortion = None, np.inf
    for _ in range(_KMEANS_RESTARTS):
        centroids = points[rng.choice(len(points), size=k, replace=False)]
        for _ in range(_KMEANS_MAX_ITER):
            dist = np.linalg.norm(points[:, None] - centroids[None], axis=2)  # [n, k]
            nearest = dist.argmin(1)
            counts = np.bincount(nearest, minlength=k)
            if (counts == 0).any():
                break
            sums = np.zeros_like(centroids)
            np.add.at(sums, nearest, points)
            updated = sums / counts[:, None]
            converged = np.allclose(updated, centroids)
            centroids = updated
            if converged:
                break
        dist = np.linalg.norm(points[:, None] - centroids[None], axis=2)
        nearest = dist.argmin(1)
        if len(np.unique(nearest)) < k:
            continue
        distortion = dist.min(1).mean()
        if distortion < best_distortion:
            best, best_distortion = centroids, distortion
    return best


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
    fitness = anchor_fitness(wh, anchors, anchor_t)
    for _ in range(generations):
        factor = np.ones_like(anchors)
        while (factor == 1).all():  # guarantee that something mutates
            mutate = rng.random(anchors.shape) < _MUTATION_PROB
            step = rng.random() * rng.standard_normal(anchors.shape) * _MUTATION_SIGMA
            factor = (mutate * step + 1).clip(0.3, 3.0)
        candidate = (anchors * factor).clip(min=MIN_BOX_SIDE)
        candidate_fitness = anchor_fitness(wh, candidate, anchor_t)
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
