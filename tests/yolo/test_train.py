"""Training as a library call: learning, checkpoints, resume, determinism, callbacks, CLI."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

from yolo.checkpoint import load_checkpoint, load_model
from yolo.hyp import Hyperparameters
from yolo.loader import DatasetCache
from yolo.train import TrainConfig, TrainingStopped, resume, train


@pytest.fixture(scope="module")
def trained(trained_run):
    return trained_run


def test_loss_falls_and_map_rises(trained):
    _, result, reports = trained
    first, last = reports[0], reports[-1]
    assert sum(last.train_losses) < sum(first.train_losses)
    assert result.metrics["metrics/mAP_0.5"] > 0
    assert max(r.val.metrics.map50 for r in reports) > first.val.metrics.map50


def test_outputs_on_disk(trained):
    config, result, reports = trained
    with open(result.save_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(config.epochs))
    assert float(rows[-1]["metrics/mAP_0.5"]) == pytest.approx(reports[-1].val.metrics.map50, abs=1e-5)
    # safe format: plain torch.load with weights_only reads both files
    for path in (result.weights, result.last):
        payload = torch.load(path, weights_only=True)
        assert payload["format"] == "evolver-yolo-1"
    assert "optimizer" in torch.load(result.last, weights_only=True)
    assert "optimizer" not in torch.load(result.weights, weights_only=True)
    assert load_checkpoint(result.weights).epoch == result.best_epoch


def test_best_weights_validate_like_training_said(trained, tiny_synthetic):
    from yolo.data import load_data_config, scan_dataset
    from yolo.loader import DetectionDataset, create_dataloader
    from yolo.val import validate

    config, result, reports = trained
    model, ckpt = load_model(result.weights, fuse=True)
    data = load_data_config(tiny_synthetic)
    ds = DetectionDataset(scan_dataset(data.val, data.nc), config.img_size, Hyperparameters(), augment=False,
                          rect=True, batch_size=32, pad=0.5)
    val = validate(model, create_dataloader(ds, 32, False, 0, 0), nc=data.nc)
    best = reports[result.best_epoch].val.metrics
    assert val.metrics.map50 == pytest.approx(best.map50, abs=0.01)
    assert val.metrics.map == pytest.approx(best.map, abs=0.01)


def test_same_seed_repeats_exactly_and_resume_matches(trained, tmp_path):
    config, result, _ = trained
    short = dataclasses.replace(config, epochs=2, save_dir=str(tmp_path / "a"))
    a = train(short, Hyperparameters())
    b = train(dataclasses.replace(short, save_dir=str(tmp_path / "b")), Hyperparameters())
    wa = load_checkpoint(a.last).train_state
    wb = load_checkpoint(b.last).train_state
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.metrics == b.metrics

    # interrupted after epoch 1 (a callback stops it), then resumed to epoch 2: same weights
    c_config = dataclasses.replace(short, save_dir=str(tmp_path / "c"))
    stopped = train(c_config, Hyperparameters(), callbacks=[lambda report: True])
    assert stopped.stopped_early and stopped.epochs_completed == 1
    resumed = resume(stopped.last)
    assert resumed.epochs_completed == 2
    wc = load_checkpoint(resumed.last).train_state
    assert all(torch.equal(wa[k], wc[k]) for k in wa)


def test_hyperparameters_change_the_run(trained, tmp_path):
    config, _, _ = trained
    short = dataclasses.replace(config, epochs=1, save_dir=str(tmp_path / "x"))
    a = train(short, Hyperparameters())
    b = train(dataclasses.replace(short, save_dir=str(tmp_path / "y")), Hyperparameters(lr0=0.05, mosaic=0.0))
    assert a.metrics != b.metrics


def test_fitted_anchors_when_not_three(trained, tmp_path):
    config, _, _ = trained
    hyp = Hyperparameters(anchors=4)
    result = train(dataclasses.replace(config, epochs=1, save_dir=str(tmp_path / "z")), hyp)
    model, _ = load_model(result.weights)
    assert model.detect.anchors.shape == (3, 4, 2)


def test_cli_train_and_val(tiny_synthetic, tmp_path, capsys):
    from yolo.cli import main

    assert main(["train", "--data", str(tiny_synthetic), "--epochs", "1", "--img", "128", "--batch", "16",
                 "--workers", "0", "--project", str(tmp_path), "--name", "cli", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "mAP@0.5" in out and "weights:" in out
    weights = tmp_path / "cli" / "weights" / "best.pt"
    assert main(["val", "--weights", str(weights), "--data", str(tiny_synthetic), "--img", "128"]) == 0
    assert "mAP@0.5:0.95" in capsys.readouterr().out


def test_cli_rejects_bad_hyp(tiny_synthetic, tmp_path, capsys):
    from yolo.cli import main

    hyp = tmp_path / "hyp.yaml"
    hyp.write_text("lr0: 0.01\nlearning_rate: 3\n")
    assert main(["train", "--data", str(tiny_synthetic), "--hyp", str(hyp), "--project", str(tmp_path)]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_resume_mid_accumulation_is_exact(tiny_synthetic, tmp_path):
    # batch 8 -> 8 batches per epoch; by epoch 3 warmup accumulates 2 batches per step, so epoch 3
    # ends with gradients accumulated but not applied: resume must carry them over.
    config = TrainConfig(data=str(tiny_synthetic), epochs=4, img_size=128, batch_size=8, workers=0,
                         save_dir=str(tmp_path / "full"), progress=False)
    full = train(config, Hyperparameters())
    stopped = train(dataclasses.replace(config, save_dir=str(tmp_path / "cut")), Hyperparameters(),
                    callbacks=[lambda report: report.epoch == 2])
    assert stopped.epochs_completed == 3
    assert load_checkpoint(stopped.last).pending_grads, "epoch 3 should end mid-accumulation"
    resumed = resume(stopped.last)
    a, b = load_checkpoint(full.last).train_state, load_checkpoint(resumed.last).train_state
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_should_stop_interrupts_between_batches(tiny_synthetic, tmp_path):
    config = TrainConfig(data=str(tiny_synthetic), epochs=3, img_size=96, batch_size=16, workers=0,
                         save_dir=str(tmp_path / "stop"), progress=False)
    reports = []
    polls = []

    def should_stop() -> bool:
        polls.append(len(reports))
        return len(reports) == 1 and polls.count(1) == 2  # epoch 2, before its second batch

    with pytest.raises(TrainingStopped) as stopped:
        train(config, Hyperparameters(), callbacks=[reports.append], should_stop=should_stop)
    assert stopped.value.epoch == 1
    assert stopped.value.last_report is reports[0]
    assert (tmp_path / "stop/weights/last.pt").exists()  # finished epochs keep their checkpoint


def test_shared_dataset_cache_is_reused_and_changes_nothing(tiny_synthetic, tmp_path):
    def run(name, cache):
        config = TrainConfig(data=str(tiny_synthetic), epochs=1, img_size=96, batch_size=16, workers=0,
                             save_dir=str(tmp_path / name), progress=False)
        return train(config, Hyperparameters(), dataset_cache=cache)

    cache = DatasetCache()
    plain = run("plain", None)
    first = run("first", cache)
    assert len(cache._indexes) == 2
    assert cache.misses == 64 + 16 and cache.hits == 0 and len(cache) == 80
    second = run("second", cache)
    assert cache.hits == 80 and cache.misses == 80
    assert first.metrics == plain.metrics == second.metrics
    weights = [load_checkpoint(r.weights).model_state for r in (plain, first, second)]
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]) and torch.equal(tensor, weights[2][name]), name
