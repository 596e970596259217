"""A small synthetic YOLO dataset of solid shapes on noisy backgrounds: the embedded default.

It exists so that everything (tests, the embedded campaign, demos) can train without downloading
data, and so that a short training actually learns: four shape classes with distinct colours,
drawn filled, 8-45 % of the image side, never overlapping, with exact boxes measured from the
drawn pixels. Generation is seeded per image, so the same arguments always give the same bytes.
Besides train and val there is a test split: images no training or search looked at, to score a
finished campaign's winner on. Adding it changed no train or val image (each split draws from its
own seeds), so checkpoints trained on the earlier version saw the same data.

A `SyntheticStyle` sets the look: `BASE_STYLE` is the dataset above; `SHIFTED_STYLE` draws the
same four shapes in other colours, smaller, on darker and busier backgrounds: a new domain for
a model trained on the base style, as a user's own data is for `yolov5s.pt`. The built-in
datasets a campaign names (`data: synthetic`, `data: synthetic-shifted`) are `BUILTIN_DATASETS`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

CLASS_NAMES = ("circle", "square", "triangle", "cross")
CLASS_COLOURS_BGR = ((40, 40, 220), (50, 190, 50), (220, 90, 30), (30, 210, 230))  # red green blue yellow
# 2: a test split (train and val bytes as in 1); a new version is a new cache folder and manifest.
GENERATOR_VERSION = 2
DEFAULT_N_TRAIN, DEFAULT_N_VAL, DEFAULT_IMG_SIZE = 512, 128, 256
SIZE_RANGE = (0.08, 0.45)  # object side as a fraction of the image side
MAX_OBJECTS = 6
BACKGROUND_FRACTION = 0.08  # images with no object at all
JPEG_QUALITY = 95
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}  # part of every image's seed: never renumber


@dataclass(frozen=True)
class SyntheticStyle:
    """How the images look; the shapes, their classes and the labelling are the same in every style."""

    name: str
    class_colours_bgr: tuple[tuple[int, int, int], ...] = CLASS_COLOURS_BGR
    colour_jitter: int = 25  # per channel, uniform in [-jitter, jitter]
    size_range: tuple[float, float] = SIZE_RANGE
    max_objects: int = MAX_OBJECTS
    background_grey: tuple[int, int] = (70, 190)  # blotch brightness, [low, high)
    background_tint: int = 18  # blotch colour cast per channel, uniform in [-tint, tint]
    max_strokes: int = 3  # grey lines across the background

    def __post_init__(self) -> None:
        if len(self.class_colours_bgr) != len(CLASS_NAMES):
            raise ValueError(f"style {self.name!r}: need {len(CLASS_NAMES)} class colours")
        if not 0 < self.size_range[0] <= self.size_range[1] <= 0.5:
            raise ValueError(f"style {self.name!r}: size_range must satisfy 0 < low <= high <= 0.5")


BASE_STYLE = SyntheticStyle("base")
SHIFTED_STYLE = SyntheticStyle(
    "shifted",
    class_colours_bgr=((0, 140, 255), (170, 60, 150), (200, 190, 40), (150, 110, 240)),  # orange purple teal pink
    size_range=(0.06, 0.30),
    max_objects=8,
    background_grey=(25, 120),
    background_tint=45,
    max_strokes=7,
)
STYLES = {style.name: style for style in (BASE_STYLE, SHIFTED_STYLE)}


@dataclass(frozen=True)
class BuiltinDataset:
    """A synthetic dataset a campaign names instead of a data yaml (`data: synthetic`)."""

    style: SyntheticStyle
    n_train: int
    n_val: int
    img_size: int
    n_test: int

    def folder_name(self) -> str:
        prefix = "shapes" if self.style == BASE_STYLE else f"shapes-{self.style.name}"
        return f"{prefix}-v{GENERATOR_VERSION}-{self.n_train}-{self.n_val}-{self.n_test}-{self.img_size}"


BUILTIN_DATASETS = {
    "synthetic": BuiltinDataset(BASE_STYLE, DEFAULT_N_TRAIN, DEFAULT_N_VAL, DEFAULT_IMG_SIZE, n_test=DEFAULT_N_VAL),
    # Small and at the demo's 160 px, so a fine-tuning trial takes well under a minute on a CPU.
    "synthetic-shifted": BuiltinDataset(SHIFTED_STYLE, 256, 64, 160, n_test=64),
}


def generate_synthetic_dataset(
    root: Path,
    n_train: int = DEFAULT_N_TRAIN,
    n_val: int = DEFAULT_N_VAL,
    img_size: int = DEFAULT_IMG_SIZE,
    seed: int = 0,
    style: SyntheticStyle = BASE_STYLE,
    *,
    n_test: int | None = None,
) -> Path:
    """Write the dataset under `root` (owned by the generator) and return its data yaml.

    `n_test` test images (None: as many as `n_val`; 0: no test split, and no `test:` in the yaml).

    A `manifest.json` records the arguments; when it matches, the existing dataset is reused.
    A folder that is neither empty nor a synthetic dataset is never overwritten. A lock file
    beside `root` keeps concurrent callers (several workers on one machine) from racing.
    """
    root = Path(root).expanduser().resolve()
    n_test = n_val if n_test is None else n_test
    params = {"generator": "evolver-shapes", "version": GENERATOR_VERSION, "n_train": n_train,
              "n_val": n_val, "n_test": n_test, "img_size": img_size, "seed": seed,
              "style": dataclasses.asdict(style)}
    params = json.loads(json.dumps(params))  # tuples as lists: compares equal to the manifest read back
    if min(n_train, n_val) < 1 or n_test < 0 or img_size < 32:
        raise ValueError(f"need n_train, n_val >= 1, n_test >= 0 and img_size >= 32, got {params}")
    yaml_path = root / "data.yaml"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if yaml_path.is_file() and _read_manifest(root) == params:
            return yaml_path
        if root.exists() and any(root.iterdir()) and _read_manifest(root) is None:
            raise ValueError(f"{root} is not empty and holds no synthetic dataset; refusing to overwrite it")
        staging = root.parent / f".{root.name}.staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:  # build beside, then swap in: a crash never leaves a half dataset that looks whole
            for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
                if count:
                    _write_split(staging, split, count, img_size, seed, style)
            _write_yaml(staging / "data.yaml", with_test=n_test > 0)
            (staging / "manifest.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
            shutil.rmtree(root, ignore_errors=True)
            os.replace(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return yaml_path


def default_synthetic_dataset(cache_root: Path | None = None) -> Path:
    """The embedded default dataset (generated once, in a few seconds); returns its data yaml.

    It lives under `cache_root`, by default ~/.cache/evolver/synthetic.
    """
    return builtin_dataset("synthetic", cache_root)


def resolve_data(data: str) -> str:
    """A data yaml path; "synthetic" and the other names of BUILTIN_DATASETS mean a built-in
    dataset (generated once per machine, then cached)."""
    if data in BUILTIN_DATASETS:
        return str(builtin_dataset(data))
    return data


def builtin_dataset(name: str, cache_root: Path | None = None) -> Path:
    """The data yaml of the built-in dataset `name` (a key of BUILTIN_DATASETS), generated on
    first use under `cache_root`, by default ~/.cache/evolver/synthetic."""
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown built-in dataset {name!r} (expected one of {', '.join(BUILTIN_DATASETS)})")
    spec = BUILTIN_DATASETS[name]
    base = Path(cache_root) if cache_root is not None else Path.home() / ".cache" / "evolver" / "synthetic"
    return generate_synthetic_dataset(base / spec.folder_name(), n_train=spec.n_train, n_val=spec.n_val,
                                      img_size=spec.img_size, style=spec.style, n_test=spec.n_test)


def _read_manifest(root: Path) -> dict | None:
    try:
        data = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == "evolver-shapes" else None


def _write_yaml(path: Path, with_test: bool) -> None:
    content = {"path": ".", "train": "images/train", "val": "images/val",
               **({"test": "images/test"} if with_test else {}),
               "nc": len(CLASS_NAMES), "names": list(CLASS_NAMES)}
    header = "# Synthetic shapes (evolver): generated, do not edit. Paths relative to this file.\n"
    path.write_text(header + yaml.safe_dump(content, sort_keys=False), encoding="utf-8")


def _write_split(root: Path, split: str, count: int, img_size: int, seed: int, style: SyntheticStyle) -> None:
    images, labels = root / "images" / split, root / "labels" / split
    images.mkdir(parents=True)
    labels.mkdir(parents=True)

    def write_one(i: int) -> None:
        rng = np.random.default_rng([seed, _SPLIT_IDS[split], i])  # per image: order-free, thread-safe
        img, rows = render_image(rng, img_size, style)
        ok, encoded = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"JPEG encoding failed for {split} image {i}")
        (images / f"{i:05d}.jpg").write_bytes(encoded.tobytes())
        text = "".join(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, cx, cy, w, h in rows)
        (labels / f"{i:05d}.txt").write_text(text, encoding="utf-8")

    # numpy and OpenCV release the GIL in the heavy parts, so threads overlap the work.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(write_one, range(count)))


def render_image(rng: np.random.Generator, img_size: int,
                 style: SyntheticStyle = BASE_STYLE) -> tuple[np.ndarray, list[tuple]]:
    """One BGR image and its labels [(cls, cx, cy, w, h) normalised], all drawn from `rng`."""
    img = _background(rng, img_size, style)
    count = 0 if rng.random() < BACKGROUND_FRACTION else int(rng.integers(1, style.max_objects + 1))
    taken: list[tuple[int, int, int, int]] = []
    rows = []
    for _ in range(count):
        cls = int(rng.integers(len(CLASS_NAMES)))
        mask = _shape_mask(rng, cls, img_size, style.size_range)
        ph, pw = mask.shape
        for _attempt in range(20):  # rejection sampling for a free spot; give up quietly
            x0, y0 = int(rng.integers(0, img_size - pw + 1)), int(rng.integers(0, img_size - ph + 1))
            box = (x0, y0, x0 + pw, y0 + ph)
            if all(_apart(box, other, margin=3) for other in taken):
                break
        else:
            continue
        taken.append(box)
        jitter = rng.integers(-style.colour_jitter, style.colour_jitter + 1, 3)
        colour = np.clip(np.array(style.class_colours_bgr[cls]) + jitter, 0, 255)
        region = img[y0 : y0 + ph, x0 : x0 + pw]
        region[mask > 0] = colour.astype(np.uint8)
        ys, xs = np.nonzero(mask)  # the box is measured from the drawn pixels: exact by construction
        x1, x2, y1, y2 = x0 + xs.min(), x0 + xs.max() + 1, y0 + ys.min(), y0 + ys.max() + 1
        rows.append((cls, (x1 + x2) / 2 / img_size, (y1 + y2) / 2 / img_size,
                     (x2 - x1) / img_size, (y2 - y1) / img_size))
    # Sensor-like noise, about uniform in [-16, 15] (saturating at the ends): random bytes and cv2
    # arithmetic cost a fraction of integers() + clip, and a campaign generates on first use.
    noise = np.frombuffer(rng.bytes(img.size), dtype=np.uint8).reshape(img.shape) >> 3
    img = cv2.subtract(cv2.add(img, noise), np.full_like(img, 16))
    return img, rows


def _background(rng: np.random.Generator, size: int, style: SyntheticStyle) -> np.ndarray:
    """Smooth blotches plus a few grey strokes: texture, but nothing shape-like."""
    grey = rng.integers(*style.background_grey, size=(4, 4, 1))
    tint = rng.integers(-style.background_tint, style.background_tint + 1, size=(4, 4, 3))
    small = np.clip(grey + tint, 0, 255).astype(np.uint8)
    img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(0, style.max_strokes + 1))):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        level = int(rng.integers(40, 220))
        cv2.line(img, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), (level, level, level),
                 int(rng.integers(1, 4)))
    return img


def _shape_mask(rng: np.random.Generator, cls: int, img_size: int, size_range: tuple[float, float]) -> np.ndarray:
    """A filled shape of class `cls` in a (h, w) patch that it spans edge to edge."""
    side = rng.uniform(*size_range) * img_size
    aspect = rng.uniform(0.8, 1.25)
    w = int(np.clip(round(side * aspect**0.5), 4, size_range[1] * img_size))
    h = int(np.clip(round(side / aspect**0.5), 4, size_range[1] * img_size))
    mask = np.zeros((h, w), dtype=np.uint8)
    name = CLASS_NAMES[cls]
    if name == "circle":
        cv2.ellipse(mask, (((w - 1) / 2, (h - 1) / 2), (w, h), 0.0), 255, -1)
    elif name == "square":
        mask[:] = 255
    elif name == "triangle":
        cv2.fillPoly(mask, [np.array([(0, h - 1), (w - 1, h - 1), (w // 2, 0)], dtype=np.int32)], 255)
    else:  # cross: two bars a third of the patch thick
        mask[h // 3 : h - h // 3, :] = 255
        mask[:, w // 3 : w - w // 3] = 255
    return mask


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int], margin: int) -> bool:
    return a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1]
