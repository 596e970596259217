"""The synthetic shapes dataset: deterministic, loadable, and labelled exactly."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo.boxes import xywhn2xyxy
from yolo.data import load_data_config, scan_dataset
from yolo.synthetic import (
    BASE_STYLE, BUILTIN_DATASETS, CLASS_NAMES, DEFAULT_N_TRAIN, DEFAULT_N_VAL, GENERATOR_VERSION, SHIFTED_STYLE,
    SIZE_RANGE,
    SyntheticStyle, builtin_dataset, default_synthetic_dataset, generate_synthetic_dataset,
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
    assert len(first) == 2 * (12 + 4 + 4) + 2 and first == second  # test split: as many as val
    other = generate_synthetic_dataset(tmp_path / "other", **{**SMALL, "seed": 4})
    assert all_bytes(other.parent)["images/train/00000.jpg"] != first["images/train/00000.jpg"]


def test_yaml_loads_and_labels_are_clean(small: Path):
    cfg = load_data_config(small)
    assert cfg.names == list(CLASS_NAMES) and cfg.nc == 4 and len(cfg.train) == 12 and len(cfg.val) == 4
    assert cfg.test is not None and len(cfg.test) == 4 and all(p.parent.name == "test" for p in cfg.test)
    index = scan_dataset(cfg.train + cfg.val + cfg.test, cfg.nc)
    assert index.skipped_images == 0 and index.dropped_labels == 0 and len(index) == 20
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


def test_test_split_leaves_train_and_val_as_they_were(small: Path, tmp_path: Path):
    """Checkpoints (examples/yolov5n-shapes.pt) were trained on train/val made before the test
    split existed: each image's seed includes its split, so a test split must not move them."""
    without = generate_synthetic_dataset(tmp_path / "without", **SMALL, n_test=0)
    assert load_data_config(without).test is None and not (without.parent / "images" / "test").exists()
    with_test, plain = all_bytes(small.parent), all_bytes(without.parent)

    def train_and_val(files: dict[str, bytes]) -> dict[str, bytes]:
        return {k: v for k, v in files.items() if k.split("/")[1:2] in (["train"], ["val"])}

    assert len(train_and_val(plain)) == 2 * (12 + 4) and train_and_val(with_test) == train_and_val(plain)
    assert "test: images/test" in with_test["data.yaml"].decode() and "test:" not in plain["data.yaml"].decode()
    assert with_test["images/test/00000.jpg"] not in (with_test["images/val/00000.jpg"],
                                                      with_test["images/train/00000.jpg"])
    larger = generate_synthetic_dataset(tmp_path / "larger", **SMALL, n_test=7)
    assert len(load_data_config(larger).test) == 7
    assert all_bytes(larger.parent)["images/test/00003.jpg"] == with_test["images/test/00003.jpg"]


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
    assert len(cfg.test) == BUILTIN_DATASETS["synthetic"].n_test == DEFAULT_N_VAL
    index = scan_dataset(cfg.train, cfg.nc)
    counts = np.array([len(r.labels) for r in index.records])
    labels = np.concatenate([r.labels for r in index.records])
    assert counts.max() <= 6 and 0.03 < (counts == 0).mean() < 0.15 and counts.mean() > 2
    assert np.bincount(labels[:, 0].astype(int), minlength=4).min() > 0.2 * len(labels)  # classes balanced
    sides = np.maximum(labels[:, 3], labels[:, 4])
    assert sides.min() >= SIZE_RANGE[0] * 0.7 and sides.max() <= SIZE_RANGE[1] + 0.01


SHIFTED_SMALL = dict(n_train=24, n_val=4, img_size=160, seed=3)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> Path:
    return generate_synthetic_dataset(tmp_path_factory.mktemp("shifted") / "shapes", **SHIFTED_SMALL,
                                      style=SHIFTED_STYLE)


def test_shifted_style_is_deterministic_and_another_dataset(shifted: Path, tmp_path: Path):
    again = generate_synthetic_dataset(tmp_path / "again", **SHIFTED_SMALL, style=SHIFTED_STYLE)
    assert all_bytes(again.parent) == all_bytes(shifted.parent)
    base = generate_synthetic_dataset(tmp_path / "base", **SHIFTED_SMALL)
    base_bytes, shifted_bytes = all_bytes(base.parent), all_bytes(shifted.parent)
    assert base_bytes["images/train/00000.jpg"] != shifted_bytes["images/train/00000.jpg"]
    assert json.loads(shifted_bytes["manifest.json"])["style"]["name"] == "shifted"
    assert json.loads(base_bytes["manifest.json"])["style"]["name"] == "base"
    # Same folder, other style: the manifest differs, so the dataset is regenerated, never reused.
    generate_synthetic_dataset(tmp_path / "base", **SHIFTED_SMALL, style=SHIFTED_STYLE)
    assert all_bytes(tmp_path / "base") == shifted_bytes


def _objects_and_backgrounds(data_yaml: Path) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(labels, mean background BGR per image, median BGR of each object by class order of labels)."""
    cfg = load_data_config(data_yaml)
    labels, backgrounds, colours = [], [], []
    for record in scan_dataset(cfg.train, cfg.nc).records:
        img = cv2.imread(str(record.path)).astype(np.float32)
        h, w = img.shape[:2]
        free = np.ones((h, w), dtype=bool)
        for cls, *box in record.labels:
            x1, y1, x2, y2 = xywhn2xyxy(np.array(box), w, h).astype(int)
            free[max(y1 - 2, 0) : y2 + 2, max(x1 - 2, 0) : x2 + 2] = False
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            colours.append(np.median(img[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3), axis=0))
            labels.append([cls, *box])
        backgrounds.append(img[free].mean(axis=0))
    return np.array(labels), np.array(backgrounds), colours


def test_shifted_style_has_other_colours_backgrounds_and_scales(shifted: Path, tmp_path: Path):
    base = generate_synthetic_dataset(tmp_path / "base", **SHIFTED_SMALL)
    for data_yaml, style in ((base, BASE_STYLE), (shifted, SHIFTED_STYLE)):
        labels, _, colours = _objects_and_backgrounds(data_yaml)
        for (cls, *_box), colour in zip(labels, colours):
            # every object wears its class colour of this style (jitter 25 + sensor noise 16)
            assert np.abs(colour - style.class_colours_bgr[int(cls)]).max() <= 45, (style.name, cls, colour)
        sides = np.maximum(labels[:, 3], labels[:, 4])
        assert sides.min() >= style.size_range[0] * 0.7 and sides.max() <= style.size_range[1] + 0.01
    base_labels, base_bg, _ = _objects_and_backgrounds(base)
    shifted_labels, shifted_bg, _ = _objects_and_backgrounds(shifted)
    assert np.median(np.maximum(shifted_labels[:, 3], shifted_labels[:, 4])) < \
        0.75 * np.median(np.maximum(base_labels[:, 3], base_labels[:, 4]))  # smaller objects
    assert shifted_bg.mean() < base_bg.mean() - 30  # darker backgrounds
    assert shifted_bg.std(axis=1).mean() > base_bg.std(axis=1).mean()  # with stronger colour casts
    assert set(map(tuple, SHIFTED_STYLE.class_colours_bgr)).isdisjoint(map(tuple, BASE_STYLE.class_colours_bgr))


def test_builtin_datasets_by_name(tmp_path: Path):
    assert set(BUILTIN_DATASETS) >= {"synthetic", "synthetic-shifted"}
    assert BUILTIN_DATASETS["synthetic-shifted"].style == SHIFTED_STYLE
    assert BUILTIN_DATASETS["synthetic-shifted"].folder_name() != BUILTIN_DATASETS["synthetic"].folder_name()
    assert BUILTIN_DATASETS["synthetic"].folder_name() == f"shapes-v{GENERATOR_VERSION}-512-128-128-256"
    shifted = load_data_config(builtin_dataset("synthetic-shifted", tmp_path))
    assert (len(shifted.train), len(shifted.val), len(shifted.test)) == (256, 64, 64)
    with pytest.raises(ValueError, match="unknown built-in dataset"):
        builtin_dataset("synthetic-elsewhere", tmp_path)
    with pytest.raises(ValueError, match="class colours"):
        SyntheticStyle("broken", class_colours_bgr=((0, 0, 0),))
