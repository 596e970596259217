"""The shipped starting checkpoint of the demo (examples/yolov5n-shapes.pt): safe, half precision,
float32 once loaded, and a fine-tuning start on the shifted synthetic task."""

from __future__ import annotations

from pathlib import Path

import torch

from examples.make_start_weights import DEFAULT_OUT, half_precision
from tests.paths import REPO
from yolo.checkpoint import load_checkpoint, load_model, save_checkpoint
from yolo.synthetic import CLASS_NAMES, SHIFTED_STYLE, generate_synthetic_dataset
from yolo.train import TrainConfig, train

SHIPPED = REPO / "examples" / "yolov5n-shapes.pt"


def test_shipped_checkpoint_is_safe_small_and_half():
    assert SHIPPED == DEFAULT_OUT and SHIPPED.is_file()
    assert SHIPPED.stat().st_size < 5_000_000  # a few MB: float16 yolov5n
    payload = torch.load(SHIPPED, weights_only=True)  # nothing to unpickle
    floats = [v for v in payload["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert "optimizer" not in payload and "train_model" not in payload


def test_shipped_checkpoint_loads_as_float32_with_four_classes():
    model, checkpoint = load_model(SHIPPED)
    assert checkpoint.names == list(CLASS_NAMES) and checkpoint.model_config["nc"] == 4
    assert checkpoint.model_config["name"] == "yolov5n"
    state = model.state_dict()
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    for name, saved in checkpoint.model_state.items():  # the values arrived, cast from float16
        assert torch.equal(state[name], saved.to(state[name].dtype)), name
    assert checkpoint.metrics["metrics/mAP_0.5:0.95"] > 0.5  # trained, not a fresh initialisation
    with torch.no_grad():
        out = model(torch.rand(1, 3, 160, 160))
    out = out[0] if isinstance(out, (tuple, list)) else out
    assert out.dtype == torch.float32 and out.shape[-1] == 5 + 4


def test_half_precision_keeps_values_and_integer_buffers(tmp_path: Path):
    checkpoint = load_checkpoint(SHIPPED)
    model, _ = load_model(SHIPPED)
    full = type(checkpoint)(model_state=model.state_dict(), model_config=checkpoint.model_config,
                            names=checkpoint.names, train_state=model.state_dict())
    half = half_precision(full)
    assert half.train_state is None
    for name, value in half.model_state.items():
        source = full.model_state[name]
        assert value.dtype == (torch.float16 if source.is_floating_point() else source.dtype), name
    reloaded, _ = load_model(save_checkpoint(tmp_path / "half.pt", half))
    assert all(torch.equal(reloaded.state_dict()[k], v.float()) for k, v in half.model_state.items()
               if v.is_floating_point())


def test_fine_tune_on_a_tiny_shifted_set(tmp_path: Path):
    data = generate_synthetic_dataset(tmp_path / "shifted", n_train=8, n_val=4, img_size=96, seed=1,
                                      style=SHIFTED_STYLE)
    # The stem frozen: after training it still holds the shipped (float16) values, which shows
    # the fine-tune started from them; everything else trained on in float32.
    config = TrainConfig(data=str(data), epochs=1, img_size=96, batch_size=4, weights=str(SHIPPED),
                         save_dir=str(tmp_path / "run"), progress=False, workers=0, freeze=(0,))
    result = train(config)
    assert result.epochs_completed == 1 and result.weights.is_file()
    tuned = load_checkpoint(result.weights)
    assert tuned.model_config["nc"] == 4
    assert all(v.dtype == torch.float32 for v in tuned.model_state.values() if v.is_floating_point())
    shipped = load_checkpoint(SHIPPED).model_state
    stem = "model.0.conv.weight"
    assert torch.equal(tuned.model_state[stem], shipped[stem].float())
    head = next(k for k in shipped if k.startswith("model.24.") and k.endswith("weight"))
    assert not torch.equal(tuned.model_state[head], shipped[head].float())
