"""TensorRT engine build and runtime, compared with onnxruntime. Runs only where TensorRT and a GPU exist."""

from __future__ import annotations

import pytest
import torch

from deploy.tensorrt_engine import SKIP_REASON, tensorrt_available

pytestmark = pytest.mark.skipif(not tensorrt_available(), reason=SKIP_REASON)

SIZE = 320


@pytest.fixture(scope="module")
def onnx_files(calibrated_weights, tmp_path_factory):
    from deploy.export import export_weights

    out = tmp_path_factory.mktemp("trt")
    (static,) = export_weights(calibrated_weights, ["onnx"], img_size=SIZE, out_dir=out / "static")
    (dynamic,) = export_weights(calibrated_weights, ["onnx"], img_size=SIZE, dynamic=True, out_dir=out / "dynamic")
    return static.path, dynamic.path


def _compare(engine_detector, onnx_detector, images, box_atol: float, conf_atol: float) -> None:
    from tests.deploy.helpers import PARITY_CONF

    ours = engine_detector.detect(images, conf_threshold=PARITY_CONF)
    theirs = onnx_detector.detect(images, conf_threshold=PARITY_CONF)
    assert sum(len(d) for d in theirs) > 10
    for a, b in zip(ours, theirs, strict=True):  # one result per image from each
        a = a.cpu()
        assert a.shape == b.shape
        assert torch.equal(a[:, 5], b[:, 5])
        torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=box_atol)  # empty results compare equal too
        torch.testing.assert_close(a[:, 4], b[:, 4], rtol=0, atol=conf_atol)


def test_static_engine_matches_onnxruntime(onnx_files, parity_images, tmp_path):
    from deploy.onnx_runtime import OnnxDetector
    from deploy.tensorrt_engine import EngineOptions, TensorRTDetector, build_engine

    engine = build_engine(onnx_files[0], tmp_path / "best.engine", EngineOptions(workspace_gib=1, tf32=False))
    detector = TensorRTDetector(engine)
    assert detector.batch == 1 and detector.img_size == (SIZE, SIZE)
    _compare(detector, OnnxDetector(onnx_files[0]), parity_images, box_atol=1e-2, conf_atol=1e-3)


def test_dynamic_batch_engine_runs_batches_of_one_and_two(onnx_files, parity_images, tmp_path):
    import numpy as np

    from deploy.onnx_runtime import OnnxDetector, prepare_batch
    from deploy.tensorrt_engine import EngineOptions, TensorRTDetector, build_engine

    engine = build_engine(onnx_files[1], tmp_path / "dyn.engine", EngineOptions(workspace_gib=1, max_batch=2, tf32=False))
    detector = TensorRTDetector(engine)
    assert detector.batch is None and detector.max_batch == 2
    onnx_detector = OnnxDetector(onnx_files[1])
    for count in (1, 2):
        batch, _ = prepare_batch(parity_images[:count], (SIZE, SIZE))
        got = detector(batch).cpu().numpy()
        assert got.shape[0] == count
        assert np.abs(got - onnx_detector(batch)).max() <= 1e-2
    _compare(detector, onnx_detector, parity_images, box_atol=1e-2, conf_atol=1e-3)


def test_fp16_engine_stays_close(calibrated_weights, parity_images, tmp_path):
    from deploy.export import export_weights
    from deploy.onnx_runtime import OnnxDetector
    from deploy.tensorrt_engine import EngineOptions, TensorRTDetector, build_engine

    (half,) = export_weights(calibrated_weights, ["onnx"], img_size=SIZE, half=True, out_dir=tmp_path)
    (full,) = export_weights(calibrated_weights, ["onnx"], img_size=SIZE, out_dir=tmp_path / "fp32")
    engine = build_engine(half.path, tmp_path / "half.engine", EngineOptions(workspace_gib=1, half=True))
    detector = TensorRTDetector(engine)
    ours = detector.detect(parity_images, conf_threshold=0.25)
    theirs = OnnxDetector(full.path).detect(parity_images, conf_threshold=0.25)
    # FP16 may flip boxes near the threshold; the counts must stay close
    assert abs(sum(len(d) for d in ours) - sum(len(d) for d in theirs)) <= max(2, sum(len(d) for d in theirs) // 10)
