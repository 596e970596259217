"""The synthetic shapes dataset: deterministic, loadable, and labelled exactly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo.boxes import xywhn2xyxy
from yolo.data import load_data_config, scan_dataset
from yolo.synthetic import (
    CLASS_NAMES, DEFAULT_N_TRAIN, DEFAULT_N_VAL, SIZE_RANGE, default_synthetic_dataset, generate_synthetic_dataset,
)

SMALL = dict(n_train=12, n_val=4, img_size=128, seed=3)


def all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate_synthetic_dataset(tmp_path_factory.mktemp("syn") / "shapes", **SMALL)


def test_same_seed_same_bytes_other_seed_other_bytes(small: Path, tmp_path: Path):
    again = generate_synthetic_dataset(tmp_path / "again", **SMALL)
    first, second = all_bytes(small.parent), all_bytes(again.parent)
    assert len(first) == 2 * (12 + 4) + 2 and first == second
    other = generate_synthetic_dataset(tmp_path / "other", **{**SMALL, "seed": 4})
    assert all_bytes(other.parent)["images/train/00000.jpg"] != first["images/train/00000.jpg"]


def test_yaml_loads_and_labels_are_clean(small: Path):
    cfg = load_data_config(small)
    assert cfg.names == list(CLASS_NAMES) and cfg.nc == 4 and len(cfg.train) == 12 and len(cfg.val) == 4
    index = scan_dataset(cfg.train + cfg.val, cfg.nc)
    assert index.skipped_images == 0 and index.dropped_labels == 0 and len(index) == 16
    assert all(r.shape == (128, 128) for r in index.records)


def test_label_boxes_match_the_drawn_shapes(small: Path):
    cfg = load_data_config(small)
    checked = 0
    for record in scan_dataset(cfg.train, cfg.nc).records:
        img = cv2.imread(str(record.path)).astype(np.int16)
        for cls, *box in record.labels:
            x1, y1, x2, y2 = xywhn2xyxy(np.array(box), 128, 128)
            colour = np.median(img[int((y1 + y2) / 2) - 1 : int((y1 + y2) / 2) + 2,
                                   int((x1 + x2) / 2) - 1 : int((x1 + x2) / 2) + 2].reshape(-1, 3), axis=0)
            # the shape's own colour, looked for in the box grown by 2 px (neighbours keep 3 px away)
            a, b = int(max(x1 - 2, 0)), int(max(y1 - 2, 0))
            window = img[b : int(y2) + 2, a : int(x2) + 2]
            ys, xs = np.nonzero(np.abs(window - colour).max(axis=2) < 45)
            found = np.array([xs.min() + a, ys.min() + b, xs.max() + a + 1, ys.max() + b + 1])
            np.testing.assert_allclose(found, [x1, y1, x2, y2], atol=2.0,
                                       err_msg=f"{record.path} {CLASS_NAMES[int(cls)]}")
            checked += 1
    assert checked >= 12


def test_reuse_regenerate_and_refuse(small: Path, tmp_path: Path):
    stamp = small.stat().st_mtime_ns
    assert generate_synthetic_dataset(small.parent, **SMALL) == small and small.stat().st_mtime_ns == stamp
    root = tmp_path / "shapes"
    generate_synthetic_dataset(root, **SMALL)
    generate_synthetic_dataset(root, **{**SMALL, "n_train": 5})
    assert len(list((root / "images" / "train").iterdir())) == 5  # old files gone, not mixed in
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match="refusing"):
        generate_synthetic_dataset(tmp_path / "mine", **SMALL)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def test_default_dataset_has_the_intended_mix(tmp_path: Path):
    cfg = load_data_config(default_synthetic_dataset(tmp_path))
    assert len(cfg.train) == DEFAULT_N_TRAIN and len(cfg.val) == DEFAULT_N_VAL
    index = scan_dataset(cfg.train, cfg.nc)
    counts = np.array([len(r.labels) for r in index.records])
    labels = np.concatenate([r.labels for r in index.records])
    assert counts.max() <= 6 and 0.03 < (counts == 0).mean() < 0.15 and counts.mean() > 2
    assert np.bincount(labels[:, 0].astype(int), minlength=4).min() > 0.2 * len(labels)  # classes balanced
    sides = np.maximum(labels[:, 3], labels[:, 4])
    assert sides.min() >= SIZE_RANGE[0] * 0.7 and sides.max() <= SIZE_RANGE[1] + 0.01
