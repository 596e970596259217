"""Pruning: the asked fraction of conv weights becomes zero, permanently, and the pruned
checkpoint is an ordinary safe checkpoint that loads and validates (through `evolver prune`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yolo.cli import main
from yolo.checkpoint import load_checkpoint, load_model
from yolo.model import build_model
from yolo.prune import conv_sparsity, prune_model


def test_prune_model_zeroes_the_amount_in_every_conv():
    torch.manual_seed(0)
    model = build_model("yolov5n", nc=4)
    keys_before = set(model.state_dict())
    report = prune_model(model, 0.3)
    zeros, total = conv_sparsity(model)
    assert zeros / total == pytest.approx(0.3, abs=0.01)
    assert report.sparsity == pytest.approx(zeros / total) and report.sparsity_before == 0.0
    assert report.conv_layers == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
        share = float((conv.weight == 0).float().mean())
        assert share == pytest.approx(0.3, abs=1.0 / conv.weight.numel() + 1e-6)
        kept, dropped = conv.weight[conv.weight != 0].abs(), conv.weight.numel() - int((conv.weight != 0).sum())
        assert dropped > 0 and kept.numel() > 0
        assert not any(name.endswith("_mask") for name, _ in conv.named_buffers())  # made permanent
    assert set(model.state_dict()) == keys_before  # no weight_orig / weight_mask left behind


def test_prune_amount_is_checked():
    with pytest.raises(ValueError, match="amount"):
        prune_model(build_model("yolov5n", nc=2), 1.0)


def test_prune_cli_saves_a_loadable_checkpoint_that_validates(trained_run, tiny_synthetic, tmp_path, capsys):
    config, result, _ = trained_run
    out = tmp_path / "pruned.pt"
    code = main(["prune", "--weights", str(result.weights), "--amount", "0.3", "--data", str(tiny_synthetic),
                 "--img", str(config.img_size), "--batch", "16", "--workers", "0", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "before  sparsity 0.0" in printed and "after   sparsity 0.30" in printed
    assert printed.count("mAP@0.5:0.95") == 2

    raw = torch.load(out, map_location="cpu", weights_only=True)  # safe format: nothing to unpickle
    assert "train_model" not in raw and "optimizer" not in raw  # resuming would undo the pruning
    checkpoint = load_checkpoint(out)
    assert checkpoint.metrics["prune/amount"] == 0.3
    model, _ = load_model(out)
    zeros, total = conv_sparsity(model)
    assert zeros / total == pytest.approx(0.3, abs=0.01)
    original, _ = load_model(result.weights)
    assert conv_sparsity(original)[0] / total < 0.01  # the source checkpoint is untouched
