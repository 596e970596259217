"""YOLO-format datasets: the data yaml and a checked index of images and labels.

Bad input is never fatal while scanning: a corrupt image or a malformed label line is skipped,
counted and named, so one broken file in a user's dataset costs a box, not a campaign.
Turning the index into samples and batches is `yolo/loader.py`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import yaml


log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
COORD_TOLERANCE = 0.01  # label coordinates this far outside [0, 1] are rounding, and get clipped


@dataclass(frozen=True)
class DataConfig:
    """A data yaml, resolved: `train` / `val` are the image files its sources list."""
    root: Path
    train: list[Path]
    val: list[Path]
    names: list[str]
    nc: int


def load_data_config(path: str | Path) -> DataConfig:
    """Read a YOLOv5 data yaml (`path`, `train`, `val`, `names`, optional `nc`)."""
    yaml_path = Path(path)
    if not yaml_path.is_file():
        raise ValueError(f"data yaml not found: {yaml_path}")
    raw = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{yaml_path}: a data yaml must be a mapping")
    root = _resolve_root(raw.get("path"), yaml_path)
    names = _parse_names(raw.get("names"), raw.get("nc"), yaml_path)
    splits = {key: _image_files(raw, key, root, yaml_path) for key in ("train", "val")}
    return DataConfig(root=root, train=splits["train"], val=splits["val"], names=names, nc=len(names))


def _resolve_root(value: Any, yaml_path: Path) -> Path:
    """`path` (relative to the yaml's folder); a dataset moved from another machine falls back."""
    here = yaml_path.parent.resolve()
    root = here / Path(str(value)).expanduser() if value is not None else here
    if not root.is_dir():
        log.warning("%s: 'path' %s does not exist here; using the yaml's folder %s", yaml_path, root, here)
        return here
    return root.resolve()


def _parse_names(names: Any, nc: Any, yaml_path: Path) -> list[str]:
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
        raise ValueError(f"{yaml_path}: 'nc' must be a positive integer, got {nc!r}")
    if names is None:
        if nc is None:
            raise ValueError(f"{yaml_path}: 'names' is missing")
        return [f"class{i}" for i in range(nc)]
    if isinstance(names, dict):
        keys = sorted(names)
        if not all(isinstance(k, int) for k in keys) or keys != list(range(len(keys))):
            raise ValueError(f"{yaml_path}: 'names' keys must be the integers 0..n-1, got {keys}")
        names = [names[k] for k in keys]
    if not isinstance(names, list) or not names:
        raise ValueError(f"{yaml_path}: 'names' must be a non-empty list or a dict {{int: name}}")
    if nc is not None and nc != len(names):
        raise ValueError(f"{yaml_path}: 'nc' is {nc} but 'names' has {len(names)} entries")
    return [str(n) for n in names]


def _image_files(raw: dict, key: str, root: Path, yaml_path: Path) -> list[Path]:
    """Expand `train` / `val`: folders (recursively), .txt lists (a path a line, relative to
    `root`), single images, or a list of those. Missing images in a list are left to the scan."""
    value = raw.get(key)
    if value is None:
        raise ValueError(f"{yaml_path}: '{key}' is missing")
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) for v in items):
        raise ValueError(f"{yaml_path}: '{key}' must be a path or a list of paths, got {value!r}")
    files: list[Path] = []
    for src in (root / Path(v).expanduser() for v in items):  # an absolute path stays itself
        suffix = src.suffix.lower()
        if src.is_dir():
            files += sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif src.is_file() and suffix == ".txt":
            lines = (ln.strip() for ln in src.read_text(encoding="utf-8").splitlines())
            files += [root / ln for ln in lines if ln]
        elif src.is_file() and suffix in IMAGE_SUFFIXES:
            files.append(src)
        else:
            problem = "does not exist" if not src.exists() else "is not a folder, .txt list or image"
            raise ValueError(f"{yaml_path}: '{key}' path {problem}: {src}")
    return files


def label_path(image: Path) -> Path:
    """YOLO's rule: the last `/images/` of the path becomes `/labels/`, the suffix `.txt`."""
    text = str(image)
    head, sep, tail = text.rpartition(f"{os.sep}images{os.sep}")
    text = f"{head}{os.sep}labels{os.sep}{tail}" if sep else text
    return Path(text).with_suffix(".txt")


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    shape: tuple[int, int]  # original (h, w)
    labels: np.ndarray  # float32 [n, 5]: cls, cx, cy, w, h normalised


@dataclass(frozen=True)
class DatasetIndex:
    """What a scan found usable, and what it had to leave out (`problems` says why)."""
    records: list[ImageRecord]
    problems: list[str] = field(default_factory=list)
    skipped_images: int = 0
    dropped_labels: int = 0

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> list[np.ndarray]:
        return [r.labels for r in self.records]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [r.shape for r in self.records]

    def summary(self) -> str:
        boxes = sum(len(r.labels) for r in self.records)
        backgrounds = sum(len(r.labels) == 0 for r in self.records)
        return (f"{len(self.records)} images, {boxes} boxes, {backgrounds} backgrounds, "
                f"{self.skipped_images} skipped images, {self.dropped_labels} dropped labels")


def scan_dataset(image_files: Sequence[str | Path], nc: int) -> DatasetIndex:
    """Read every image's size and labels; skip and name what cannot be used."""
    records: list[ImageRecord] = []
    problems: list[str] = []
    skipped = dropped = 0
    for file in image_files:
        path = Path(file)
        img = cv2.imread(str(path)) if path.is_file() else None
        if img is None:
            skipped += 1
            problems.append(f"{path}: image {'unreadable or corrupt' if path.exists() else 'missing'}, skipped")
            continue
        labels, bad_lines = _read_labels(label_path(path), nc)
        dropped += len(bad_lines)
        problems += bad_lines
        records.append(ImageRecord(path, (img.shape[0], img.shape[1]), labels))
    index = DatasetIndex(records, problems, skipped, dropped)
    for problem in problems[:20] + [f"... and {len(problems) - 20} more problems"] * (len(problems) > 20):
        log.warning("%s", problem)
    log.info("%s", index.summary())
    return index


def _read_labels(path: Path, nc: int) -> tuple[np.ndarray, list[str]]:
    """Parse one label file; a missing file is a background image. Returns (labels, problems)."""
    empty = np.zeros((0, 5), dtype=np.float32)
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    except (OSError, UnicodeDecodeError) as err:
        return empty, [f"{path}: unreadable label file ({err}), its labels dropped"]
    rows, problems = [], []
    for number, line in enumerate(lines, 1):
        if line.strip():
            row, reason = _parse_label_line(line.split(), nc)
            if reason is None:
                rows.append(row)
            else:
                problems.append(f"{path}:{number}: {reason}, line dropped")
    return (np.array(rows, dtype=np.float32) if rows else empty), problems


def _parse_label_line(parts: list[str], nc: int) -> tuple[list[float], str | None]:
    """(cls, cx, cy, w, h) clipped to the image, or the reason the line is unusable."""
    try:
        v = [float(p) for p in parts]
    except ValueError:
        return [], "not a number"
    if len(v) != 5:
        return [], f"{len(v)} columns, expected 5"
    if not (v[0].is_integer() and 0 <= v[0] < nc):
        return [], f"unknown class {parts[0]} (nc={nc})"
    if not all(-COORD_TOLERANCE <= x <= 1 + COORD_TOLERANCE for x in v[1:]):
        return [], "coordinates out of [0, 1]"
    x1, y1 = max(v[1] - v[3] / 2, 0.0), max(v[2] - v[4] / 2, 0.0)
    x2, y2 = min(v[1] + v[3] / 2, 1.0), min(v[2] + v[4] / 2, 1.0)
    if x2 <= x1 or y2 <= y1:
        return [], "empty box"
    return [v[0], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], None
