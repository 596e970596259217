"""`results.csv`: one row per epoch, YOLOv5's column names so existing plotting tools read it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yolo.train import EpochReport

COLUMNS = (
    "epoch", "train/box_loss", "train/obj_loss", "train/cls_loss",
    "metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",
    "val/box_loss", "val/obj_loss", "val/cls_loss", "x/lr0", "x/lr1", "x/lr2", "fitness", "seconds",
)


class ResultsWriter:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []
        if self.path.exists():  # resuming: keep the epochs already written
            with open(self.path, newline="") as f:
                self.rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def append(self, report: "EpochReport") -> None:
        val = report.val.as_dict()
        lrs = (list(report.learning_rates) + [0.0, 0.0, 0.0])[:3]
        row = {
            "epoch": report.epoch,
            "train/box_loss": report.train_losses[0],
            "train/obj_loss": report.train_losses[1],
            "train/cls_loss": report.train_losses[2],
            **{k: val.get(k, 0.0) for k in COLUMNS[4:11]},
            "x/lr0": lrs[0], "x/lr1": lrs[1], "x/lr2": lrs[2],
            "fitness": report.fitness,
            "seconds": report.seconds,
        }
        self.rows = [r for r in self.rows if int(r["epoch"]) < report.epoch] + [row]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            for r in self.rows:
                writer.writerow({k: (int(r[k]) if k == "epoch" else f"{r[k]:.6g}") for k in COLUMNS})
