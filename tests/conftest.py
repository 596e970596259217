"""Shared fixtures: the shared COCO128 copy and a small synthetic dataset made once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EVOLVER_SHARED", REPO.parent / "shared"))

# Two cores: keep torch from oversubscribing when tests run beside data-loader processes.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def coco128_dir() -> Path:
    path = SHARED / "datasets" / "coco128"
    if not path.is_dir():
        pytest.fail(f"COCO128 is expected at {path} (set EVOLVER_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A small synthetic dataset (data yaml path) for fast training tests."""
    from yolo.synthetic import generate_synthetic_dataset

    return generate_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), n_train=64, n_val=16, img_size=128, seed=0)


@pytest.fixture(scope="session")
def trained_run(tiny_synthetic, tmp_path_factory):
    """(config, result, epoch reports) of a 6-epoch yolov5n run on the tiny synthetic dataset."""
    from yolo.hyp import Hyperparameters
    from yolo.train import TrainConfig, train

    config = TrainConfig(data=str(tiny_synthetic), epochs=6, img_size=128, batch_size=16, workers=0,
                         save_dir=str(tmp_path_factory.mktemp("run") / "exp"), progress=False)
    reports = []
    result = train(config, Hyperparameters(), callbacks=[reports.append])
    return config, result, reports
