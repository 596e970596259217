"""Reading a YOLOv5 checkpoint safely vs `torch.load` of the same file (no test; prints numbers).

`torch.load(weights_only=False)` is what YOLOv5 itself does: it imports and calls whatever the
pickle names. It needs YOLOv5's classes importable; this benchmark registers inert stand-ins
(`models.yolo.DetectionModel` ... as empty nn.Module subclasses) so that the unpickling work is
the same. Ours: the allowlist reader alone, and the whole `load_checkpoint` (format sniff, reader,
float32 state dict, architecture check against our detector). Target: the safe reader <= 2x
torch.load (the whole load also builds our model to check the file against it).

    .venv/bin/python -m benchmarks.yolov5_load [--weights ../shared/fixtures/yolov5/yolov5s-coco128-best.pt] [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from yolo.checkpoint import load_checkpoint
from yolo.safe_unpickle import load_restricted

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "yolov5" / "yolov5s-coco128-best.pt"
YOLOV5_CLASSES = {"models.yolo": ("DetectionModel", "Model", "Detect"),
                  "models.common": ("Conv", "C3", "Bottleneck", "SPPF", "Concat")}


def register_stand_ins() -> None:
    """Empty nn.Module classes under YOLOv5's names, so torch.load can unpickle its files."""
    sys.modules.setdefault("models", types.ModuleType("models"))
    for module_name, class_names in YOLOV5_CLASSES.items():
        module = types.ModuleType(module_name)
        for name in class_names:
            setattr(module, name, type(name, (nn.Module,), {"__module__": module_name}))
        sys.modules[module_name] = module


def median_seconds(load: Callable[[], object], runs: int) -> float:
    load()  # warm: imports, page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        load()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="a YOLOv5 .pt")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    register_stand_ins()
    plain = median_seconds(lambda: torch.load(args.weights, map_location="cpu", weights_only=False), args.runs)
    reader = median_seconds(lambda: load_restricted(args.weights), args.runs)
    full = median_seconds(lambda: load_checkpoint(args.weights), args.runs)
    size_mb = args.weights.stat().st_size / 1e6
    print(f"{args.weights.name} ({size_mb:.1f} MB), median of {args.runs}:")
    print(f"  torch.load(weights_only=False)         {plain * 1e3:7.1f} ms")
    print(f"  safe reader (allowlist unpickler)      {reader * 1e3:7.1f} ms  {reader / plain:.2f}x  (target <= 2x)")
    print(f"  load_checkpoint (reader + conversion)  {full * 1e3:7.1f} ms  {full / plain:.2f}x  (+ the expected "
          "model built for the architecture check, float32 state dict)")


if __name__ == "__main__":
    main()
