"""Every command that takes weights takes a YOLOv5 `.pt` as it takes ours: val (ensembles mixing
the two, TTA), predict, prune, export, convert."""

from __future__ import annotations

import shutil

import pytest
import torch

from evolver.cli import main
from tests.paths import YOLOV5_FIXTURES
from yolo.checkpoint import load_checkpoint
from yolo.ensemble import load_detector

YOLOV5N = YOLOV5_FIXTURES / "yolov5n-coco128-best.pt"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "yolov5n-evolver.pt"
    assert main(["convert", str(YOLOV5N), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def coco128_few(coco128_dir, tmp_path_factory):
    """16 COCO128 images with their labels, as a data yaml (val = train)."""
    root = tmp_path_factory.mktemp("coco16")
    for kind in ("images", "labels"):
        (root / kind).mkdir()
    for image in sorted((coco128_dir / "images" / "train2017").glob("*.jpg"))[:16]:
        shutil.copy(image, root / "images" / image.name)
        label = coco128_dir / "labels" / "train2017" / f"{image.stem}.txt"
        if label.is_file():
            shutil.copy(label, root / "labels" / label.name)
    names = load_checkpoint(YOLOV5N).names
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images\nval: images\nnames: {names}\n")
    return root / "data.yaml"


def test_ensemble_of_a_yolov5_file_and_its_converted_copy_is_the_model_twice(converted):
    images = torch.rand(1, 3, 160, 160)
    single, _ = load_detector(YOLOV5N)
    pair, checkpoints = load_detector([YOLOV5N, converted])
    assert [c.origin for c in checkpoints] == ["yolov5", "evolver"]
    with torch.no_grad():
        alone = single(images)[0]
        torch.testing.assert_close(pair(images)[0], torch.cat([alone, alone], 1))  # boxes of both members


def test_val_predict_prune_export_take_a_yolov5_file(converted, coco128_few, tmp_path, capsys):
    assert main(["val", "--weights", str(YOLOV5N), str(converted), "--augment", "--data", str(coco128_few),
                 "--img", "160"]) == 0
    assert "mAP@0.5:0.95" in capsys.readouterr().out
    assert main(["predict", "--weights", str(YOLOV5N), "--source", str(coco128_few.parent / "images"),
                 "--img", "160", "--conf", "0.01", "--project", str(tmp_path), "--name", "pred"]) == 0
    assert "16 image(s)" in capsys.readouterr().out
    pruned = tmp_path / "pruned.pt"
    assert main(["prune", "--weights", str(YOLOV5N), "--amount", "0.2", "--data", str(coco128_few),
                 "--img", "160", "--out", str(pruned)]) == 0
    assert load_checkpoint(pruned).origin == "evolver"
    assert main(["export", "--weights", str(YOLOV5N), "--include", "onnx,wts", "--img", "160",
                 "--out", str(tmp_path / "exported")]) == 0
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["yolov5n-coco128-best.onnx",
                                                                         "yolov5n-coco128-best.wts"]


def test_convert_refuses_what_it_cannot_read(tmp_path, capsys):
    bad = tmp_path / "not-a-checkpoint.pt"
    bad.write_bytes(b"hello")
    assert main(["convert", str(bad), "-o", str(tmp_path / "out.pt")]) == 2
    assert "not-a-checkpoint.pt" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()
