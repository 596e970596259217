"""Prediction end to end: `evolver predict` on a few images writes annotated images and YOLO txt
results whose values are the detections the Python API returns."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from yolo.cli import main
from yolo.data import load_data_config
from yolo.predict import list_images, predict


@pytest.fixture
def image_dir(tiny_synthetic, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(load_data_config(tiny_synthetic).val)[:3]:
        shutil.copy(path, folder / path.name)
    return folder


def _read_txt(path) -> np.ndarray:
    rows = [line.split() for line in path.read_text().splitlines()]
    assert all(len(row) == 6 for row in rows)
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def test_predict_cli_writes_images_and_txt_matching_the_api(trained_run, image_dir, tmp_path, capsys):
    config, result, _ = trained_run
    args = ["--weights", str(result.weights), "--source", str(image_dir), "--img", str(config.img_size),
            "--conf", "0.001"]  # the 6-epoch fixture model is barely confident about anything
    assert main(["predict", *args, "--save-txt", "--project", str(tmp_path / "runs"), "--name", "exp"]) == 0
    out = tmp_path / "runs" / "exp"
    assert "3 image(s)" in capsys.readouterr().out

    returned = predict([result.weights], image_dir, img_size=config.img_size, conf=0.001, save_txt=False,
                       out_dir=tmp_path / "api", save_images=False)
    assert [r.source.name for r in returned] == sorted(p.name for p in image_dir.iterdir())
    assert sum(len(r.detections) for r in returned) > 0
    for r in returned:
        source = cv2.imread(str(r.source))
        annotated = cv2.imread(str(out / r.source.name))
        assert annotated is not None and annotated.shape == source.shape
        assert (annotated != source).any() == bool(r.detections)  # boxes drawn exactly when found
        rows = _read_txt(out / "labels" / f"{r.source.stem}.txt")
        assert len(rows) == len(r.detections)
        for row, det in zip(rows, r.detections):
            assert int(row[0]) == det.cls
            assert row[1:5] == pytest.approx(det.xywhn(r.width, r.height), abs=1e-5)
            assert row[5] == pytest.approx(det.confidence, abs=1e-5) and row[5] >= 0.001
            assert np.all((row[1:5] >= 0) & (row[1:5] <= 1))
            x1, y1, x2, y2 = det.xyxy
            assert 0 <= x1 < x2 <= r.width and 0 <= y1 < y2 <= r.height


def test_predict_with_ensemble_and_tta_on_one_image(trained_run, image_dir, tmp_path):
    config, result, _ = trained_run
    image = min(image_dir.iterdir())
    plain = predict(result.weights, image, img_size=config.img_size, conf=0.001, out_dir=tmp_path / "a")
    mixed = predict([result.weights, result.weights], image, img_size=config.img_size, conf=0.001, augment=True,
                    save_txt=True, out_dir=tmp_path / "b")
    assert len(plain) == len(mixed) == 1 and mixed[0].txt is not None and mixed[0].txt.is_file()
    assert mixed[0].annotated == tmp_path / "b" / image.name and mixed[0].annotated.is_file()
    assert len(_read_txt(mixed[0].txt)) == len(mixed[0].detections)
    assert plain[0].detections and mixed[0].detections


def test_list_images_rejects_what_is_not_an_image(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no images"):
        list_images(tmp_path)
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing.jpg")
