from __future__ import annotations

import os

import pytest
import yaml

from evolver.exchange import (
    EVOLVE_CSV_METRICS,
    read_evolve_csv,
    write_evolve_csv,
    metrics_text,
    write_hyp_evolved,
)
from yolo.hyp import Hyperparameters

BASE = Hyperparameters().to_dict()
METRICS = {"precision": 0.61234567, "recall": 0.5, "map50": 0.55, "map": 0.3141592653589793,
           "val_box_loss": 0.041, "val_obj_loss": 0.0213, "val_cls_loss": 0.0071}


def _yolov5_style_csv(path, hyp_order: list[str], rows: list[tuple[dict, dict]]) -> None:
    """A file laid out the way YOLOv5's --evolve writes it: every field padded to 20 characters."""
    keys = list(EVOLVE_CSV_METRICS) + hyp_order
    metric_keys = ["precision", "recall", "map50", "map", "val_box_loss", "val_obj_loss", "val_cls_loss"]
    lines = [("%20s," * len(keys) % tuple(keys)).rstrip(",")]
    for metrics, hyp in rows:
        values = [metrics[k] for k in metric_keys] + [hyp[k] for k in hyp_order]
        lines.append(("%20.5g," * len(values) % tuple(values)).rstrip(","))
    path.write_text("\n".join(lines) + "\n")


def test_evolve_csv_round_trip(tmp_path):
    rows = [(METRICS, BASE), ({**METRICS, "map": 0.4}, {**BASE, "lr0": 0.01234, "anchors": 3.71})]
    path = tmp_path / "evolve.csv"
    write_evolve_csv(path, rows)
    header = path.read_text().splitlines()[0].split(",")
    assert header == list(EVOLVE_CSV_METRICS) + Hyperparameters.keys()  # metrics, then table order
    back = read_evolve_csv(path)
    assert back == [(dict(METRICS), dict(BASE)), ({**METRICS, "map": 0.4}, {**BASE, "lr0": 0.01234, "anchors": 3.71})]
    write_evolve_csv(path, [])
    assert read_evolve_csv(path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["evolve.csv"]  # no temp file left behind


def test_reads_yolov5_padded_file_with_its_own_column_order(tmp_path):
    # YOLOv5's hyp.scratch-low.yaml has `anchors` commented out and train.py appends it, so it
    # comes last; an older file may lack a key altogether.
    keys = Hyperparameters.keys()
    order = [k for k in keys if k not in ("anchors", "copy_paste")] + ["anchors"]
    hyp = {**BASE, "lr0": 0.0032, "weight_decay": 0.00036, "anchors": 2.0}
    path = tmp_path / "evolve.csv"
    _yolov5_style_csv(path, order, [(METRICS, hyp), (METRICS, BASE)])
    assert path.read_text().startswith("   metrics/precision,      metrics/recall,")
    (metrics, first), (_, second) = read_evolve_csv(path)
    assert metrics["map"] == pytest.approx(0.31416) and metrics["val_cls_loss"] == pytest.approx(0.0071)
    assert set(first) == set(order)  # only the columns the file has
    assert first["lr0"] == 0.0032 and first["weight_decay"] == 0.00036 and first["anchors"] == 2.0
    assert second["momentum"] == 0.937


@pytest.mark.parametrize("text, message", [
    ("", "line 1"),
    ("metrics/precision,lr0\n0.1,0.01\n", "metrics/recall"),
    (",".join(EVOLVE_CSV_METRICS) + ",lr00\n" + "0," * 7 + "0.01\n", "column 8.*lr00"),
    (",".join(EVOLVE_CSV_METRICS) + ",lr0,lr0\n", "column 9.*twice"),
    (",".join(EVOLVE_CSV_METRICS) + ",lr0\n" + "0," * 7 + "0.01\n" + "0," * 7 + "\n", "line 3"),
    (",".join(EVOLVE_CSV_METRICS) + ",lr0\n" + "0," * 7 + "0.01\n" + "0,0,abc," + "0," * 4 + "0.01\n",
     r"line 3, column 3 \(metrics/mAP_0.5\).*'abc'"),
    (",".join(EVOLVE_CSV_METRICS) + ",lr0\n" + "0," * 7 + "0.01,5\n", "line 2: expected 8 columns, found 9"),
    (",".join(EVOLVE_CSV_METRICS) + ",lr0\n" + "0," * 7 + "nan\n", r"line 2, column 8 \(lr0\)"),
])
def test_bad_csv_names_line_and_column(tmp_path, text, message):
    path = tmp_path / "evolve.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_evolve_csv(path)


def test_write_evolve_csv_rejects_incomplete_rows(tmp_path):
    partial = {k: v for k, v in METRICS.items() if k != "val_obj_loss"}
    with pytest.raises(ValueError, match="row 1 lacks val_obj_loss"):
        write_evolve_csv(tmp_path / "e.csv", [(METRICS, BASE), (partial, BASE)])
    with pytest.raises(ValueError, match="lr00"):
        write_evolve_csv(tmp_path / "e.csv", [(METRICS, {**BASE, "lr00": 1.0})])
    assert not (tmp_path / "e.csv").exists()


def test_hyp_evolved_loads_into_yolov5_keys(tmp_path):
    path = tmp_path / "runs" / "hyp_evolved.yaml"
    hyp = {**BASE, "lr0": 0.00123, "weight_decay": 1e-05, "anchors": 3.42}
    write_hyp_evolved(path, hyp, campaign="coco\nsweep",
                      summary=["Best: trial 17, generation 8, fitness 0.41234 (40 trials\nfinished)",
                               f"Metrics: {metrics_text(METRICS)}"])
    text = path.read_text()
    comments = [line for line in text.splitlines() if line.startswith("#")]
    header = "\n".join(comments)
    assert "generation 8" in header and "trial 17" in header and "fitness 0.41234" in header
    assert "metrics/mAP_0.5:0.95 0.31416" in header and "metrics/precision 0.61235" in header
    assert "40 trials finished" in header and "coco sweep" in header  # a newline cannot end a comment
    loaded = yaml.safe_load(text)
    assert list(loaded) == Hyperparameters.keys()
    assert all(isinstance(value, float) for value in loaded.values())
    assert Hyperparameters.from_dict(loaded).to_dict() == hyp
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
    # Rewriting replaces the file whole.
    write_hyp_evolved(path, BASE, campaign="c", summary=["base"])
    assert yaml.safe_load(path.read_text()) == BASE
    assert sorted(p.name for p in path.parent.iterdir()) == ["hyp_evolved.yaml"]


def test_append_matches_a_full_write(tmp_path):
    from evolver.exchange import append_evolve_csv, read_evolve_csv, write_evolve_csv
    from yolo.hyp import Hyperparameters

    metrics = {"precision": 0.5, "recall": 0.25, "map50": 0.125, "map": 0.0625,
               "val_box_loss": 0.1, "val_obj_loss": 0.2, "val_cls_loss": 0.3}
    rows = [(metrics, Hyperparameters().to_dict()), (metrics, Hyperparameters(lr0=0.02).to_dict())]
    write_evolve_csv(tmp_path / "full.csv", rows)
    for m, h in rows:
        append_evolve_csv(tmp_path / "appended.csv", m, h)
    assert (tmp_path / "full.csv").read_text() == (tmp_path / "appended.csv").read_text()
    assert read_evolve_csv(tmp_path / "appended.csv") == [(dict(m), dict(h)) for m, h in rows]
