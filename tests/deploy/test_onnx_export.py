"""ONNX export: graph contract, parity with torch on COCO128, dynamic axes, the inference helper, CLI."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from deploy.export import check_parity, detections_equal, export_weights, parse_formats
from deploy.export_cli import add_subcommand, run_export
from deploy.onnx_export import ExportError, inspect_onnx
from deploy.onnx_runtime import OnnxDetector, postprocess, prepare_batch
from deploy.tensorrt_engine import tensorrt_available
from tests.deploy.helpers import PARITY_CONF
from tests.paths import REPO
from yolo.augment import letterbox
from yolo.boxes import non_max_suppression, scale_boxes
from yolo.checkpoint import load_model

SIZE = 320


@pytest.fixture(scope="module")
def static_export(calibrated_weights, tmp_path_factory):
    """best.onnx (batch 1, 320, static) and best.wts, through the library call."""
    out = tmp_path_factory.mktemp("static")
    return export_weights(calibrated_weights, ["onnx", "wts"], img_size=SIZE, out_dir=out)


@pytest.fixture(scope="module")
def dynamic_onnx(calibrated_weights, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dynamic")
    (item,) = export_weights(calibrated_weights, ["onnx"], img_size=SIZE, dynamic=True, out_dir=out)
    return item.path


@pytest.fixture(scope="module")
def fused_model(calibrated_weights):
    return load_model(calibrated_weights, "cpu", fuse=True)[0]


def test_exported_files_are_described_by_size_and_sha256(static_export):
    assert [f.format for f in static_export] == ["onnx", "wts"]
    for item in static_export:
        assert item.path.is_file() and item.size == item.path.stat().st_size
        assert item.sha256 == hashlib.sha256(item.path.read_bytes()).hexdigest()
    # one self-contained file: no external-data side file next to it
    assert sorted(p.name for p in static_export[0].path.parent.iterdir()) == ["best.onnx", "best.wts"]


def test_static_graph_contract(static_export):
    path = static_export[0].path
    info = inspect_onnx(path, expected_opset=17)  # runs onnx.checker too
    assert info.opset == 17
    assert info.input_shape == (1, 3, SIZE, SIZE) and not info.dynamic
    anchors = 3 * sum((SIZE // s) ** 2 for s in (8, 16, 32))
    assert info.output_shape == (1, anchors, 85)
    assert "ScatterND" not in info.op_counts and "BatchNormalization" not in info.op_counts
    assert info.op_counts["Conv"] == 60  # fused: 57 Conv blocks + 3 Detect convs, no BN nodes
    graph = onnx.load(str(path))
    assert graph.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert info.metadata["stride"] == "32" and '"person"' in info.metadata["names"]


def test_static_parity_on_coco128(static_export, calibrated_weights, parity_images):
    report = check_parity(static_export[0].path, calibrated_weights, parity_images, conf_threshold=PARITY_CONF)
    # scores: |diff| <= 1e-4; coordinates (pixels, up to ~1400 for this model): relative 1e-4
    assert report.max_scaled_diff <= 1e-4 and report.max_abs_diff < 0.1, report.summary()
    assert report.detections_match and report.passed, report.summary()
    assert report.torch_detections > 10  # the comparison is not vacuous


def test_dynamic_axes_batch_and_size(dynamic_onnx, fused_model, parity_images):
    info = inspect_onnx(dynamic_onnx, expected_opset=17)
    assert info.dynamic and info.input_shape == ("batch", 3, "height", "width")
    assert info.output_shape == ("batch", "anchors", 85)
    detector = OnnxDetector(dynamic_onnx)
    for size, count in [((SIZE, SIZE), 1), ((SIZE, SIZE), 2), ((256, 256), 2), ((256, 384), 1)]:
        batch, placements = prepare_batch(parity_images[:count], size)
        got = detector(batch)
        with torch.no_grad():
            expected = fused_model(torch.from_numpy(batch))[0]
        assert got.shape == tuple(expected.shape)
        scaled = np.abs(got - expected.numpy()) / np.maximum(1.0, np.abs(expected.numpy()))
        assert float(scaled.max()) <= 1e-4, (size, count)
        ours = postprocess(expected, placements, PARITY_CONF)
        theirs = postprocess(got, placements, PARITY_CONF)
        assert all(detections_equal(a, b) for a, b in zip(ours, theirs)), (size, count)


def test_no_grid_baked_into_the_graph(dynamic_onnx):
    """A grid cached for 320 would be an initializer [.., 40, 40, 2] (or 20 / 10): none may exist.
    (That it really is computed per call is shown by the 256 / 256x384 runs above.)"""
    graph = onnx.load(str(dynamic_onnx))
    grids = [(t.name, list(t.dims)) for t in graph.graph.initializer
             if len(t.dims) >= 2 and t.dims[-1] == 2 and any(d in (SIZE // 8, SIZE // 16, SIZE // 32) for d in t.dims[:-1])]
    assert grids == []
    assert not any(n.op_type == "ScatterND" for n in graph.graph.node)


def test_inspect_rejects_scatternd_and_a_wrong_opset(static_export, tmp_path):
    with pytest.raises(ExportError, match="opset"):
        inspect_onnx(static_export[0].path, expected_opset=12)
    data = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 4])
    index = helper.make_tensor("idx", TensorProto.INT64, [1, 1], [0])
    update = helper.make_tensor("upd", TensorProto.FLOAT, [1, 4], [0, 0, 0, 0])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("ScatterND", ["images", "idx", "upd"], ["output0"])
    bad = helper.make_model(helper.make_graph([node], "g", [data], [out], [index, update]),
                            opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    with pytest.raises(ExportError, match="ScatterND"):
        inspect_onnx(tmp_path / "bad.onnx")


def test_inference_helper_returns_boxes_in_original_pixels(static_export, fused_model, parity_images):
    detector = OnnxDetector(static_export[0].path)
    assert detector.img_size == (SIZE, SIZE) and detector.batch == 1 and detector.names[0] == "person"
    results = detector.detect(parity_images, conf_threshold=PARITY_CONF)  # files; batch-1 graph, 4 images
    assert len(results) == len(parity_images) and sum(len(r) for r in results) > 10
    for path, dets in zip(parity_images, results):
        image = cv2.imread(str(path))
        h0, w0 = image.shape[:2]
        # independent route: our letterbox, torch, NMS, then yolo.boxes.scale_boxes' own letterbox maths
        boxed, (gain_w, gain_h), pad = letterbox(image, SIZE, auto=False, scaleup=True)
        x = torch.from_numpy(np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1))).float()[None] / 255
        with torch.no_grad():
            (expected,) = non_max_suppression(fused_model(x)[0], PARITY_CONF, 0.45, multi_label=False)
        # scale_boxes takes one gain for both axes: map once with each axis' real gain
        along_x = scale_boxes((SIZE, SIZE), expected[:, :4].clone(), (h0, w0), ((gain_w, gain_w), pad))
        along_y = scale_boxes((SIZE, SIZE), expected[:, :4].clone(), (h0, w0), ((gain_h, gain_h), pad))
        assert dets.shape == expected.shape
        assert torch.allclose(dets[:, [0, 2]], along_x[:, [0, 2]], atol=1e-3)
        assert torch.allclose(dets[:, [1, 3]], along_y[:, [1, 3]], atol=1e-3)
        assert torch.equal(dets[:, 5], expected[:, 5])
        assert (dets[:, [0, 2]] <= w0).all() and (dets[:, [1, 3]] <= h0).all() and (dets[:, :4] >= 0).all()
    # arrays work as well as files, and give the same answer
    again = detector.detect([cv2.imread(str(parity_images[0]))], conf_threshold=PARITY_CONF)
    assert detections_equal(again[0], results[0])


def test_half_export_keeps_float32_io(calibrated_weights, tmp_path, parity_images):
    (item,) = export_weights(calibrated_weights, ["onnx"], img_size=160, half=True, out_dir=tmp_path)
    info = inspect_onnx(item.path)
    assert info.input_shape == (1, 3, 160, 160) and info.metadata["half"] == "true"
    graph = onnx.load(str(item.path))
    conv_weights = {n.input[1] for n in graph.graph.node if n.op_type == "Conv"}
    types = [t.data_type for t in graph.graph.initializer if t.name in conv_weights]
    assert types.count(TensorProto.FLOAT16) == 57 and types.count(TensorProto.FLOAT) == 3  # Detect stays FP32
    assert graph.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    report = check_parity(item.path, calibrated_weights, parity_images[:2], conf_threshold=PARITY_CONF)
    assert report.half and report.atol == 1e-2 and report.passed, report.summary()


def test_formats_are_validated_and_engine_needs_tensorrt(calibrated_weights, tmp_path):
    assert parse_formats("wts, ONNX,onnx") == ("onnx", "wts")
    with pytest.raises(ValueError, match="tflite"):
        parse_formats("onnx,tflite")
    if tensorrt_available():
        pytest.skip("TensorRT is present: the refusal path cannot be shown here")
    with pytest.raises(RuntimeError, match="TensorRT"):
        export_weights(calibrated_weights, ["onnx", "engine"], img_size=160, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_cli_exports_and_checks_parity(calibrated_weights, coco128_dir, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "--weights", str(calibrated_weights), "--include", "onnx", "--img", "160",
                              "--out", str(tmp_path), "--parity-images", str(coco128_dir / "images"),
                              "--parity-count", "2"])
    assert run_export(args) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "best.onnx").is_file() and "parity PASS" in printed


def test_trained_model_outputs_and_detections_match(tiny_synthetic, tmp_path):
    """A trained model (the demo's starting checkpoint: yolov5n, 30 epochs on the synthetic
    shapes) on images of its own domain: the same detections, raw outputs within 1e-4 relative
    where |x| > 1 (the bound YOLOv5's own outputs are held to in tests/yolo/test_yolov5_weights.py).

    A plain |diff| <= 1e-4 on pixel-valued outputs held on an AVX-512 Xeon but not on an AVX2 EPYC
    (2026-12-02: 2.9e-4 at a value of ~87, i.e. 3e-6 relative; the older 6-epoch fixture model gave
    1.2e-4 at a value above 1024, one float32 step there): oneDNN and onnxruntime sum convolutions
    in another order, and the box decoding squares and scales the difference."""
    from deploy.export import check_parity, export_weights

    weights = REPO / "examples" / "yolov5n-shapes.pt"
    (onnx_file,) = export_weights(weights, ("onnx",), img_size=160, out_dir=tmp_path)
    images = sorted((tiny_synthetic.parent / "images" / "val").glob("*.jpg"))[:4]
    report = check_parity(onnx_file.path, weights, images)
    assert report.torch_detections > 0 and report.detections_match, report.summary()
    assert report.max_scaled_diff <= 1e-4, report.summary()
