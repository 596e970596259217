"""Deploy fixtures: a yolov5n checkpoint that detects something on COCO128, without training.

A freshly initialised network's BatchNorm layers have identity statistics and its scores sit at
YOLOv5's prior (~1e-4), so it detects nothing. Re-estimating the BatchNorm statistics from eight
real images (one forward pass in train mode, no gradients), with a variance floor so that
near-constant random channels do not amplify rounding noise, then sharpening the Detect layer
(weights x6, objectness and class biases +3) gives a model with 50-150 boxes per COCO128 image
at conf 0.05 whose outputs depend on the image. Training for that would take minutes here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.deploy.helpers import CALIBRATION_IMAGES, PARITY_IMAGES, coco128_images


@pytest.fixture(scope="session")
def parity_images(coco128_dir) -> list[Path]:
    return coco128_images(coco128_dir)[:PARITY_IMAGES]


@pytest.fixture(scope="session")
def calibrated_weights(coco128_dir, tmp_path_factory) -> Path:
    """best.pt of a BatchNorm-calibrated yolov5n (80 COCO classes), saved through yolo.checkpoint."""
    from deploy.onnx_runtime import prepare_batch
    from yolo.checkpoint import Checkpoint, save_checkpoint
    from yolo.data import load_data_config
    from yolo.model import build_model

    torch.manual_seed(0)
    model = build_model("yolov5n", nc=80)
    batch, _ = prepare_batch(coco128_images(coco128_dir)[CALIBRATION_IMAGES], (320, 320))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # cumulative average: one pass sets the statistics outright
        model.train()
        model(torch.from_numpy(batch))
        model.eval()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_var.add_(0.01)
        detect = model.detect
        for conv in detect.m:
            conv.weight.mul_(6.0)
            conv.bias.view(detect.na, detect.no)[:, 4:].add_(3.0)
    names = load_data_config(coco128_dir / "coco128.yaml").names
    path = tmp_path_factory.mktemp("weights") / "best.pt"
    return save_checkpoint(path, Checkpoint(model_state=model.state_dict(), model_config=model.config.to_dict(),
                                            names=names))
