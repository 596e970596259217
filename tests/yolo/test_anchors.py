"""Tests for anchor fitting (k-means + genetic refinement of the anchor_t ratio metric)."""

from __future__ import annotations

import numpy as np
import pytest

from yolo.anchors import (
    anchor_fitness,
    anchors_for_levels,
    best_possible_recall,
    fit_anchors,
    label_box_sizes,
)

DEFAULT_ANCHORS = np.array(
    [[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], [156, 198], [373, 326]],
    dtype=np.float64,
)


def clustered_sizes(centres: list[tuple[float, float]], per_cluster: int = 200, spread: float = 0.05, seed: int = 1):
    rng = np.random.default_rng(seed)
    parts = [np.array(c) * np.exp(rng.normal(0, spread, (per_cluster, 2))) for c in centres]
    return np.concatenate(parts)


def test_deterministic_with_seed() -> None:
    wh = clustered_sizes([(12, 16), (40, 30), (90, 120)], spread=0.3)
    a = fit_anchors(wh, 6, anchor_t=4.0, img_size=320, generations=200, seed=3)
    b = fit_anchors(wh, 6, anchor_t=4.0, img_size=320, generations=200, seed=3)
    assert np.array_equal(a, b)
    assert a.shape == (6, 2)
    c = fit_anchors(wh, 6, anchor_t=4.0, img_size=320, generations=200, seed=4)
    assert not np.array_equal(a, c)


def test_recovers_clusters_sorted_by_area() -> None:
    centres = [(12, 16), (40, 30), (90, 120)]
    wh = clustered_sizes(centres)
    anchors = fit_anchors(wh, 3, anchor_t=4.0, img_size=320, generations=300, seed=0)
    assert np.all(np.diff(anchors.prod(1)) > 0)
    np.testing.assert_allclose(anchors, np.array(centres), rtol=0.15)


def test_fitted_bpr_at_least_default_on_clustered_data() -> None:
    # Elongated boxes that COCO's default anchors fit badly at anchor_t = 4.
    wh = clustered_sizes([(200, 12), (12, 200), (80, 5), (300, 300)], spread=0.1)
    default_bpr, _ = best_possible_recall(wh, DEFAULT_ANCHORS, 4.0)
    fitted = fit_anchors(wh, 9, anchor_t=4.0, img_size=640, generations=300, seed=0)
    bpr, matches = best_possible_recall(wh, fitted, 4.0)
    assert default_bpr < 0.9
    assert bpr >= default_bpr and bpr == pytest.approx(1.0)
    assert matches >= 1.0
    assert anchor_fitness(wh, fitted, 4.0) > anchor_fitness(wh, DEFAULT_ANCHORS, 4.0)


def test_genetic_refinement_never_lowers_fitness() -> None:
    wh = clustered_sizes([(15, 15), (60, 20), (30, 90)], spread=0.4)
    kmeans_only = fit_anchors(wh, 3, 4.0, 320, generations=0, seed=0)
    refined = fit_anchors(wh, 3, 4.0, 320, generations=300, seed=0)
    assert anchor_fitness(wh, refined, 4.0) >= anchor_fitness(wh, kmeans_only, 4.0)


@pytest.mark.parametrize("per_level", [2, 3, 5])
def test_levels_shape_and_smallest_first(per_level: int) -> None:
    wh = clustered_sizes([(10, 12), (30, 40), (80, 60), (150, 200)], spread=0.3)
    anchors = anchors_for_levels(wh, per_level, n_levels=3, anchor_t=4.0, img_size=320, seed=0, generations=50)
    assert anchors.shape == (3, per_level, 2)
    areas = anchors.reshape(-1, 2).prod(1)
    assert np.all(np.diff(areas) >= 0)  # P3 gets the smallest, P5 the largest
    assert (anchors >= 2.0).all()


def test_tiny_boxes_are_ignored() -> None:
    big = np.full((50, 2), 50.0)
    tiny = np.full((500, 2), 1.0)
    # With no refinement, the single k-means centroid is the mean of the boxes it saw.
    anchor = fit_anchors(np.concatenate([big, tiny]), 1, anchor_t=4.0, img_size=320, generations=0)
    np.testing.assert_allclose(anchor, [[50.0, 50.0]])
    with pytest.raises(ValueError):
        fit_anchors(tiny, 1, anchor_t=4.0, img_size=320)


def test_fewer_boxes_than_anchors_still_gives_anchors() -> None:
    anchors = fit_anchors(np.array([[20.0, 30.0], [60.0, 40.0]]), 4, 4.0, 320, generations=100, seed=0)
    assert anchors.shape == (4, 2) and np.isfinite(anchors).all()
    assert best_possible_recall(np.array([[20.0, 30.0], [60.0, 40.0]]), anchors, 4.0)[0] == 1.0


def test_best_possible_recall_by_hand() -> None:
    wh = np.array([[10.0, 10.0], [100.0, 10.0], [36.0, 38.0]])
    anchors = np.array([[[10.0, 10.0]], [[40.0, 40.0]]])  # [nl=2, na=1, 2]: pooled
    bpr, matches = best_possible_recall(wh, anchors, 4.0)
    # box 1 matches only 10x10 (10/40 = 0.25 is not above 1/4), box 2 neither (ratio 10 and 4),
    # box 3 both (10/38 > 1/4 and 36/40 > 1/4).
    assert bpr == pytest.approx(2 / 3)
    assert matches == pytest.approx((1 + 0 + 2) / 3)


def test_label_box_sizes_resize_long_side() -> None:
    labels = [np.array([[0, 0.5, 0.5, 0.5, 0.25], [3, 0.1, 0.1, 1.0, 1.0]]), np.zeros((0, 5))]
    shapes = [(480, 640), (1000, 500)]  # (h, w)
    wh = label_box_sizes(labels, shapes, img_size=320)
    np.testing.assert_allclose(wh, [[160.0, 60.0], [320.0, 240.0]])
    portrait = label_box_sizes([np.array([[0, 0.5, 0.5, 0.5, 0.5]])], [(1000, 500)], 320)
    np.testing.assert_allclose(portrait, [[80.0, 160.0]])
    assert label_box_sizes([], [], 320).shape == (0, 2)
