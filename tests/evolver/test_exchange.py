from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from evolver.exchange import (
    EVOLVE_CSV_METRICS,
    EvolveTable,
    append_evolve_csv,
    metrics_text,
    read_evolve_csv,
    read_evolve_table,
    write_evolve_csv,
    write_evolve_table,
    write_hyp_evolved,
)
from yolo.hyp import Hyperparameters

BASE = Hyperparameters().to_dict()
METRICS = {"precision": 0.61234567, "recall": 0.5, "map50": 0.55, "map": 0.3141592653589793,
           "val_box_loss": 0.041, "val_obj_loss": 0.0213, "val_cls_loss": 0.0071}
METRIC_KEYS = ["precision", "recall", "map50", "map", "val_box_loss", "val_obj_loss", "val_cls_loss"]
# Written by YOLOv5's own train.py --evolve (the pip package 7.0.14, whose print_mutation writes what
# master's does; tests/fixtures/yolov5_evolve/README.md says how it was made).
YOLOV5_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "yolov5_evolve" / "evolve.csv"


def _yolov5_lines(keys: list[str], rows: list[list[float]]) -> str:
    """What YOLOv5's utils/general.py print_mutation writes, from its two format lines."""
    lines = [("%20s," * len(keys) % tuple(keys)).rstrip(",")]
    lines += [("%20.5g," * len(values) % tuple(values)).rstrip(",") for values in rows]
    return "".join(line + "\n" for line in lines)


def _yolov5_style_csv(path, hyp_order: list[str], rows: list[tuple[dict, dict]]) -> None:
    """A file laid out the way YOLOv5's --evolve writes it: every field padded to 20 characters."""
    values = [[metrics[k] for k in METRIC_KEYS] + [hyp[k] for k in hyp_order] for metrics, hyp in rows]
    path.write_text(_yolov5_lines(list(EVOLVE_CSV_METRICS) + hyp_order, values))


def _rounded(values: dict) -> dict:
    return {key: float("%.5g" % value) for key, value in values.items()}


def test_evolver_writes_yolov5s_exact_format_and_reads_it_back(tmp_path):
    rows = [(METRICS, BASE), ({**METRICS, "map": 0.4}, {**BASE, "lr0": 0.01234567, "anchors": 3.71})]
    path = tmp_path / "evolve.csv"
    write_evolve_csv(path, rows)
    text = path.read_text()
    keys = list(EVOLVE_CSV_METRICS) + Hyperparameters.keys()  # metrics, then table order
    assert text == _yolov5_lines(keys, [[m[k] for k in METRIC_KEYS] + [h[k] for k in Hyperparameters.keys()]
                                        for m, h in rows])
    assert text.startswith("   metrics/precision,      metrics/recall,")
    assert text.splitlines()[1].startswith("             0.61235,                 0.5,")
    assert ",            0.012346," in text.splitlines()[2]  # lr0, 5 significant digits
    back = read_evolve_csv(path)
    assert back == [(_rounded(m), _rounded(h)) for m, h in rows]
    assert list(back[0][1]) == Hyperparameters.keys()
    write_evolve_table(tmp_path / "again.csv", read_evolve_table(path))
    assert (tmp_path / "again.csv").read_bytes() == path.read_bytes()
    write_evolve_csv(path, [])
    assert path.read_text() == text.splitlines()[0] + "\n" and read_evolve_csv(path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.csv", "evolve.csv"]  # no temp file left behind


@pytest.mark.parametrize("order", [
    # YOLOv5's hyp.scratch-low.yaml has `anchors` commented out and train.py appends it, so it comes last
    [k for k in Hyperparameters.keys() if k != "anchors"] + ["anchors"],
    # an older file lacks keys altogether (here anchors and copy_paste)
    [k for k in Hyperparameters.keys() if k not in ("anchors", "copy_paste")],
], ids=["anchors-last", "missing-anchors"])
def test_yolov5_layout_round_trips_byte_for_byte(tmp_path, order):
    hyp = {**BASE, "lr0": 0.0032, "weight_decay": 0.00036, "anchors": 2.0, "mixup": 1.2345e-05}
    nan_losses = {**METRICS, "val_obj_loss": float("nan")}
    path = tmp_path / "evolve.csv"
    _yolov5_style_csv(path, order, [(METRICS, hyp), (nan_losses, BASE)])
    table = read_evolve_table(path)
    assert table.columns == (*EVOLVE_CSV_METRICS, *order)
    write_evolve_table(tmp_path / "back.csv", table)
    assert (tmp_path / "back.csv").read_bytes() == path.read_bytes()
    (metrics, first), (second_metrics, second) = table.trials()
    assert metrics["map"] == 0.31416 and metrics["val_cls_loss"] == 0.0071
    assert np.isnan(second_metrics["val_obj_loss"])
    assert list(first) == order  # only the columns the file has, in its order
    assert first["lr0"] == 0.0032 and first["weight_decay"] == 0.00036 and first["mixup"] == 1.2345e-05
    assert second["momentum"] == 0.937


def test_append_then_read(tmp_path):
    path = tmp_path / "runs" / "evolve.csv"
    append_evolve_csv(path, METRICS, BASE)
    append_evolve_csv(path, {**METRICS, "map": 0.5}, {**BASE, "lr0": 0.02})
    assert read_evolve_csv(path) == [(_rounded(METRICS), BASE), (_rounded({**METRICS, "map": 0.5}), {**BASE, "lr0": 0.02})]
    assert path.read_text().count("metrics/precision") == 1


def test_a_file_written_by_yolov5_round_trips_byte_for_byte(tmp_path):
    table = read_evolve_table(YOLOV5_FIXTURE)
    write_evolve_table(tmp_path / "evolve.csv", table)
    assert (tmp_path / "evolve.csv").read_bytes() == YOLOV5_FIXTURE.read_bytes()
    theirs = pd.read_csv(YOLOV5_FIXTURE, skipinitialspace=True)  # how YOLOv5 reads it back
    theirs.columns = [name.strip() for name in theirs.columns]
    assert table.columns == tuple(theirs.columns) and len(table.frame) == len(theirs) > 0
    np.testing.assert_array_equal(table.frame.to_numpy(), theirs.to_numpy(dtype=float))


HEADER = ",".join(EVOLVE_CSV_METRICS) + ",lr0\n"
ZEROS = "0," * 7


@pytest.mark.parametrize("text, message", [
    ("", "line 1: expected a header"),
    ("   \n" + ZEROS + "0.01\n", "line 1: expected a header"),
    ("metrics/precision,lr0\n0.1,0.01\n", "line 1: missing metric column.*metrics/recall"),
    (",".join(EVOLVE_CSV_METRICS) + ",lr00\n" + ZEROS + "0.01\n", "line 1, column 8: unknown column 'lr00'"),
    (",".join(EVOLVE_CSV_METRICS) + ",  lr0,                 lr0\n", "line 1, column 9: column 'lr0' appears twice"),
    (",".join(EVOLVE_CSV_METRICS) + ",,lr0\n", "line 1, column 8: empty column name"),
    (HEADER + ZEROS + "0.01\n" + ZEROS + "\n", r"line 3, column 8 \(lr0\): empty, expected a number"),
    (HEADER + ZEROS + "0.01\n" + "0,0,abc," + "0," * 4 + "0.01\n", r"line 3, column 3 \(metrics/mAP_0.5\): 'abc' is not"),
    (HEADER + ZEROS + "0.01\n" + "0,0,NA," + "0," * 4 + "0.01\n", r"line 3, column 3 \(metrics/mAP_0.5\): 'NA' is not"),
    (HEADER + ZEROS + "0.01,5\n", "line 2: expected 8 columns, found 9"),
    (HEADER + ZEROS + "0.01\n\n   \n" + "0," * 6 + "0\n", "line 5: expected 8 columns, found 7"),
    (HEADER + ZEROS + "nan\n", r"line 2, column 8 \(lr0\): a hyperparameter must be finite, got 'nan'"),
    (HEADER + ZEROS + "0.01\n" + ZEROS + "-inf\n", r"line 3, column 8 \(lr0\).*finite, got '-inf'"),
])
def test_bad_csv_names_line_and_column(tmp_path, text, message):
    path = tmp_path / "evolve.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"^{path}: {message}"):
        read_evolve_csv(path)


def test_blank_lines_and_nan_metrics_are_read(tmp_path):
    path = tmp_path / "evolve.csv"
    path.write_text(HEADER + "\n" + "nan," + "0," * 6 + "0.01\n\n")
    ((metrics, hyp),) = read_evolve_csv(path)
    assert np.isnan(metrics["precision"]) and hyp == {"lr0": 0.01}


def test_files_that_are_not_evolve_csv_text(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path}: is a folder, not an evolve.csv"):
        read_evolve_csv(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        read_evolve_csv(tmp_path / "nope.csv")
    (tmp_path / "e.csv").write_bytes(HEADER.encode() + b"0,\xff\n")
    with pytest.raises(ValueError, match=f"e.csv: not a text file .*UTF-8.* at byte {len(HEADER) + 2}"):
        read_evolve_csv(tmp_path / "e.csv")


def test_table_refuses_columns_evolve_csv_cannot_hold():
    with pytest.raises(ValueError, match="column 8: unknown column 'lr00'"):
        EvolveTable(pd.DataFrame([[0.0] * 8], columns=[*EVOLVE_CSV_METRICS, "lr00"]))
    with pytest.raises(ValueError, match="missing metric column.*val/cls_loss"):
        EvolveTable(pd.DataFrame([[0.0] * 7], columns=[*EVOLVE_CSV_METRICS[:6], "lr0"]))


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
