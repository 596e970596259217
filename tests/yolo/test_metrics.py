"""COCO parity of yolo.metrics: the same detections scored by us and by pycocotools' COCOeval.

The helpers at the top (coco128 ground truth, synthetic detections, a pycocotools reference) are
public because benchmarks/eval_speed.py times the two evaluators on exactly these detections.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolo.metrics import DetectionEvaluator, DetectionMetrics, ap_table, fitness, match_detections

COCO128 = Path(os.environ.get("EVOLVER_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "datasets" / "coco128"
NC = 80


@dataclass(frozen=True)
class LabelledImage:
    """One image's ground truth in pixels: boxes [m, 5] = cls, x1, y1, x2, y2."""

    height: int
    width: int
    boxes: np.ndarray


def load_coco128(root: Path = COCO128) -> list[LabelledImage]:
    """Ground truth of coco128 in pixel xyxy (sizes read from the images, labels are normalised).

    Goes by image: an image without a label file is a background image (no boxes); a label file
    without its image (coco128 has two) cannot be put in pixels and is skipped.
    """
    images = []
    for image_file in sorted((root / "images" / "train2017").glob("*.jpg")):
        height, width = cv2.imread(str(image_file)).shape[:2]
        label_file = root / "labels" / "train2017" / f"{image_file.stem}.txt"
        rows = np.zeros((0, 5))
        if label_file.exists():
            rows = np.loadtxt(label_file, ndmin=2).reshape(-1, 5)
        cx, w = rows[:, 1] * width, rows[:, 3] * width
        cy, h = rows[:, 2] * height, rows[:, 4] * height
        boxes = np.stack([rows[:, 0], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        images.append(LabelledImage(height, width, boxes))
    return images


def make_detections(
    image: LabelledImage, rng: np.random.Generator, spurious: int = 5, drop: float = 0.2,
    duplicates: float = 0.3, wrong_class: float = 0.1,
) -> torch.Tensor:
    """Plausible detections [n, 6] for one image: jittered gt (some dropped, duplicated or given a
    wrong class) plus `spurious` random boxes, random scores, float32 like a model's output."""
    gt = image.boxes
    kept = gt[rng.random(len(gt)) >= drop]
    kept = np.concatenate([kept, kept[rng.random(len(kept)) < duplicates]])  # contested gts
    wh = np.stack([kept[:, 3] - kept[:, 1], kept[:, 4] - kept[:, 2]], axis=1)
    shift = rng.normal(0.0, 0.08, size=(len(kept), 4)) * np.tile(wh, 2)
    boxes = kept[:, 1:] + shift
    classes = kept[:, 0].copy()
    flip = rng.random(len(kept)) < wrong_class
    classes[flip] = rng.integers(0, NC, size=int(flip.sum()))
    xy = rng.random((spurious, 2)) * [image.width, image.height]
    size = rng.uniform(8, 0.5 * min(image.width, image.height), size=(spurious, 2))
    boxes = np.concatenate([boxes, np.concatenate([xy, xy + size], axis=1)])
    classes = np.concatenate([classes, rng.integers(0, NC, size=spurious)])
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1.0)
    scores = rng.random(len(boxes))
    return torch.tensor(np.column_stack([boxes, scores, classes]), dtype=torch.float32)


def pycocotools_map(
    images: list[LabelledImage], detections: list[torch.Tensor], nc: int = NC
) -> tuple[float, float]:
    """(mAP@0.5, mAP@0.5:0.95) from COCOeval bbox with default parameters, output silenced."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = coco_ground_truth(images, nc)
        ground_truth.createIndex()
        results = coco_results(detections)
        if not results:
            return 0.0, 0.0
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[1]), float(evaluation.stats[0])


def coco_ground_truth(images: list[LabelledImage], nc: int = NC) -> dict:
    """COCO-format dataset dict; ids start at 1 because COCOeval reads id 0 as 'unmatched'."""
    annotations = []
    for image_id, image in enumerate(images, start=1):
        for cls, x1, y1, x2, y2 in image.boxes.tolist():
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
            })
    return {
        "images": [
            {"id": i, "height": im.height, "width": im.width} for i, im in enumerate(images, 1)
        ],
        "categories": [{"id": c + 1, "name": str(c)} for c in range(nc)],
        "annotations": annotations,
    }


def coco_results(detections: list[torch.Tensor]) -> list[dict]:
    return [
        {"image_id": image_id, "category_id": int(cls) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
         "score": score}
        for image_id, det in enumerate(detections, start=1)
        for x1, y1, x2, y2, score, cls in det.double().tolist()
    ]


def evaluate(
    images: list[LabelledImage], detections: list[torch.Tensor], nc: int = NC
) -> DetectionMetrics:
    evaluator = DetectionEvaluator(nc)
    for image, det in zip(images, detections):
        evaluator.update(det, torch.from_numpy(image.boxes))
    return evaluator.compute()


def assert_matches_coco(
    images: list[LabelledImage], detections: list[torch.Tensor]
) -> DetectionMetrics:
    metrics = evaluate(images, detections)
    map50, map_ = pycocotools_map(images, detections)
    assert metrics.map50 == pytest.approx(map50, abs=1e-3)
    assert metrics.map == pytest.approx(map_, abs=1e-3)
    return metrics


@pytest.fixture(scope="module")
def coco128() -> list[LabelledImage]:
    if not COCO128.is_dir():
        pytest.skip("coco128 is not available")
    return load_coco128()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco128_detections_match_pycocotools(coco128: list[LabelledImage], seed: int) -> None:
    rng = np.random.default_rng(seed)
    detections = [make_detections(image, rng) for image in coco128]
    metrics = assert_matches_coco(coco128, detections)
    assert 0.2 < metrics.map < metrics.map50 < 1.0  # a non-trivial score, not a degenerate case
    assert metrics.images == len(coco128)
    assert metrics.instances == sum(len(im.boxes) for im in coco128)


def test_more_than_100_detections_per_image_and_class(coco128: list[LabelledImage]) -> None:
    """Crowded images: 100 is COCO's cap per image and class, and the lowest scores must go."""
    rng = np.random.default_rng(7)
    images = coco128[:24]
    detections = []
    for image in images:
        det = make_detections(image, rng, spurious=40, duplicates=1.0)
        crowd = make_detections(image, rng, spurious=0, drop=0.0, duplicates=1.0, wrong_class=0.0)
        crowd = crowd.repeat(max(1, 160 // max(len(crowd), 1)), 1)  # >100 of the image's classes
        crowd[:, :4] += torch.randn_like(crowd[:, :4]) * 3
        detections.append(torch.cat([det, crowd]))
    assert max(len(d) for d in detections) > 150
    metrics = assert_matches_coco(images, detections)
    assert metrics.detections < sum(len(d) for d in detections)  # the cap removed some


def test_tied_iou_goes_to_the_later_ground_truth() -> None:
    """A detection equally close (IoU 9/11) to two gts takes the later one, leaving the first to
    an exact later detection; matching the first instead would lose TPs above IoU 0.65."""
    image = LabelledImage(20, 20, np.array([[0, 0, 0, 10, 10], [0, 2, 0, 12, 10]], dtype=float))
    det = torch.tensor([[1, 0, 11, 10, 0.9, 0], [0, 0, 10, 10, 0.8, 0]], dtype=torch.float64)
    metrics = assert_matches_coco([image], [det])
    assert metrics.map50 == pytest.approx(1.0)
    # Above IoU 0.8 det 0 is a FP before the TP: AP = 51 * 0.5 / 101 at those 3 thresholds.
    assert metrics.map == pytest.approx((7 + 3 * 25.5 / 101) / 10)


def test_equal_scores_rank_in_image_order() -> None:
    """COCO breaks score ties across images by image order: the FP of image 1 comes first."""
    first = LabelledImage(50, 50, np.array([[1, 0, 0, 10, 10]], dtype=float))
    second = LabelledImage(50, 50, np.array([[0, 20, 20, 30, 30]], dtype=float))
    fp_then_tp = [
        torch.tensor([[0, 0, 10, 10, 1.0, 1], [30, 30, 40, 40, 0.9, 0]], dtype=torch.float64),
        torch.tensor([[20, 20, 30, 30, 0.9, 0]], dtype=torch.float64),
    ]
    metrics = assert_matches_coco([first, second], fp_then_tp)
    assert metrics.ap_per_class.tolist() == pytest.approx([0.5, 1.0])


def test_iou_exactly_on_a_threshold_matches_like_coco() -> None:
    """IoUs of exactly 0.5, 0.6, 0.75, 0.85, 0.9 and a hair under 0.75: COCO's `iou >= t` on
    its own linspace thresholds (a naive 0.5 + 0.05 * i gives 0.8500000000000001 and misses).
    A duplicate of each box (lower score) contests every gt, so the greedy loop runs too."""
    heights = [5.0, 6.0, 7.5, 8.5, 9.0, 7.5 - 1e-10]
    gt = np.array([[0, 20 * i, 0, 20 * i + 10, 10] for i in range(6)], dtype=float)
    image = LabelledImage(200, 200, gt)
    det = torch.tensor(
        [[20 * i, 0, 20 * i + 10, h, 0.9 - 0.1 * i, 0] for i, h in enumerate(heights)],
        dtype=torch.float64,
    )
    duplicates = det.clone()
    duplicates[:, 4] -= 0.05
    both = torch.cat([det, duplicates])
    for detections in (det, both):
        metrics = assert_matches_coco([image], [detections])
        assert metrics.map == pytest.approx(pycocotools_map([image], [detections])[1], abs=1e-12)
    # COCOeval caps a threshold at 1 - 1e-10, so a near-1 IoU passes t = 1.0.
    assert match_detections(np.array([[1 - 1e-11]]), np.array([1.0])).item()


def test_match_detections_prefers_best_then_later_gt() -> None:
    iou = np.array([[0.7, 0.7, 0.2], [0.9, 0.0, 0.0], [0.55, 0.6, 0.0]])
    tp = match_detections(iou)
    # det 0 takes gt 1 (tie -> later); det 1 takes gt 0; det 2 has nothing left at 0.5.
    assert tp[:, 0].tolist() == [True, True, False]
    assert tp[0].sum() == 5 and tp[1].sum() == 9  # 0.7 passes thresholds 0.50..0.70; 0.9 ..0.90
    # If ties went to the first gt, det 2 would have matched gt 1 at 0.5.


def test_perfect_detections_score_one(coco128: list[LabelledImage]) -> None:
    images = coco128[:32]
    detections = [
        torch.from_numpy(
            np.column_stack([im.boxes[:, 1:], np.full(len(im.boxes), 0.9), im.boxes[:, 0]])
        )
        for im in images
    ]
    metrics = evaluate(images, detections)
    assert metrics.map == pytest.approx(1.0) and metrics.map50 == pytest.approx(1.0)
    assert metrics.precision == pytest.approx(1.0) and metrics.recall == pytest.approx(1.0)
    assert fitness(metrics) == pytest.approx(1.0)


def test_no_detections_score_zero(coco128: list[LabelledImage]) -> None:
    images = coco128[:8]
    metrics = evaluate(images, [torch.zeros(0, 6) for _ in images])
    assert metrics.as_vector().tolist() == [0.0, 0.0, 0.0, 0.0]
    assert len(metrics.classes) > 0
    assert metrics.ap_per_class.tolist() == [0.0] * len(metrics.classes)
    empty = DetectionEvaluator(NC).compute()
    assert empty.images == 0 and empty.as_vector().tolist() == [0.0, 0.0, 0.0, 0.0]


def test_image_without_ground_truth_adds_false_positives(coco128: list[LabelledImage]) -> None:
    rng = np.random.default_rng(3)
    images = coco128[:16]
    detections = [make_detections(im, rng) for im in images]
    background = LabelledImage(480, 640, np.zeros((0, 5)))
    gt_classes = np.unique(np.concatenate([im.boxes[:, 0] for im in images]))
    spurious = make_detections(LabelledImage(480, 640, np.zeros((0, 5))), rng, spurious=30)
    spurious[:, 5] = torch.from_numpy(rng.choice(gt_classes, size=30)).float()
    spurious[:, 4] = 0.99  # outranks everything: must lower AP
    before = assert_matches_coco(images, detections)
    after = assert_matches_coco([*images, background], [*detections, spurious])
    assert after.map < before.map and after.images == before.images + 1


def test_class_without_ground_truth_is_left_out(coco128: list[LabelledImage]) -> None:
    rng = np.random.default_rng(4)
    images = coco128[:16]
    detections = [make_detections(im, rng, wrong_class=0.0) for im in images]
    present = set(np.concatenate([im.boxes[:, 0] for im in images]).astype(int).tolist())
    absent = min(set(range(NC)) - present)
    blank = LabelledImage(images[0].height, images[0].width, np.zeros((0, 5)))
    extra = make_detections(blank, rng, spurious=20)
    extra[:, 5] = absent
    base = evaluate(images, detections)
    with_absent = assert_matches_coco(images, [torch.cat([detections[0], extra]), *detections[1:]])
    assert absent not in with_absent.classes.tolist()
    assert with_absent.map == pytest.approx(base.map)
    assert with_absent.map50 == pytest.approx(base.map50)


def test_precision_recall_at_max_f1() -> None:
    """One class, 2 gts; TP 0.9, FP 0.8, TP 0.3: best F1 (0.8) is at the lowest confidence."""
    gt = torch.tensor([[0, 0, 0, 10, 10], [0, 20, 20, 30, 30]], dtype=torch.float32)
    det = torch.tensor([[0, 0, 10, 10, 0.9, 0], [50, 50, 60, 60, 0.8, 0], [20, 20, 30, 30, 0.3, 0]])
    evaluator = DetectionEvaluator(1, names=["thing"])
    evaluator.update(det, gt)
    metrics = evaluator.compute()
    assert metrics.precision == pytest.approx(2 / 3) and metrics.recall == pytest.approx(1.0)
    assert metrics.confidence <= 0.3
    assert metrics.map50 == pytest.approx((51 * 1.0 + 50 * (2 / 3)) / 101)


def test_fitness_vector_and_table(coco128: list[LabelledImage]) -> None:
    rng = np.random.default_rng(5)
    images = coco128[:16]
    metrics = evaluate(images, [make_detections(im, rng) for im in images])
    p, r, m50, m = metrics.as_vector()
    assert fitness(metrics) == pytest.approx(0.1 * m50 + 0.9 * m)
    assert fitness(metrics, (1.0, 1.0, 0.0, 0.0)) == pytest.approx(p + r)
    names = [f"class{c}" for c in range(NC)]
    table = ap_table(metrics, names).splitlines()
    assert len(table) == 2 + len(metrics.classes)
    assert table[1].split()[0] == "all"
    assert float(table[1].split()[-1]) == pytest.approx(m, abs=5e-4)
    assert table[2].split()[0] == names[metrics.classes[0]]


def test_rejects_bad_input() -> None:
    evaluator = DetectionEvaluator(2)
    with pytest.raises(ValueError):
        evaluator.update(torch.zeros(3, 5), torch.zeros(0, 5))
    with pytest.raises(ValueError):
        evaluator.update(torch.tensor([[0, 0, 1, 1, 0.5, 2]]), torch.zeros(0, 5))
    with pytest.raises(ValueError):
        DetectionEvaluator(2, names=["a"])
