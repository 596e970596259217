"""Constants and helpers of the deploy tests (fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

CALIBRATION_IMAGES = slice(8, 16)  # disjoint from the parity images
PARITY_IMAGES = 4
PARITY_CONF = 0.05  # the calibrated model's scores are low


def coco128_images(coco128_dir: Path) -> list[Path]:
    return sorted((coco128_dir / "images" / "train2017").glob("*.jpg"))
