"""Inference ablations side by side: one model, the same with test-time augmentation, an
ensemble of two models, and the model L1-pruned by 30 % (no retraining).

Two small yolov5n models are trained on a reduced synthetic dataset (256 train / 64 val images
at 160 px): A from scratch, B fine-tuned from A with another seed (different weights at a
fraction of the cost; the ensemble needs two models, not two equally good ones). Both are
cached under /tmp/evolver-ablations, so a second run only validates. Every row is validated on
the same 64 images with COCO-style mAP (conf 0.001, NMS IoU 0.6), as `evolver val` does.
Reference (YOLOv5's pruning tutorial): pruning 30 % cost YOLOv5x 0.492 -> 0.462 mAP on COCO.

    .venv/bin/python -m benchmarks.ablations [--epochs 30] [--finetune-epochs 2] [--img 160]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from yolo.checkpoint import load_model
from yolo.data import load_data_config, scan_dataset
from yolo.ensemble import Ensemble
from yolo.hyp import Hyperparameters
from yolo.loader import DetectionDataset, create_dataloader
from yolo.prune import prune_model
from yolo.synthetic import generate_synthetic_dataset
from yolo.train import TrainConfig, train
from yolo.tta import TestTimeAugmentation
from yolo.val import ValResult, inference_copy, validate

CACHE = Path("/tmp/evolver-ablations")


def trained(data: Path, name: str, epochs: int, img: int, seed: int, weights: Path | None = None) -> Path:
    """best.pt of a cached run, training it first if it is not there."""
    run = CACHE / name
    best = run / "weights" / "best.pt"
    if best.is_file():
        print(f"cached: {best}")
        return best
    start = time.perf_counter()
    config = TrainConfig(data=str(data), cfg="yolov5n", epochs=epochs, img_size=img, batch_size=16, workers=0,
                         seed=seed, save_dir=str(run), weights=str(weights) if weights else None, progress=False)
    result = train(config, Hyperparameters())
    print(f"trained {name}: mAP@0.5 {result.metrics['metrics/mAP_0.5']:.3f} in {time.perf_counter() - start:.0f}s")
    return result.weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30, help="model A, from scratch")
    parser.add_argument("--finetune-epochs", type=int, default=2, help="model B, from A")
    parser.add_argument("--img", type=int, default=160)
    parser.add_argument("--amount", type=float, default=0.3, help="pruning fraction")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)

    data = generate_synthetic_dataset(CACHE / f"synthetic-256-64-{args.img}", n_train=256, n_val=64,
                                      img_size=args.img, seed=0)
    weights_a = trained(data, f"yolov5n-seed0-e{args.epochs}-img{args.img}", args.epochs, args.img, seed=0)
    b_name = f"yolov5n-seed1-from-e{args.epochs}-ft{args.finetune_epochs}-img{args.img}"  # B depends on A
    weights_b = trained(data, b_name, args.finetune_epochs, args.img, seed=1, weights=weights_a)

    config = load_data_config(data)
    dataset = DetectionDataset(scan_dataset(config.val, config.nc), args.img, Hyperparameters(), augment=False,
                               rect=True, batch_size=32, pad=0.5)
    loader = create_dataloader(dataset, 32, shuffle=False, workers=0, seed=0)
    model_a, _ = load_model(weights_a)
    model_b, _ = load_model(weights_b)
    pruned = load_model(weights_a)[0]
    report = prune_model(pruned, args.amount)

    rows: list[tuple[str, ValResult]] = []
    for label, module in (
        ("A (yolov5n, scratch)", model_a),
        ("A + TTA", TestTimeAugmentation(model_a)),
        ("B (yolov5n, A fine-tuned)", model_b),
        ("ensemble A + B", Ensemble([model_a, model_b])),
        (f"A pruned {args.amount:.0%}", pruned),
    ):
        validate(inference_copy(module), loader, nc=config.nc)  # warm-up: first-call allocations
        rows.append((label, validate(inference_copy(module), loader, nc=config.nc)))

    print(f"\n{len(dataset)} val images at {args.img} px; {report.summary()}")
    print(f"{'variant':<28} {'P':>6} {'R':>6} {'mAP50':>6} {'mAP':>6} {'ms/img':>7}")
    for label, r in rows:
        m = r.metrics
        print(f"{label:<28} {m.precision:6.3f} {m.recall:6.3f} {m.map50:6.3f} {m.map:6.3f} "
              f"{1000 * r.seconds / r.images:7.1f}")
    print("reference (YOLOv5 tutorial, COCO): YOLOv5x 0.492 -> 0.462 mAP when pruned 30 %")


if __name__ == "__main__":
    main()
