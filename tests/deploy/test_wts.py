"""TensorRTx `.wts` text weights: exact format and a lossless round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deploy.wts import read_wts, write_wts
from yolo.model import build_model


def test_format_is_count_then_name_count_big_endian_hex(tmp_path):
    path = write_wts({"a.weight": torch.tensor([[1.0, -2.0]]), "b": np.array([0.5], dtype=np.float32)}, tmp_path / "x.wts")
    assert path.read_text().splitlines() == ["2", "a.weight 2 3f800000 c0000000", "b 1 3f000000"]


def test_yolov5n_round_trip_is_lossless(tmp_path):
    torch.manual_seed(0)
    model = build_model("yolov5n", nc=80)
    state = model.state_dict()
    loaded = read_wts(write_wts(state, tmp_path / "yolov5n.wts"))
    assert list(loaded) == list(state)  # every tensor, in order (YOLOv5-style names)
    assert "model.0.conv.weight" in loaded and "model.24.anchors" in loaded and "model.0.bn.running_var" in loaded
    for name, tensor in state.items():
        expected = tensor.float().reshape(-1).numpy()
        assert loaded[name].dtype == np.float32 and np.array_equal(loaded[name], expected), name
    assert sum(v.size for k, v in loaded.items() if k in dict(model.named_parameters())) == 1_872_157


def test_reader_rejects_damaged_files(tmp_path):
    path = tmp_path / "bad.wts"
    path.write_text("2\na 1 3f800000\n")
    with pytest.raises(ValueError, match="header says 2"):
        read_wts(path)
    path.write_text("1\na 2 3f800000\n")
    with pytest.raises(ValueError, match="declares 2"):
        read_wts(path)
    with pytest.raises(ValueError, match="whitespace"):
        write_wts({"a b": torch.zeros(1)}, tmp_path / "c.wts")
