"""The search benchmark's ledger as the report reads it (one kind of row, the columns asked for,
floats exact), and the best-so-far curve against worker-seconds."""

import json
import math

import pandas as pd
import pytest

from benchmarks.search_campaigns import read_ledger
from benchmarks.search_pruning import report_pruning
from benchmarks.search_ranks import report_ranks
from benchmarks.search_report import best_at, best_curve, report, seconds_to


def write_ledger(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "\n")  # a blank line at the end
    return path


def test_a_ledger_reads_as_the_rows_of_one_kind_with_the_columns_asked_for(tmp_path):
    ledger = write_ledger(tmp_path / "ledger.jsonl", [
        {"kind": "trial", "config": "classic", "seed": 1, "fitness": 1 / 3, "epochs": [0.1, 2 / 3]},
        {"kind": "holdout", "role": "base", "config": "base", "seed": 0, "fitness": 0.5},
        {"kind": "trial", "config": "classic", "seed": 0, "fitness": None, "epochs": []}])
    trials = read_ledger(ledger, "trial", ["config", "seed", "fitness", "epochs", "role"])
    assert list(trials.columns) == ["config", "seed", "fitness", "epochs", "role"]
    assert trials["seed"].tolist() == [1, 0]  # the ledger's order
    # exact: pandas' default JSON reader gives 0.33333333333333304 and 0.6666666666666661
    assert trials["fitness"].iloc[0] == 1 / 3 and trials["epochs"].iloc[0] == [0.1, 2 / 3]
    assert math.isnan(trials["fitness"].iloc[1]) and trials["role"].isna().all()  # null, and a field no trial has
    assert read_ledger(ledger, "holdout", ["role", "fitness"]).values.tolist() == [["base", 0.5]]


def test_a_ledger_not_yet_written_has_no_rows_and_the_report_says_so(tmp_path, capsys):
    for ledger in (tmp_path / "none.jsonl", write_ledger(tmp_path / "empty.jsonl", [])):
        nothing = read_ledger(ledger, "trial", ["config", "seed"])
        assert nothing.empty and list(nothing.columns) == ["config", "seed"]
        assert report(ledger, None) == {} and report_pruning(ledger) == {} and report_ranks(ledger) == []
        assert f"none in {ledger} yet" in capsys.readouterr().out


def test_a_ledger_line_that_is_not_json_is_refused_naming_the_ledger(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"kind": "trial", "seed": 0}\n{"kind": "trial", "seed": \n')
    with pytest.raises(ValueError, match="ledger.jsonl: not a JSON-lines ledger"):
        read_ledger(ledger, "trial", ["seed"])


def test_the_best_curve_charges_every_trials_time_up_to_each_completed_trials_end():
    campaign = pd.DataFrame([
        {"status": "completed", "fitness": 0.3, "start_s": 0.0, "end_s": 10.0},
        {"status": "completed", "fitness": 0.2, "start_s": 0.0, "end_s": 20.0},
        {"status": "failed", "fitness": None, "start_s": 5.0, "end_s": 8.0},
        {"status": "completed", "fitness": 0.5, "start_s": 10.0, "end_s": 30.0},
        {"status": "running", "fitness": None, "start_s": 29.0, "end_s": None}])  # cut at the budget: not counted
    curve = best_curve(campaign.sample(frac=1.0, random_state=1))  # in any order
    # at t = 10: 10 + 10 + 3 (the failed one) + 0; at t = 20: 10 + 20 + 3 + 10; at t = 30: 10 + 20 + 3 + 20
    assert curve.index.tolist() == [23.0, 43.0, 53.0] and curve.tolist() == [0.3, 0.3, 0.5]
    assert math.isnan(best_at(curve, 22.9)) and best_at(curve, 23.0) == 0.3 and best_at(curve, 52.0) == 0.3
    assert seconds_to(curve, 0.25) == 23.0 and seconds_to(curve, 0.5) == 53.0 and seconds_to(curve, 0.6) == math.inf
    assert math.isnan(best_at(best_curve(campaign.iloc[2:3]), 100.0))  # no completed trial
