"""A small synthetic YOLO dataset of solid shapes on noisy backgrounds: the embedded default.

It exists so that everything (tests, the embedded campaign, demos) can train without downloading
data, and so that a short training actually learns: four shape classes with distinct colours,
drawn filled, 8-45 % of the image side, never overlapping, with exact boxes measured from the
drawn pixels. Generation is seeded per image, so the same arguments always give the same bytes.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import yaml

CLASS_NAMES = ("circle", "square", "triangle", "cross")
CLASS_COLOURS_BGR = ((40, 40, 220), (50, 190, 50), (220, 90, 30), (30, 210, 230))  # red green blue yellow
GENERATOR_VERSION = 1
DEFAULT_N_TRAIN, DEFAULT_N_VAL, DEFAULT_IMG_SIZE = 512, 128, 256
SIZE_RANGE = (0.08, 0.45)  # object side as a fraction of the image side
MAX_OBJECTS = 6
BACKGROUND_FRACTION = 0.08  # images with no object at all
JPEG_QUALITY = 95
_SPLIT_IDS = {"train": 0, "val": 1}


def generate_synthetic_dataset(
    root: Path,
    n_train: int = DEFAULT_N_TRAIN,
    n_val: int = DEFAULT_N_VAL,
    img_size: int = DEFAULT_IMG_SIZE,
    seed: int = 0,
) -> Path:
    """Write the dataset under `root` (owned by the generator) and return its data yaml.

    A `manifest.json` records the arguments; when it matches, the existing dataset is reused.
    A folder that is neither empty nor a synthetic dataset is never overwritten. A lock file
    beside `root` keeps concurrent callers (several workers on one machine) from racing.
    """
    root = Path(root).expanduser().resolve()
    params = {"generator": "evolver-shapes", "version": GENERATOR_VERSION, "n_train": n_train,
              "n_val": n_val, "img_size": img_size, "seed": seed}
    if min(n_train, n_val) < 1 or img_size < 32:
        raise ValueError(f"need n_train, n_val >= 1 and img_size >= 32, got {params}")
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
            for split, count in (("train", n_train), ("val", n_val)):
                _write_split(staging, split, count, img_size, seed)
            _write_yaml(staging / "data.yaml")
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
    base = Path(cache_root) if cache_root is not None else Path.home() / ".cache" / "evolver" / "synthetic"
    name = f"shapes-v{GENERATOR_VERSION}-{DEFAULT_N_TRAIN}-{DEFAULT_N_VAL}-{DEFAULT_IMG_SIZE}"
    return generate_synthetic_dataset(base / name)


def _read_manifest(root: Path) -> dict | None:
    try:
        data = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == "evolver-shapes" else None


def _write_yaml(path: Path) -> None:
    content = {"path": ".", "train": "images/train", "val": "images/val",
               "nc": len(CLASS_NAMES), "names": list(CLASS_NAMES)}
    header = "# Synthetic shapes (evolver): generated, do not edit. Paths relative to this file.\n"
    path.write_text(header + yaml.safe_dump(content, sort_keys=False), encoding="utf-8")


def _write_split(root: Path, split: str, count: int, img_size: int, seed: int) -> None:
    images, labels = root / "images" / split, root / "labels" / split
    images.mkdir(parents=True)
    labels.mkdir(parents=True)

    def write_one(i: int) -> None:
        rng = np.random.default_rng([seed, _SPLIT_IDS[split], i])  # per image: order-free, thread-safe
        img, rows = render_image(rng, img_size)
        ok, encoded = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"JPEG encoding failed for {split} image {i}")
        (images / f"{i:05d}.jpg").write_bytes(encoded.tobytes())
        text = "".join(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, cx, cy, w, h in rows)
        (labels / f"{i:05d}.txt").write_text(text, encoding="utf-8")

    # numpy and OpenCV release the GIL in the heavy parts, so threads overlap the work.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(write_one, range(count)))


def render_image(rng: np.random.Generator, img_size: int) -> tuple[np.ndarray, list[tuple]]:
    """One BGR image and its labels [(cls, cx, cy, w, h) normalised], all drawn from `rng`."""
    img = _background(rng, img_size)
    count = 0 if rng.random() < BACKGROUND_FRACTION else int(rng.integers(1, MAX_OBJECTS + 1))
    taken: list[tuple[int, int, int, int]] = []
    rows = []
    for _ in range(count):
        cls = int(rng.integers(len(CLASS_NAMES)))
        mask = _shape_mask(rng, cls, img_size)
        ph, pw = mask.shape
        for _attempt in range(20):  # rejection sampling for a free spot; give up quietly
            x0, y0 = int(rng.integers(0, img_size - pw + 1)), int(rng.integers(0, img_size - ph + 1))
            box = (x0, y0, x0 + pw, y0 + ph)
            if all(_apart(box, other, margin=3) for other in taken):
                break
        else:
            continue
        taken.append(box)
        colour = np.clip(np.array(CLASS_COLOURS_BGR[cls]) + rng.integers(-25, 26, 3), 0, 255)
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


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth low-saturation blotches plus a few grey strokes: texture, but nothing shape-like."""
    grey = rng.integers(70, 190, size=(4, 4, 1))
    tint = rng.integers(-18, 19, size=(4, 4, 3))
    small = np.clip(grey + tint, 0, 255).astype(np.uint8)
    img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(0, 4))):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        level = int(rng.integers(40, 220))
        cv2.line(img, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), (level, level, level),
                 int(rng.integers(1, 4)))
    return img


def _shape_mask(rng: np.random.Generator, cls: int, img_size: int) -> np.ndarray:
    """A filled shape of class `cls` in a (h, w) patch that it spans edge to edge."""
    side = rng.uniform(*SIZE_RANGE) * img_size
    aspect = rng.uniform(0.8, 1.25)
    w = int(np.clip(round(side * aspect**0.5), 4, SIZE_RANGE[1] * img_size))
    h = int(np.clip(round(side / aspect**0.5), 4, SIZE_RANGE[1] * img_size))
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
