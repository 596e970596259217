"""Inference speed: torch eager (fused, eval) against onnxruntime on the exported file, CPU, batch 1.

Run from the repository root:
    .venv/bin/python -m benchmarks.export_speed [--runs 20] [--threads 2] [--models yolov5n yolov5s] [--sizes 320 640]

Times one forward pass (the network only: letterbox and NMS are the same for both) on a real
COCO128 image, as the median of `--runs` after `--warmup` runs. Weights are freshly initialised:
speed does not depend on their values. The reference figure on this kind of 2-core machine:
yolov5n at 320, torch 17.2 ms vs onnxruntime 6.6 ms (YOLOv5 v7.0's own export).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from deploy.onnx_export import OnnxExportOptions, export_onnx
from deploy.onnx_runtime import OnnxDetector, prepare_batch
from yolo.model import build_model

COCO128 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "coco128"


def median_ms(run: Callable[[], object], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["yolov5n", "yolov5s"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[320, 640])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for both runtimes")
    parser.add_argument("--image", default=str(COCO128 / "images" / "train2017" / "000000000009.jpg"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    # Fresh weights shrink activations into float32 denormals, which x86 handles ~100x slower
    # (torch eager measured 1.3 s for yolov5n at 320 without this); trained weights do not.
    # Flushing them to zero gives trained-model speed; onnxruntime is not affected either way.
    torch.set_flush_denormal(True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            torch.manual_seed(0)
            model = build_model(name, nc=80).eval()
            fused = build_model(name, nc=80).eval()
            fused.load_state_dict(model.state_dict())
            fused.fuse()
            for size in args.sizes:
                path = Path(tmp) / f"{name}-{size}.onnx"
                export_onnx(model, path, OnnxExportOptions((size, size), 1))
                batch, _ = prepare_batch([args.image], (size, size))
                images = torch.from_numpy(batch)
                detector = OnnxDetector(path, threads=args.threads)
                with torch.inference_mode():
                    torch_ms = median_ms(lambda: fused(images), args.runs, args.warmup)
                onnx_ms = median_ms(lambda: detector(batch), args.runs, args.warmup)
                rows.append((name, size, torch_ms, onnx_ms))
                print(f"  {name} {size}: torch {torch_ms:.1f} ms, onnxruntime {onnx_ms:.1f} ms", flush=True)

    print(f"\nCPU, batch 1, {args.threads} threads, median of {args.runs} runs after {args.warmup} warm-up")
    print(f"{'model':8s} {'img':>4s} {'torch ms':>9s} {'onnxrt ms':>10s} {'speed-up':>9s}")
    for name, size, torch_ms, onnx_ms in rows:
        print(f"{name:8s} {size:4d} {torch_ms:9.1f} {onnx_ms:10.1f} {torch_ms / onnx_ms:8.2f}x")
    print("reference (YOLOv5 v7.0, this CPU): yolov5n 320: torch 17.2 ms, onnxruntime 6.6 ms")


if __name__ == "__main__":
    main()
