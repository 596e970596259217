"""Freezing benchmark: time per epoch and peak memory with and without the backbone frozen.

Each variant trains in its own fresh process (peak RSS is per process: `ru_maxrss` would
otherwise keep the larger run's peak), yolov5n, CPU, on the synthetic dataset (default) or
COCO128. Time per epoch is the training part of the last epoch (validation, identical in both
variants, is timed separately and left out); the first epoch also decodes and caches images.
On a GPU machine pass `--device 0`: peak memory is then also CUDA's max allocated.

    .venv/bin/python -m benchmarks.freeze [--data coco128] [--img 320] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(os.environ.get("EVOLVER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
VARIANTS = {"full": (), "backbone frozen": tuple(range(10))}


def run_variant(data: str, freeze: tuple[int, ...], img: int, epochs: int, batch: int, device: str) -> dict:
    """Train in this process and return its measurements (called in the child)."""
    import torch

    from yolo.hyp import Hyperparameters
    from yolo.train import EpochReport, TrainConfig, train

    reports: list[EpochReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(data=data, cfg="yolov5n", epochs=epochs, img_size=img, batch_size=batch, workers=0,
                             device=device, save_dir=str(Path(tmp) / "run"), progress=False, freeze=freeze)
        train(config, Hyperparameters(), callbacks=[reports.append])
    last = reports[-1]
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() and device != "cpu" else None
    return {"train_s": last.seconds - last.val.seconds, "val_s": last.val.seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "gpu_peak_mb": gpu_peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic", help="'synthetic', 'coco128' or a data yaml")
    parser.add_argument("--img", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a variant's name: measure it, print JSON
    args = parser.parse_args()

    if args.data == "synthetic":
        from yolo.synthetic import default_synthetic_dataset

        data = str(default_synthetic_dataset())
    elif args.data == "coco128":
        data = str(SHARED / "datasets/coco128/coco128.yaml")
    else:
        data = args.data
    if args.child:
        result = run_variant(data, VARIANTS[args.child], args.img, args.epochs, args.batch, args.device)
        print("RESULT " + json.dumps(result))
        return

    rows = {}
    for name in VARIANTS:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.freeze", "--child", name, "--data", args.data, "--img", str(args.img),
             "--epochs", str(args.epochs), "--batch", str(args.batch), "--device", args.device],
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
        )
        line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT "))
        rows[name] = json.loads(line[len("RESULT "):])

    print(f"yolov5n, {args.data}, img {args.img}, batch {args.batch}, {args.device}, last of {args.epochs} epochs")
    print(f"{'variant':<18}{'train s/epoch':>14}{'val s':>8}{'peak RSS MB':>13}{'GPU peak MB':>13}")
    for name, r in rows.items():
        gpu = f"{r['gpu_peak_mb']:.0f}" if r["gpu_peak_mb"] is not None else "-"
        print(f"{name:<18}{r['train_s']:>14.2f}{r['val_s']:>8.2f}{r['peak_rss_mb']:>13.0f}{gpu:>13}")
    full, frozen = rows["full"], rows["backbone frozen"]
    print(f"frozen / full: time {frozen['train_s'] / full['train_s']:.2f}x, "
          f"peak RSS {frozen['peak_rss_mb'] / full['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
