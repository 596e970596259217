"""DDP: rank plumbing, sharded sampling, the launcher, and real 2-process gloo training on CPU."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolo.checkpoint import build_model_from, load_checkpoint
from yolo.data import load_data_config, scan_dataset
from yolo.distributed import (
    RankInfo, check_sync_bn, free_port, launch, parameter_digest, rank_environments, rank_from_env,
)
from yolo.hyp import Hyperparameters
from yolo.loader import DetectionDataset, EpochShuffle
from yolo.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]


def test_rank_from_env():
    assert rank_from_env({}) == RankInfo(0, 0, 1)
    info = rank_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert info == RankInfo(3, 1, 4) and not info.is_main and info.is_distributed
    with pytest.raises(ValueError, match="outside WORLD_SIZE"):
        rank_from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_rank_environments_match_torchrun():
    envs = rank_environments(2, {"PATH": "/bin"}, port=29511)
    assert [(e["RANK"], e["LOCAL_RANK"], e["WORLD_SIZE"]) for e in envs] == [("0", "0", "2"), ("1", "1", "2")]
    assert all(e["MASTER_ADDR"] == "127.0.0.1" and e["MASTER_PORT"] == "29511" and e["PATH"] == "/bin" for e in envs)


def test_shards_are_disjoint_cover_the_epoch_and_keep_its_order(tiny_synthetic):
    data = load_data_config(tiny_synthetic)
    index = scan_dataset(data.train, data.nc)
    dataset = DetectionDataset(index, 64, Hyperparameters(), augment=True)
    whole = list(EpochShuffle(dataset, seed=0))
    for world in (2, 3):
        shards = [list(EpochShuffle(dataset, seed=0, rank=r, world_size=world)) for r in range(world)]
        assert len({len(s) for s in shards}) == 1  # equal lengths: ranks step together
        assert set().union(*shards) == set(range(len(dataset)))
        padded = sum(len(s) for s in shards) - len(dataset)
        assert 0 <= padded < world
        interleaved = [shards[i % world][i // world] for i in range(len(dataset))]
        assert interleaved == whole  # the single-process order, dealt out
    dataset.set_epoch(1)
    assert list(EpochShuffle(dataset, 0, 0, 2)) != [whole[i] for i in range(0, len(whole), 2)]


def test_launch_reports_the_failed_rank(tmp_path):
    good = tmp_path / "ok.json"
    good.write_text("{}")
    launch("json.tool", [str(good), str(tmp_path / "out.json")], nproc=2)  # two ranks, both succeed
    with pytest.raises(RuntimeError, match=r"DDP rank \d of 2 exited with code [1-9]"):
        launch("json.tool", [str(tmp_path / "missing.json")], nproc=2)


def test_sync_bn_needs_nccl(tiny_synthetic, tmp_path):
    check_sync_bn(True, "nccl")
    check_sync_bn(False, "gloo")
    with pytest.raises(ValueError, match="needs CUDA GPUs and the NCCL backend"):
        check_sync_bn(True, "gloo")
    config = TrainConfig(data=str(tiny_synthetic), epochs=1, img_size=64, device="cpu", sync_bn=True,
                         save_dir=str(tmp_path / "x"), progress=False, workers=0)
    with pytest.raises(ValueError, match="SyncBatchNorm does not train on CPU"):
        train(config)
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_two_gloo_ranks_train_identical_weights(tiny_synthetic, tmp_path, capfd):
    from yolo.ddp_main import train_distributed

    config = TrainConfig(data=str(tiny_synthetic), epochs=2, img_size=64, batch_size=16, workers=0,
                         save_dir=str(tmp_path / "ddp"), progress=False)
    result = train_distributed(config, Hyperparameters(), nproc=2)
    out = capfd.readouterr()
    log = out.out + out.err

    # every rank's parameters hashed after training, gathered on rank 0, all equal ...
    found = re.findall(r"DDP replicas identical after training: parameters sha256 ([0-9a-f]{64}) on all 2 ranks", log)
    assert len(found) == 1, log[-3000:]
    assert "batch 16 = 2 ranks x 8" in log
    assert log.count("epoch 2/2") == 1  # rank 0 alone logs
    # ... and equal to the weights rank 0 saved
    last = load_checkpoint(result.last)
    model = build_model_from(last)
    model.load_state_dict(last.train_state)
    assert parameter_digest(model) == found[0]

    # the run's metrics come back from rank 0
    assert result.epochs_completed == 2 and not result.stopped_early
    assert set(result.metrics) >= {"metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "val/box_loss"}
    with open(result.save_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert float(rows[-1]["val/box_loss"]) == pytest.approx(result.metrics["val/box_loss"], rel=1e-4)
    assert json.loads((result.save_dir / "train_result.json").read_text())["epochs_completed"] == 2
    assert result.weights.is_file()


def test_torchrun_runs_the_evolver_cli(tiny_synthetic, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(free_port()), "-m", "evolver", "train", "--data", str(tiny_synthetic),
               "--epochs", "1", "--img", "64", "--batch", "8", "--workers", "0", "--project", str(tmp_path),
               "--name", "tr", "--quiet", "--freeze", "10"]
    # own session: on a timeout the whole tree (torchrun and its ranks) is killed, not just torchrun
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        log, _ = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        log, _ = process.communicate()
        pytest.fail("torchrun did not finish in 180 s:\n" + log[-3000:])
    assert process.returncode == 0, log[-3000:]
    assert log.count("weights:") == 1  # only rank 0 reports
    assert "on all 2 ranks" in log and "batch 8 = 2 ranks x 4" in log
    assert "frozen 0 parameters" not in log and "trainable" in log
    assert (tmp_path / "tr" / "weights" / "last.pt").is_file()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL DDP and SyncBatchNorm need 2 CUDA GPUs "
                    f"(torch.cuda.device_count() is {torch.cuda.device_count()} here)")
def test_two_gpus_nccl_with_sync_bn(tiny_synthetic, tmp_path, capfd):
    from yolo.cli import main

    assert main(["train", "--data", str(tiny_synthetic), "--epochs", "1", "--img", "64", "--batch", "16",
                 "--workers", "0", "--project", str(tmp_path), "--name", "gpu", "--quiet",
                 "--device", "0,1", "--sync-bn"]) == 0
    log = "".join(capfd.readouterr())
    assert "SyncBatchNorm across 2 ranks" in log and "on cuda:0" in log and "on all 2 ranks" in log
