"""Where the tests find the repository and the read-only shared folder beside it."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EVOLVER_SHARED", REPO.parent / "shared"))
YOLOV5_FIXTURES = SHARED / "fixtures" / "yolov5"  # checkpoints written by YOLOv5's train.py, its outputs
