"""The side-by-side benchmark's own logic, without YOLOv5: reading YOLOv5's progress bars, the
dataset copy YOLOv5 trains from, and the table printed from a ledger."""

from __future__ import annotations

import math

import pytest
import yaml

from benchmarks.reference_finetune import Ledger, Settings, mirror_dataset, report
from benchmarks.reference_tools import _bar_seconds, _finished_bars

# What YOLOv5 7.0's train.py writes for 2 epochs (tqdm's carriage returns already made newlines):
# each finished bar is drawn twice, the second time with its final rate; the val bars of two
# epochs can be identical.
YOLOV5_LOG = """\
      Epoch    GPU_mem   box_loss   obj_loss   cls_loss  Instances       Size
        0/1         0G     0.1284    0.02008    0.05121         61        320:  50%|#####     | 4/8 [00:05<00:05, 1.3s/it]
        0/1         0G     0.1194    0.02079    0.05114         20        320: 100%|##########| 8/8 [00:11<00:00, 1.4s/it]
        0/1         0G     0.1194    0.02079    0.05114         20        320: 100%|##########| 8/8 [00:11<00:00, 1.2s/it]
                 Class     Images  Instances          P          R      mAP50   mAP50-95: 100%|##########| 4/4 [00:03<00:00, 0.8s/it]
                 Class     Images  Instances          P          R      mAP50   mAP50-95: 100%|##########| 4/4 [00:03<00:00, 0.7s/it]
                   all        128        929      0.001      0.002     0.0005     0.0001
      Epoch    GPU_mem   box_loss   obj_loss   cls_loss  Instances       Size
        1/1         0G     0.1102    0.02111    0.05001         33        320: 100%|##########| 8/8 [01:02<00:00, 7.7s/it]
                 Class     Images  Instances          P          R      mAP50   mAP50-95: 100%|##########| 4/4 [00:03<00:00, 0.8s/it]
"""


def test_each_finished_bar_is_read_once_with_its_elapsed_seconds():
    bars = _finished_bars(YOLOV5_LOG)
    assert len(bars) == 4  # train, val, train, val: the repeated draws merged, equal val bars kept apart
    assert [_bar_seconds(bar) for bar in bars] == [11, 3, 62, 3]
    assert "1.2s/it" in bars[0]  # the final draw


def _dataset(root, **extra):
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        (root / "images" / split / "a.jpg").write_bytes(b"jpeg")
        (root / "labels" / split / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "train.cache").write_bytes(b"stale")
    data = {"path": ".", "train": "images/train", "val": "images/val", "nc": 1, "names": ["thing"], **extra}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def test_the_mirror_is_a_copy_with_absolute_paths_and_no_label_caches(tmp_path):
    source = _dataset(tmp_path / "shared")
    mirrored = mirror_dataset(source, tmp_path / "copy", ("train", "val"))
    data = yaml.safe_load(mirrored.read_text())
    assert data["path"] == str(tmp_path / "copy") and data["train"] == "images/train" and data["nc"] == 1
    assert (tmp_path / "copy" / "labels" / "val" / "a.txt").read_text() == "0 0.5 0.5 0.1 0.1\n"
    assert not (tmp_path / "copy" / "images").is_symlink()  # YOLOv5 resolves links back to the shared folder
    assert not (tmp_path / "copy" / "labels" / "train.cache").exists()


def test_a_dataset_without_a_test_split_is_named_as_the_problem(tmp_path):
    source = _dataset(tmp_path / "shared")
    with pytest.raises(ValueError, match="needs test"):
        mirror_dataset(source, tmp_path / "copy", ("train", "val", "test"))


def _run(side, seed, fitness, wall):
    scores = {"precision": 0.5, "recall": 0.5, "map50": fitness, "map": fitness, "images": 63,
              "nms_time_limit_hits": 0, "fitness": fitness}
    row = {"side": side, "seed": seed, "load1_at_start": 1.5, "wall_s": wall, "train_s": wall - 5,
           "weights": "last.pt", "best_epoch_on_val": 5, "train_nms_time_limit_hits": 1, "scores": scores}
    if side == "yolov5":
        row["scores_yolov5_val"] = dict(scores)
    return row


def test_the_report_gives_each_side_mean_and_se_and_the_difference_in_se(capsys):
    ours, theirs = [0.20, 0.22, 0.24], [0.15, 0.16, 0.17]
    runs = [_run("ours", s, f, 100.0) for s, f in enumerate(ours)] + [_run("yolov5", s, f, 200.0)
                                                                    for s, f in enumerate(theirs)]
    machine = {"date": "d", "cpu": "c", "cores": 2, "torch_version_threads": {"ours": "t 2", "yolov5": "t 2"}}
    report(Ledger(Settings().to_dict(), machine, runs))
    out = capsys.readouterr().out
    se_ours, se_theirs = 0.02 / math.sqrt(3), 0.01 / math.sqrt(3)
    assert f"0.2200 ± {se_ours:.4f}" in out and f"0.1600 ± {se_theirs:.4f}" in out
    assert f"+0.0600 test fitness = {0.06 / math.hypot(se_ours, se_theirs):+.1f} SE" in out
    assert "wall time ours / YOLOv5 0.50" in out
    assert "gave up on 3 val batches" in out


def _yolov5_lrs(epochs: int, batches: int, warmup: int, lr0: float, lrf: float) -> list[float]:
    """The weights' learning rate at every iteration as YOLOv5 7.0's train.py sets it: warmup by
    hand towards lr0 * lf(epoch), then torch's LambdaLR, whose `last_epoch` it resets after the
    constructor has stepped."""
    import numpy as np
    import torch

    lf = lambda x: (1 - x / epochs) * (1.0 - lrf) + lrf  # noqa: E731 (YOLOv5's spelling)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr0, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lf)
    scheduler.last_epoch = -1
    lrs = []
    for epoch in range(epochs):
        for i in range(batches):
            ni = i + batches * epoch
            if ni <= warmup:
                optimizer.param_groups[0]["lr"] = float(np.interp(ni, [0, warmup], [0.0, lr0 * lf(epoch)]))
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
        scheduler.step()
    return lrs


def test_the_late_schedule_sets_yolov5s_learning_rates(monkeypatch):
    import torch

    from benchmarks.reference_late_lr import yolov5_late_schedule
    from yolo import optim
    from yolo.hyp import Hyperparameters

    monkeypatch.setattr(optim.Schedule, "apply", optim.Schedule.apply)  # undone after the test
    hyp = Hyperparameters()
    epochs, batches = 5, 28  # vehicles-openimages' 439 images in batches of 16: warmup ends in epoch 4
    expected = _yolov5_lrs(epochs, batches, 100, hyp.lr0, hyp.lrf)
    optimizer = optim.build_optimizer(torch.nn.Conv2d(3, 8, 3), hyp, 16)
    schedule = optim.Schedule(hyp, epochs, batches)

    def ours() -> list[float]:
        lrs = []
        for step in range(epochs * batches):
            schedule.apply(optimizer, step // batches, step)
            lrs.append(optimizer.param_groups[optim.DECAY_GROUP]["lr"])
        return lrs

    plain = ours()
    assert plain[-1] == pytest.approx(hyp.lr0 * 0.208) and expected[-1] == pytest.approx(hyp.lr0 * 0.406)
    yolov5_late_schedule()
    assert ours() == pytest.approx(expected)
