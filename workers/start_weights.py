"""The checkpoint a campaign's trials fine-tune from, in the form workers load.

A YOLOv5 `.pt` is a pickle; it is read once by the coordinator through yolo's allowlist reader
and written beside the campaign's run folder in evolver's format, so every worker loads a file
that `torch.load(weights_only=True)` reads. An evolver checkpoint is used as it is.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def safe_start_weights(weights: str | None, run_dir: str | Path) -> str | None:
    """`weights` itself when it is an evolver checkpoint (or None); for a YOLOv5 file, the path
    of its converted copy under `run_dir` (made once: a resumed campaign finds it)."""
    if not weights:
        return weights
    from yolo.checkpoint import load_checkpoint, save_checkpoint

    source = Path(weights)
    checkpoint = load_checkpoint(source)  # refuses unsafe or unsupported files, naming the problem
    if checkpoint.origin == "evolver":
        return weights
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    converted = Path(run_dir) / "start-weights" / f"{source.stem}-{digest}.pt"
    if not converted.is_file():
        save_checkpoint(converted, checkpoint)
    return str(converted)
