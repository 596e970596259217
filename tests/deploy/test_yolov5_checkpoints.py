"""Deploying YOLOv5's own checkpoints: ONNX that reproduces YOLOv5's outputs, and the `.wts`
TensorRTx's yolov5 builder reads (checked against the manifest of what its gen_wts.py writes)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from deploy.export import export_weights
from deploy.onnx_runtime import OnnxDetector
from deploy.wts import read_wts
from tests.paths import YOLOV5_FIXTURES

FIXTURES = YOLOV5_FIXTURES


@pytest.mark.parametrize("name", ("yolov5n-coco128-best", "yolov5n-coco128-epoch1", "yolov5s-coco128-best"))
def test_onnx_export_of_a_yolov5_checkpoint_matches_yolov5s_outputs(name, tmp_path):
    reference = np.load(FIXTURES / f"{name}.npz")
    (item,) = export_weights(FIXTURES / f"{name}.pt", ["onnx"], img_size=256, dynamic=True, out_dir=tmp_path)
    detector = OnnxDetector(item.path)
    assert detector.names[:2] == ["person", "bicycle"]
    for images, output in (("images", "output0"), ("rect_images", "rect_output0")):
        ours = detector(reference[images].astype(np.float32) / 255)
        expected = reference[output]
        assert ours.shape == expected.shape
        assert (np.abs(ours - expected) / np.maximum(1.0, np.abs(expected))).max() <= 1e-4, (name, images)


def test_wts_of_a_yolov5_checkpoint_is_what_tensorrtx_reads(tmp_path):
    (item,) = export_weights(FIXTURES / "yolov5n-coco128-best.pt", ["wts"], img_size=320, out_dir=tmp_path)
    manifest = [line.split() for line in (FIXTURES / "yolov5n-coco128-best.wts-manifest.txt").read_text().splitlines()
                if line and not line.startswith("#")]
    wts = read_wts(item.path)
    ours = [[name, str(values.size), hashlib.sha256(values.astype(">f4").tobytes()).hexdigest()]
            for name, values in wts.items()]
    assert len(ours) == len(manifest) == 351
    assert [row[0] for row in ours] == [row[0] for row in manifest]  # names, in file order
    assert ours == manifest  # counts and value hashes too
    assert wts["model.24.strides"].tolist() == [8.0, 16.0, 32.0]
    np.testing.assert_array_equal(wts["model.24.anchor_grid"], wts["model.24.anchors"] * np.repeat([8, 16, 32], 6))
