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

from yolo.yaml_errors import yaml_error_line


log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
COORD_TOLERANCE = 0.01  # label coordinates this far outside [0, 1] are rounding, and get clipped
SPLITS = ("train", "val", "test")  # what a data yaml may name; `test` is optional


@dataclass(frozen=True)
class DataConfig:
    """A data yaml, resolved: `train` / `val` / `test` are the image files its sources list.

    `test` is optional (None when the yaml has none), as in YOLOv5: most datasets only have
    train and val, so asking for the test split is where its absence becomes an error.
    """
    yaml_path: Path  # the file this came from, named in messages
    root: Path
    train: list[Path]
    val: list[Path]
    test: list[Path] | None
    names: list[str]
    nc: int

    def split_files(self, name: str) -> list[Path]:
        """The image files of split `name` ("train", "val" or "test"). A split that is unknown or
        missing is a one-line ValueError naming the yaml, which the CLI prints as it is."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r} (expected one of {', '.join(SPLITS)})")
        files: list[Path] | None = getattr(self, name)
        if files is None:
            raise ValueError(f"{self.yaml_path} has no '{name}' split (add '{name}:' to it, naming its images "
                             "as for 'val': a folder, a .txt list or images)")
        return files


def load_data_config(path: str | Path) -> DataConfig:
    """Read a YOLOv5 data yaml (`path`, `train`, `val`, optional `test`, `names`, optional `nc`).

    A `test` that is absent, null or empty is no test split; one that names nothing is an error
    now, like `train` and `val`, rather than when someone first asks for it.
    """
    yaml_path = Path(path)
    if yaml_path.is_dir():
        inside = sorted(p.name for p in yaml_path.glob("*.yaml")) + sorted(p.name for p in yaml_path.glob("*.yml"))
        hint = f" (it holds {', '.join(inside[:5])})" if inside else " (it holds no .yaml file)"
        raise ValueError(f"data yaml {yaml_path} is a folder, not a yaml file: name the data yaml itself{hint}")
    if not yaml_path.is_file():
        raise ValueError(f"data yaml not found: {yaml_path}")
    try:
        raw = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(yaml_error_line(yaml_path, err)) from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{yaml_path}: not a text file ({err})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{yaml_path}: a data yaml must be a mapping")
    root = _resolve_root(raw.get("path"), yaml_path)
    names = _parse_names(raw.get("names"), raw.get("nc"), yaml_path)
    train, val = (_image_files(raw, key, root, yaml_path) for key in ("train", "val"))
    test = None if raw.get("test") in (None, "") else _image_files(raw, "test", root, yaml_path)
    return DataConfig(yaml_path=yaml_path, root=root, train=train, val=val, test=test, names=names,
                      nc=len(names))


def _resolve_root(value: Any, yaml_path: Path) -> Path:
    """`path`, relative to the yaml's folder (absent: that folder). One that is not a folder is
    an error naming it as written: guessing another root would only fail later, about paths the
    user never wrote."""
    here = yaml_path.parent.resolve()
    if value is None or value == "":
        return here
    root = here / Path(str(value)).expanduser()
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        relative = not Path(str(value)).expanduser().is_absolute()
        resolved = f" (looked for {root}: relative to the yaml's folder)" if relative else ""
        raise ValueError(f"{yaml_path}: path: {value} {problem}{resolved}")
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
    """Expand a split: folders (recursively), .txt lists (a path a line, relative to `root`),
    single images, or a list of those. Missing images in a list are left to the scan."""
    value = raw.get(key)
    if value is None:
        raise ValueError(f"{yaml_path}: '{key}' is missing")
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) for v in items):
        raise ValueError(f"{yaml_path}: '{key}' must be a path or a list of paths, got {value!r}")
    files: list[Path] = []
    for src in (_split_source(v, key, root, yaml_path) for v in items):
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
    if not files:
        raise ValueError(f"{yaml_path}: '{key}' ({', '.join(items)}) holds no images "
                         f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _split_source(written: str, key: str, root: Path, yaml_path: Path) -> Path:
    """Where one source of a split is: `root / written` (an absolute path stays itself).

    Roboflow's YOLOv5 export puts data.yaml beside `train/ valid/ test/` yet writes
    `train: ../train/images`; YOLOv5 and Ultralytics then try the path without the leading
    `../`, and so do we, so such a download loads as it is. Neither existing is an error that
    names the path as the user wrote it, and both places looked in.
    """
    src = root / Path(written).expanduser()
    if src.exists() or not written.startswith("../"):
        return src
    fallback = root / written[len("../"):]
    if fallback.exists():
        return fallback
    raise ValueError(f"{yaml_path}: '{key}' path does not exist: {written} (looked for {src} and {fallback})")


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
