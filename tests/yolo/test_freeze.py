"""Freezing layers: the CLI spelling, requires_grad, the optimiser, and a real training run."""

from __future__ import annotations

import logging

import pytest
import torch

from yolo.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from yolo.data import load_data_config
from yolo.freeze import FreezeSummary, freeze_layers, parse_freeze
from yolo.hyp import Hyperparameters
from yolo.model import BACKBONE_LAYERS, build_model
from yolo.optim import build_optimizer
from yolo.train import TrainConfig, train


@pytest.mark.parametrize("values, layers", [
    ([], ()),
    (["0"], ()),
    (["10"], tuple(range(10))),
    ([10], tuple(range(10))),
    (["0", "1", "2"], (0, 1, 2)),
    (["0,1,2"], (0, 1, 2)),
    (["2", "0,1"], (0, 1, 2)),
    (["5,"], (5,)),
    (["3", "3"], (3,)),
])
def test_parse_freeze(values, layers):
    assert parse_freeze(values) == layers


def test_parse_freeze_rejects_garbage():
    with pytest.raises(ValueError, match="non-negative integers"):
        parse_freeze(["backbone"])
    with pytest.raises(ValueError, match="non-negative integers"):
        parse_freeze(["-1"])


def test_freeze_layers_sets_requires_grad_and_counts():
    model = build_model("yolov5n", nc=3)
    summary = freeze_layers(model, range(BACKBONE_LAYERS))
    backbone = sum(p.numel() for n, p in model.named_parameters() if int(n.split(".")[1]) < 10)
    total = sum(p.numel() for p in model.parameters())
    assert summary == FreezeSummary(trainable=total - backbone, frozen=backbone)
    assert str(summary) == f"trainable {total - backbone:,} / frozen {backbone:,} parameters"
    for name, p in model.named_parameters():
        assert p.requires_grad == (int(name.split(".")[1]) >= 10), name
    # frozen parameters are left out of the optimiser
    optimizer = build_optimizer(model, Hyperparameters(), 16)
    in_groups = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert in_groups == {id(p) for p in model.parameters() if p.requires_grad}
    # freezing nothing turns everything back on
    assert freeze_layers(model, ()).frozen == 0 and all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match=r"layer\(s\) \[25\].*layers 0-24"):
        freeze_layers(model, [25])


def test_frozen_backbone_does_not_train(tiny_synthetic, tmp_path, caplog):
    data = load_data_config(tiny_synthetic)
    torch.manual_seed(1)
    initial = build_model("yolov5n", nc=data.nc)
    start = save_checkpoint(tmp_path / "start.pt", Checkpoint(
        model_state=initial.state_dict(), model_config=initial.config.to_dict(), names=data.names))
    config = TrainConfig(data=str(tiny_synthetic), epochs=1, img_size=64, batch_size=16, workers=0,
                         save_dir=str(tmp_path / "frozen"), progress=False, weights=str(start),
                         freeze=tuple(range(BACKBONE_LAYERS)))
    with caplog.at_level(logging.INFO, logger="yolo.train"):
        result = train(config, Hyperparameters())

    last = load_checkpoint(result.last)
    before = initial.state_dict()
    params = dict(initial.named_parameters())
    frozen = [n for n in params if int(n.split(".")[1]) < BACKBONE_LAYERS]
    trained = [n for n in params if n not in frozen]
    assert all(torch.equal(last.train_state[n], before[n]) for n in frozen)
    assert sum(not torch.equal(last.train_state[n], before[n]) for n in trained) > len(trained) // 2
    # the optimiser holds exactly the trainable tensors
    held = sum(len(group["params"]) for group in last.optimizer_state["param_groups"])
    assert held == len(trained)
    n_frozen = sum(params[n].numel() for n in frozen)
    n_trainable = sum(params[n].numel() for n in trained)
    assert f"trainable {n_trainable:,} / frozen {n_frozen:,} parameters" in caplog.text
    assert last.train_config["freeze"] == list(range(BACKBONE_LAYERS))
    assert TrainConfig.from_dict(last.train_config).freeze == tuple(range(BACKBONE_LAYERS))
