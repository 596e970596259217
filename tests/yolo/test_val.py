"""Validation of a trained model: our mAP equals pycocotools' on the model's own detections."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.yolo.test_metrics import LabelledImage, pycocotools_map
from yolo.boxes import non_max_suppression, scale_boxes
from yolo.checkpoint import load_model
from yolo.data import load_data_config, scan_dataset
from yolo.loader import DetectionDataset, create_dataloader
from yolo.hyp import Hyperparameters
from yolo.val import ground_truth_in_original, validate


@pytest.mark.parametrize("split", ["val", "train"])
def test_trained_model_map_matches_pycocotools(trained_run, tiny_synthetic, split):
    config, result, _ = trained_run
    model, _ = load_model(result.weights)
    data = load_data_config(tiny_synthetic)
    index = scan_dataset(data.val if split == "val" else data.train, data.nc)
    dataset = DetectionDataset(index, config.img_size, Hyperparameters(), augment=False, rect=True,
                               batch_size=16, pad=0.5)
    loader = create_dataloader(dataset, 16, shuffle=False, workers=0, seed=0)

    images, detections = [], []
    with torch.no_grad():
        for imgs, targets, _, shapes in loader:
            decoded, _ = model(imgs.float() / 255)
            hw = (imgs.shape[2], imgs.shape[3])
            for i, det in enumerate(non_max_suppression(decoded, 0.001, 0.6, 300)):
                det[:, :4] = scale_boxes(hw, det[:, :4].clone(), shapes[i][0], shapes[i][1])
                truth = ground_truth_in_original(targets[targets[:, 0] == i, 1:], hw, shapes[i])
                (h, w) = shapes[i][0]
                images.append(LabelledImage(h, w, truth.double().numpy()))
                detections.append(det)
    assert sum(len(d) for d in detections) > 0, "the trained model should detect something"
    map50, map_ = pycocotools_map(images, detections, nc=data.nc)
    ours = validate(model, loader, nc=data.nc).metrics
    assert ours.map50 == pytest.approx(map50, abs=1e-3)
    assert ours.map == pytest.approx(map_, abs=1e-3)
    assert map50 > 0


def test_validate_reports_losses_and_timings(trained_run, tiny_synthetic):
    from yolo.loss import DetectionLoss

    config, result, _ = trained_run
    model, _ = load_model(result.weights, fuse=True)
    data = load_data_config(tiny_synthetic)
    dataset = DetectionDataset(scan_dataset(data.val, data.nc), config.img_size, Hyperparameters(),
                               augment=False, rect=True, batch_size=8, pad=0.5)
    loader = create_dataloader(dataset, 8, shuffle=False, workers=0, seed=0)
    out = validate(model, loader, nc=data.nc, loss_fn=DetectionLoss.from_model(model, Hyperparameters(), 128))
    assert out.images == len(dataset)
    assert out.losses is not None and all(np.isfinite(out.losses)) and min(out.losses) > 0
    assert set(out.timings_ms) == {"inference", "nms", "metrics"}
    assert 0 <= out.fitness <= 1
