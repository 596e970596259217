"""How much faster yolo.metrics is than pycocotools, on the same coco128-derived detections.

Run from the repository root:
    .venv/bin/python -m benchmarks.eval_speed [--seeds 5] [--per-image 40]

The detections come from the same generator the parity tests use (jittered, dropped, duplicated
and wrong-class ground truth plus random boxes). Ours is timed from tensors to metrics
(every `update` + `compute`); pycocotools from its result dicts to `summarize` (loadRes, evaluate,
accumulate, summarize). Building its ground-truth index and the dicts is left out of its time,
which favours pycocotools.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np
import torch

from tests.yolo.test_metrics import (
    NC, LabelledImage, coco_ground_truth, coco_results, load_coco128, make_detections,
)
from yolo.metrics import DetectionEvaluator, DetectionMetrics


def time_ours(
    images: list[LabelledImage], detections: list[torch.Tensor]
) -> tuple[float, DetectionMetrics]:
    ground_truth = [torch.from_numpy(image.boxes) for image in images]
    start = time.perf_counter()
    evaluator = DetectionEvaluator(NC)
    for det, gt in zip(detections, ground_truth):
        evaluator.update(det, gt)
    metrics = evaluator.compute()
    return time.perf_counter() - start, metrics


def time_pycocotools(
    images: list[LabelledImage], detections: list[torch.Tensor]
) -> tuple[float, float, float]:
    """Seconds from result dicts to summary, then COCO's (mAP@0.5, mAP@0.5:0.95)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = coco_ground_truth(images, NC)
        ground_truth.createIndex()
        results = coco_results(detections)
        start = time.perf_counter()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
        elapsed = time.perf_counter() - start
    return elapsed, float(evaluation.stats[1]), float(evaluation.stats[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--per-image", type=int, default=40, help="detections per image, roughly")
    args = parser.parse_args()

    images = load_coco128()
    mean_gt = np.mean([len(image.boxes) for image in images])
    spurious = max(0, round(args.per_image - 1.04 * mean_gt))  # kept 0.8 x duplicated 1.3
    total_ours = total_coco = 0.0
    print(f"{len(images)} images, {int(sum(len(i.boxes) for i in images))} gt boxes")
    print(f"{'seed':>4} {'dets/img':>8} {'ours s':>8} {'coco s':>8} {'ratio':>6} "
          f"{'mAP50 ours':>10} {'coco':>8} {'mAP ours':>9} {'coco':>8}")
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        detections = [make_detections(image, rng, spurious=spurious) for image in images]
        ours, metrics = time_ours(images, detections)
        coco, map50, map_ = time_pycocotools(images, detections)
        total_ours, total_coco = total_ours + ours, total_coco + coco
        per_image = sum(len(d) for d in detections) / len(images)
        print(f"{seed:>4} {per_image:>8.1f} {ours:>8.3f} {coco:>8.3f} {coco / ours:>6.1f} "
              f"{metrics.map50:>10.5f} {map50:>8.5f} {metrics.map:>9.5f} {map_:>8.5f}")
    print(f"total: ours {total_ours:.3f} s, pycocotools {total_coco:.3f} s, "
          f"ratio {total_coco / total_ours:.1f}x")


if __name__ == "__main__":
    main()
