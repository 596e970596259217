"""Data yaml, scanning, the Dataset (geometry, determinism, rect) and the loader."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolo.boxes import scale_boxes, xywhn2xyxy
from yolo.data import label_path, load_data_config, scan_dataset
from yolo.loader import DetectionDataset, create_dataloader, rect_batch_shapes
from yolo.hyp import Hyperparameters

COCO128 = Path(os.environ.get("EVOLVER_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "datasets" / "coco128" / "coco128.yaml"
COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0),
           (255, 255, 255), (0, 0, 0)]
# (h, w) and rectangles (cls, x1, y1, x2, y2); every class (colour) appears once in the dataset
CLEAN_IMAGES = {
    "wide": ((120, 200), [(0, 10, 10, 70, 60), (1, 120, 50, 190, 110)]),
    "tall": ((200, 120), [(2, 10, 20, 60, 90), (3, 30, 120, 110, 190)]),
    "square": ((160, 160), [(4, 10, 10, 70, 70), (5, 90, 80, 150, 150)]),
    "small": ((90, 130), [(6, 5, 5, 50, 40), (7, 70, 30, 125, 85)]),
}
NO_COLOUR_JITTER = dict(hsv_h=0.0, hsv_s=0.0, hsv_v=0.0)


def write_image(root: Path, name: str, shape: tuple[int, int], rects, split: str = "train") -> Path:
    img = np.full((*shape, 3), 114, dtype=np.uint8)
    lines = []
    for cls, x1, y1, x2, y2 in rects:
        img[y1:y2, x1:x2] = COLOURS[cls]
        h, w = shape
        lines.append(f"{cls} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} {(y2 - y1) / h}")
    path = root / "images" / split / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    if lines:
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return path


def write_yaml(root: Path, text: str) -> Path:
    path = root / "data.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    for name, (shape, rects) in CLEAN_IMAGES.items():
        write_image(tmp_path, name, shape, rects)
    return write_yaml(tmp_path, "path: .\ntrain: images/train\nval: images/train\nnames: [" +
                      ", ".join(f"c{i}" for i in range(8)) + "]\n")


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """Good images plus a corrupt one, a background, and a label file with bad lines."""
    write_image(tmp_path, "a", (64, 64), [(0, 4, 4, 20, 20), (1, 30, 30, 60, 50)])
    write_image(tmp_path, "background", (64, 80), [])
    bad = write_image(tmp_path, "bad", (64, 64), [(0, 10, 10, 30, 30)])
    label_path(bad).write_text(
        "0 0.3 0.3 0.2 0.2\n"  # fine
        "1 0.5 0.5 0.2\n"  # 4 columns
        "1 1.5 0.5 0.2 0.2\n"  # x out of range
        "7 0.5 0.5 0.2 0.2\n"  # class 7 with nc=2
        "1 0.5 abc 0.2 0.2\n"  # not a number
        "\n"
        "1 1.004 0.5 0.2 0.2\n"  # within tolerance: kept, clipped to the image
    )
    (tmp_path / "images" / "train" / "corrupt.jpg").write_bytes(b"\xff\xd8 certainly not a jpeg")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "val.txt").write_text("images/train/a.png\n\nimages/train/gone.png\n")
    return write_yaml(tmp_path, "path: .\ntrain: images/train\nval: [lists/val.txt, images/train/bad.png]\n"
                                "names: {0: cat, 1: dog}\nnc: 2\n")


def to_bgr(img: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(img.numpy().transpose(1, 2, 0)[:, :, ::-1])


def assert_labels_on_pixels(img: torch.Tensor, labels: torch.Tensor, atol: float = 2.5) -> None:
    """Each label's box must be the box of one blob of its class colour (a mosaic may repeat an image)."""
    bgr = to_bgr(img)
    h, w = bgr.shape[:2]
    assert (labels[:, 0] == 0).all()
    for row in labels[:, 1:].numpy():
        mask = np.abs(bgr.astype(np.int16) - COLOURS[int(row[0])]).max(axis=2) < 64
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
        blobs = [(x, y, x + bw, y + bh) for x, y, bw, bh, _ in stats[1:n]]
        assert blobs, f"class {int(row[0])} labelled but not visible"
        box = xywhn2xyxy(row[1:5], w, h)
        error = min(np.abs(box - np.array(blob)).max() for blob in blobs)
        assert error <= atol, f"class {int(row[0])}: box {box} vs blobs {blobs}"


# ---------------------------------------------------------------- data yaml


def test_folder_source_and_names_list(clean: Path):
    cfg = load_data_config(clean)
    assert cfg.root == clean.parent.resolve() and cfg.nc == 8 and cfg.names[3] == "c3"
    assert [p.name for p in cfg.train] == ["small.png", "square.png", "tall.png", "wide.png"]
    assert cfg.val == cfg.train


def test_list_file_sources_names_dict_and_missing_images(messy: Path):
    cfg = load_data_config(messy)
    assert cfg.names == ["cat", "dog"] and cfg.nc == 2
    root = messy.parent.resolve()
    assert cfg.val == [root / "images/train/a.png", root / "images/train/gone.png", root / "images/train/bad.png"]
    index = scan_dataset(cfg.val, cfg.nc)
    assert len(index) == 2 and index.skipped_images == 1
    assert any("gone.png" in p and "missing" in p for p in index.problems)


@pytest.mark.parametrize(
    "text, message",
    [("train: images/train\nnames: [a]\n", "'val' is missing"),
     ("train: images/train\nval: images/nope\nnames: [a]\n", "images/nope"),
     ("train: images/train\nval: images/train\nnames: [a, b]\nnc: 3\n", "'nc'"),
     ("train: images/train\nval: images/train\nnames: {0: a, 2: b}\n", "'names'"),
     ("train: images/train\nval: images/train\n", "'names' is missing"),
     ("train: 5\nval: images/train\nnames: [a]\n", "'train'"),
     ("- just a list\n", "mapping")],
)
def test_bad_yaml_names_the_field(clean: Path, text: str, message: str):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        load_data_config(write_yaml(clean.parent, text))


def test_missing_path_is_an_error_naming_it_as_written(clean: Path):
    """No silent fallback to the yaml's folder: that only fails later, about paths never written."""
    path = write_yaml(clean.parent, "path: ../datasets/elsewhere\ntrain: images/train\nval: images/train\nnames: [a]\n")
    with pytest.raises(ValueError, match=r"data\.yaml: path: \.\./datasets/elsewhere does not exist \(looked for "):
        load_data_config(path)


def test_label_path_rule():
    assert label_path(Path("/d/images/x/images/train/a.b.jpg")) == Path("/d/images/x/labels/train/a.b.txt")
    assert label_path(Path("/d/pics/a.png")) == Path("/d/pics/a.txt")


def test_coco128_loads_and_scans():
    cfg = load_data_config(COCO128)
    assert cfg.nc == 80 and cfg.names[0] == "person" and len(cfg.train) == 128
    index = scan_dataset(cfg.train[:16], cfg.nc)
    assert index.summary().startswith("16 images,") and index.skipped_images == 0


# ---------------------------------------------------------------- the test split, Roboflow's layout


@pytest.mark.parametrize("test_line", ["", "test:\n", "test: ''\n", "test: null\n"])
def test_no_test_split_is_none_and_asking_for_it_names_the_yaml(clean: Path, test_line: str):
    path = write_yaml(clean.parent, "path: .\ntrain: images/train\nval: images/train\n" + test_line + "names: [a]\n")
    cfg = load_data_config(path)
    assert cfg.test is None and cfg.yaml_path == path
    assert cfg.split_files("train") == cfg.train and cfg.split_files("val") == cfg.val
    with pytest.raises(ValueError, match="^" + re.escape(f"{path} has no 'test' split (add 'test:' to it")) as err:
        cfg.split_files("test")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=re.escape("unknown split 'valid' (expected one of train, val, test)")):
        cfg.split_files("valid")


def test_test_split_reads_like_train_and_val(messy: Path):
    root = messy.parent
    (root / "lists" / "test.txt").write_text("images/train/a.png\n")
    path = write_yaml(root, "path: .\ntrain: images/train\nval: images/train\n"
                            "test: [lists/test.txt, images/train/bad.png]\nnames: [cat, dog]\n")
    cfg = load_data_config(path)
    assert cfg.split_files("test") == cfg.test == [root.resolve() / "images/train/a.png",
                                                   root.resolve() / "images/train/bad.png"]
    with pytest.raises(ValueError, match="'test' path does not exist: .*images/nope"):
        load_data_config(write_yaml(root, "train: images/train\nval: images/train\ntest: images/nope\nnames: [a]\n"))


ROBOFLOW_SPLITS = {"train": 3, "valid": 2, "test": 2}  # folder: images
ROBOFLOW_YAML = """train: ../train/images
val: ../valid/images
test: ../test/images

nc: 4
names: ['circle', 'square', 'triangle', 'cross']

roboflow:
  workspace: someone
  project: shapes
  version: 1
  license: CC BY 4.0
  url: https://universe.roboflow.com/someone/shapes/dataset/1
"""


@pytest.fixture
def roboflow(tmp_path: Path) -> Path:
    """A dataset as Roboflow's "YOLOv5 PyTorch" export unzips: data.yaml beside train/ valid/ test/,
    each with images/ and labels/, and split paths written as `../<split>/images`."""
    from yolo.synthetic import render_image

    root = tmp_path / "shapes.v1i.yolov5pytorch"
    for number, (folder, count) in enumerate(ROBOFLOW_SPLITS.items()):
        (root / folder / "images").mkdir(parents=True)
        (root / folder / "labels").mkdir(parents=True)
        for i in range(count):
            img, rows = render_image(np.random.default_rng([7, number, i]), 64)
            stem = f"shape{i}_png.rf.{number}{i:030d}"
            cv2.imwrite(str(root / folder / "images" / f"{stem}.jpg"), img)
            (root / folder / "labels" / f"{stem}.txt").write_text(
                "".join(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, cx, cy, w, h in rows))
    return write_yaml(root, ROBOFLOW_YAML)


def test_roboflow_export_loads_with_all_three_splits(roboflow: Path):
    cfg = load_data_config(roboflow)
    root = roboflow.parent.resolve()
    assert cfg.root == root and cfg.names == ["circle", "square", "triangle", "cross"]
    for split, folder in (("train", "train"), ("val", "valid"), ("test", "test")):
        files = cfg.split_files(split)
        assert len(files) == ROBOFLOW_SPLITS[folder] and all(f.parent == root / folder / "images" for f in files)
        index = scan_dataset(files, cfg.nc)
        assert len(index) == len(files) and index.dropped_labels == 0
        assert all(label_path(r.path).is_file() for r in index.records)  # labels/ beside images/
    assert sum(len(r.labels) for r in scan_dataset(cfg.test, cfg.nc).records) > 0


def test_roboflow_path_as_written_wins_when_it_exists(roboflow: Path):
    outside = roboflow.parent.parent / "train" / "images"  # what `../train/images` names literally
    outside.mkdir(parents=True)
    cv2.imwrite(str(outside / "elsewhere.png"), np.zeros((8, 8, 3), np.uint8))
    cfg = load_data_config(roboflow)
    assert [p.name for p in cfg.train] == ["elsewhere.png"] and len(cfg.val) == ROBOFLOW_SPLITS["valid"]


def test_roboflow_split_missing_in_both_places_names_the_path_as_written(roboflow: Path):
    shutil.rmtree(roboflow.parent / "test")
    with pytest.raises(ValueError) as err:
        load_data_config(roboflow)
    message = str(err.value)
    assert message.startswith(f"{roboflow}: 'test' path does not exist: ../test/images (looked for ")
    assert str(roboflow.parent / "test" / "images") in message and "\n" not in message


# ---------------------------------------------------------------- scanning


def test_scan_skips_and_counts_bad_input(messy: Path, caplog):
    cfg = load_data_config(messy)
    with caplog.at_level(logging.INFO, logger="yolo.data"):
        index = scan_dataset(cfg.train, cfg.nc)
    summary = "3 images, 4 boxes, 1 backgrounds, 1 skipped images, 4 dropped labels"
    assert index.summary() == summary and summary in caplog.text
    assert any("corrupt.jpg" in p and "corrupt" in p for p in index.problems)
    reasons = " | ".join(index.problems)
    for reason in ("4 columns", "out of [0, 1]", "unknown class 7", "not a number"):
        assert reason in reasons
    bad = next(r for r in index.records if r.path.name == "bad.png")
    np.testing.assert_allclose(bad.labels[1], [1, 0.952, 0.5, 0.096, 0.2], atol=1e-6)  # x2 clipped to 1
    assert {r.path.name: r.shape for r in index.records}["background.png"] == (64, 80)


# ---------------------------------------------------------------- dataset


def test_validation_item_maps_back_to_the_original(clean: Path):
    cfg = load_data_config(clean)
    ds = DetectionDataset(scan_dataset(cfg.val, cfg.nc), 160, Hyperparameters(), augment=False)
    for i in range(len(ds)):
        img, labels, path, ((h0, w0), ratio_pad) = ds[i]
        assert img.shape == (3, 160, 160) and img.dtype == torch.uint8 and img.is_contiguous()
        assert_labels_on_pixels(img, labels, atol=1.5)
        boxes = xywhn2xyxy(labels[:, 2:].clone(), 160, 160)
        original = scale_boxes((160, 160), boxes, (h0, w0), ratio_pad)
        rects = CLEAN_IMAGES[Path(path).stem][1]
        np.testing.assert_allclose(original.numpy(), [r[1:] for r in rects], atol=1.0)


def test_rect_batches_share_a_stride_multiple_shape(clean: Path):
    index = scan_dataset(load_data_config(clean).val, 8)
    ds = DetectionDataset(index, 160, Hyperparameters(), augment=False, rect=True, batch_size=2, pad=0.5)
    assert ds.batch_shapes.tolist() == [[128, 192], [192, 192]]  # the wide pair, then square + tall
    shapes = []
    for imgs, targets, paths, meta in create_dataloader(ds, 2, shuffle=True, workers=0, seed=0):
        shapes.append(tuple(imgs.shape[2:]))
        for j in range(len(paths)):
            own = targets[targets[:, 0] == j].clone()
            own[:, 0] = 0
            assert_labels_on_pixels(imgs[j], own, 1.5)
    assert shapes == [(128, 192), (192, 192)]
    order, batch = rect_batch_shapes([(100, 200), (200, 100)], 64, 1, 32, 0.0)
    assert order.tolist() == [0, 1] and batch.tolist() == [[32, 64], [64, 32]]


@pytest.mark.parametrize("mosaic", [1.0, 0.0])
def test_training_items_keep_boxes_on_pixels(clean: Path, mosaic: float):
    hyp = Hyperparameters().replace(mosaic=mosaic, scale=0.5, translate=0.2, flipud=0.5, fliplr=0.5,
                                    **NO_COLOUR_JITTER)
    ds = DetectionDataset(scan_dataset(load_data_config(clean).train, 8), 160, hyp, augment=True, cache_images=True)
    seen = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            img, labels, _, shapes = ds[i]
            assert img.shape == (3, 160, 160) and (shapes is None) == (mosaic == 1.0)
            if len(labels):
                assert_labels_on_pixels(img, labels)
            seen += len(labels)
    assert seen > 10


def test_mixup_adds_a_second_mosaic(clean: Path):
    index = scan_dataset(load_data_config(clean).train, 8)
    plain = DetectionDataset(index, 160, Hyperparameters().replace(mixup=0.0, scale=0.0), augment=True)
    mixed = DetectionDataset(index, 160, Hyperparameters().replace(mixup=1.0, scale=0.0), augment=True)
    counts = [(len(plain[i][1]), len(mixed[i][1])) for i in range(4)]
    assert all(m >= p for p, m in counts) and sum(m for _, m in counts) > sum(p for p, _ in counts)


def test_samples_repeat_exactly_and_change_with_epoch_and_seed(clean: Path):
    index = scan_dataset(load_data_config(clean).train, 8)
    hyp = Hyperparameters().replace(mixup=0.5, degrees=5.0)
    a = DetectionDataset(index, 128, hyp, augment=True, seed=7)
    b = DetectionDataset(index, 128, hyp, augment=True, seed=7, cache_images=True)
    for i in range(len(a)):
        (ia, la, *_), (ib, lb, *_) = a[i], b[i]
        assert torch.equal(ia, ib) and torch.equal(la, lb)
    first = [a[i][0] for i in range(len(a))]
    a.set_epoch(1)
    assert a.epoch == 1 and not all(torch.equal(x, a[i][0]) for i, x in enumerate(first))
    other_seed = DetectionDataset(index, 128, hyp, augment=True, seed=8)
    assert not all(torch.equal(x, other_seed[i][0]) for i, x in enumerate(first))


def test_collate_numbers_images():
    img = torch.zeros((3, 8, 8), dtype=torch.uint8)
    batch = [(img, torch.ones((2, 6)), "a", None), (img, torch.zeros((0, 6)), "b", None),
             (img, torch.ones((1, 6)), "c", None)]
    imgs, targets, paths, shapes = DetectionDataset.collate(batch)
    assert imgs.shape == (3, 3, 8, 8) and targets[:, 0].tolist() == [0, 0, 2] and paths == ("a", "b", "c")


def test_loader_is_the_same_with_or_without_workers_across_epochs(clean: Path):
    index = scan_dataset(load_data_config(clean).train, 8)
    runs = []
    for workers in (0, 2):
        ds = DetectionDataset(index, 96, Hyperparameters(), augment=True, seed=3)
        loader = create_dataloader(ds, 2, shuffle=True, workers=workers, seed=5)
        epochs = []
        for epoch in range(2):
            ds.set_epoch(epoch)  # persistent workers see it: the epoch lives in shared memory
            epochs.append([(imgs, targets, paths) for imgs, targets, paths, _ in loader])
        runs.append(epochs)
    for epoch in range(2):
        for (i0, t0, p0), (i2, t2, p2) in zip(runs[0][epoch], runs[1][epoch]):
            assert p0 == p2 and torch.equal(i0, i2) and torch.equal(t0, t2)
    assert [p for *_, p in runs[0][0]] != [p for *_, p in runs[0][1]]  # reshuffled per epoch
    assert not torch.equal(runs[0][0][0][0], runs[0][1][0][0])
