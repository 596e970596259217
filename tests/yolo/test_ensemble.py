"""Ensembles: members' candidates are pooled before NMS; a model ensembled with itself gives its
own detections, and models of different sizes combine (also through `evolver val`)."""

from __future__ import annotations

import pytest
import torch

from yolo.cli import main
from yolo.boxes import non_max_suppression
from yolo.checkpoint import load_model
from yolo.data import load_data_config, scan_dataset
from yolo.ensemble import Ensemble, load_detector
from yolo.hyp import Hyperparameters
from yolo.loader import DetectionDataset, create_dataloader
from yolo.model import build_model
from yolo.tta import TestTimeAugmentation
from yolo.val import validate


@pytest.fixture(scope="module")
def val_loader(tiny_synthetic, trained_run):
    config, _, _ = trained_run
    data = load_data_config(tiny_synthetic)
    dataset = DetectionDataset(scan_dataset(data.val, data.nc), config.img_size, Hyperparameters(),
                               augment=False, rect=True, batch_size=16, pad=0.5)
    return create_dataloader(dataset, 16, shuffle=False, workers=0, seed=0), data.nc


def _sorted(det: torch.Tensor) -> torch.Tensor:
    return det[torch.argsort(det[:, 4] * 1000 + det[:, 0], descending=True)]


def test_ensemble_of_a_model_with_itself_gives_its_own_detections(trained_run, val_loader):
    _, result, _ = trained_run
    loader, nc = val_loader
    model, _ = load_model(result.weights)
    pair = Ensemble([model, model]).eval()
    imgs, *_ = next(iter(loader))
    imgs = imgs.float() / 255
    with torch.no_grad():
        alone, _ = model(imgs)
        both, raw = pair(imgs)
    assert both.shape[1] == 2 * alone.shape[1] and len(raw) == 6
    found = 0
    for own, pooled in zip(non_max_suppression(alone, 0.001, 0.6), non_max_suppression(both, 0.001, 0.6)):
        assert own.shape == pooled.shape
        assert torch.allclose(_sorted(own), _sorted(pooled))
        found += len(own)
    assert found > 0
    single, doubled = validate(model, loader, nc=nc).metrics, validate(pair, loader, nc=nc).metrics
    assert doubled.map == pytest.approx(single.map, abs=1e-6) and doubled.map50 == pytest.approx(single.map50, abs=1e-6)


def test_models_of_different_sizes_combine(trained_run, val_loader):
    _, result, _ = trained_run
    _, nc = val_loader
    small, _ = load_model(result.weights)
    torch.manual_seed(0)
    bigger = build_model("yolov5s", nc=nc, anchors=[[10, 13, 16, 30], [30, 61, 62, 45], [116, 90, 156, 198]]).eval()
    pair = Ensemble([small, bigger]).eval()
    imgs = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        pooled, raw = pair(imgs)
        a, _ = small(imgs)
        b, _ = bigger(imgs)
    assert torch.equal(pooled, torch.cat((a, b), 1))  # 3 + 2 anchors per cell, pooled in order
    assert [r.shape[1] for r in raw] == [3, 3, 3, 2, 2, 2]
    assert int(pair.stride.max()) == 32 and pair.nc == nc
    with pytest.raises(ValueError, match="same classes"):
        Ensemble([small, build_model("yolov5n", nc=nc + 1)])


def test_load_detector_builds_ensembles_and_tta(trained_run):
    _, result, _ = trained_run
    one, checkpoints = load_detector(result.weights)
    assert not isinstance(one, Ensemble) and len(checkpoints) == 1 and not one.training
    both, checkpoints = load_detector([result.weights, result.weights], augment=True)
    assert isinstance(both, Ensemble) and len(checkpoints) == 2
    assert all(isinstance(m, TestTimeAugmentation) for m in both.members)


def test_val_cli_takes_several_weights_and_augment(trained_run, tiny_synthetic, capsys):
    config, result, _ = trained_run
    code = main(["val", "--weights", str(result.weights), str(result.weights), "--augment",
                 "--data", str(tiny_synthetic), "--img", str(config.img_size), "--batch", "16", "--workers", "0"])
    assert code == 0
    assert "mAP@0.5:0.95" in capsys.readouterr().out
