"""Remake `examples/yolov5n-shapes.pt`, the starting checkpoint of the demo campaign.

yolov5n trained by our own trainer from scratch on the built-in synthetic dataset (`data:
synthetic`), then stored in the safe checkpoint format with its weights in half precision: a
few MB that `torch.load(path, weights_only=True)` reads. Loading it into a model gives float32
weights back (`load_state_dict` copies into the model's own float32 tensors).

The demo campaign (`examples/synthetic-campaign.yaml`) fine-tunes it on the shifted synthetic
task, as a user fine-tunes `yolov5s.pt` on their own data.

    .venv/bin/python -m examples.make_start_weights [--epochs 30] [--img 160] [--out PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
from pathlib import Path

import torch

from yolo.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from yolo.hyp import Hyperparameters
from yolo.synthetic import default_synthetic_dataset
from yolo.train import TrainConfig, train

DEFAULT_OUT = Path(__file__).resolve().parent / "yolov5n-shapes.pt"


def half_precision(checkpoint: Checkpoint) -> Checkpoint:
    """The checkpoint with floating-point model tensors as float16 and nothing for resuming: a
    starting point for fine-tuning, half the size. Integer tensors (BatchNorm's batch counters)
    stay as they are."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in checkpoint.model_state.items()}
    return dataclasses.replace(checkpoint, model_state=state, train_state=None, optimizer_state=None,
                               torch_rng=None, pending_grads=None, ema_updates=0, last_step=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--img", type=int, default=160, help="train/val image size (px), the demo's")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the half-precision checkpoint goes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the trainer's line per epoch

    with tempfile.TemporaryDirectory(prefix="evolver-start-weights-") as tmp:
        config = TrainConfig(data=str(default_synthetic_dataset()), cfg="yolov5n", epochs=args.epochs,
                             img_size=args.img, batch_size=args.batch, seed=args.seed, save_dir=tmp,
                             progress=not args.quiet)
        result = train(config, Hyperparameters())
        best = load_checkpoint(result.weights)
    # The temporary folder and the machine's cache path mean nothing to whoever loads the file.
    best.train_config.update(data="synthetic", save_dir="")
    save_checkpoint(args.out, half_precision(best))

    m = result.metrics
    size_mb = args.out.stat().st_size / 1e6
    print(f"\n{result.epochs_completed} epochs in {result.seconds:.0f} s; best epoch {result.best_epoch + 1}: "
          f"mAP@0.5 {best.metrics['metrics/mAP_0.5']:.3f}  mAP@0.5:0.95 {best.metrics['metrics/mAP_0.5:0.95']:.3f}  "
          f"(last epoch: P {m['metrics/precision']:.3f} R {m['metrics/recall']:.3f} "
          f"mAP@0.5 {m['metrics/mAP_0.5']:.3f} mAP@0.5:0.95 {m['metrics/mAP_0.5:0.95']:.3f})")
    print(f"saved {args.out} ({size_mb:.1f} MB, float16 weights, torch {torch.__version__})")


if __name__ == "__main__":
    main()
