"""`python -m benchmarks.search_efficiency report` and `ranks` on the committed ledgers: the tables
print without matplotlib, the committed plots are never rewritten unless asked."""

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.search_campaigns import CONFIGS, EXPERIMENTS, REPO, read_ledger

PLOTS = sorted(e.plot for e in EXPERIMENTS.values())
WITHOUT_MATPLOTLIB = ("import runpy, sys; sys.modules['matplotlib'] = None; sys.argv = ['search_efficiency'] + "
                      "sys.argv[1:]; runpy.run_module('benchmarks.search_efficiency', run_name='__main__')")


def run(*args: str, without_matplotlib: bool = False) -> subprocess.CompletedProcess:
    command = ["-c", WITHOUT_MATPLOTLIB] if without_matplotlib else ["-m", "benchmarks.search_efficiency"]
    return subprocess.run([sys.executable, *command, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def fingerprint(path):
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def test_without_matplotlib_the_report_prints_its_tables_and_names_the_extra():
    done = run("report", "--experiments", "stopping-10", without_matplotlib=True)
    assert done.returncode == 0, done.stderr
    assert "pip install -e '.[bench]'" in done.stdout
    assert "best@100%" in done.stdout and "early stopping replayed" in done.stdout
    assert "Spearman rank correlation" in done.stdout


def test_asking_for_plots_without_matplotlib_is_an_error_naming_the_extra(tmp_path):
    folder = tmp_path / "plots"
    done = run("report", "--experiments", "stopping-10", "--plots", str(folder), without_matplotlib=True)
    assert done.returncode != 0
    assert "matplotlib" in done.stderr and "pip install -e '.[bench]'" in done.stderr
    assert not folder.exists()


def test_a_plain_report_leaves_the_committed_plots_alone():
    before = {p: fingerprint(p) for p in PLOTS}
    done = run("report")
    assert done.returncode == 0, done.stderr
    assert {p: fingerprint(p) for p in PLOTS} == before
    if importlib.util.find_spec("matplotlib") is not None:  # drawn into the scratch folder it names
        scratch = re.search(r"plots go to (\S+)", done.stdout).group(1)
        assert str(REPO / "benchmarks" / "results") not in scratch
        assert sorted(p.name for p in PLOTS) == sorted(p.name for p in Path(scratch).iterdir())


def test_plots_go_to_the_folder_asked_for(tmp_path):
    pytest.importorskip("matplotlib")
    done = run("report", "--experiments", "stopping-10", "--plots", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == [EXPERIMENTS["stopping-10"].plot.name]


def row(stdout: str, label: str, epochs: int) -> tuple[int, list[float]]:
    """(trials, correlation after epoch 1 ... epochs - 1) of the `ranks` table's row `label`."""
    cells = next(line for line in stdout.splitlines() if line.startswith(label)).split()[-epochs:]
    return int(cells[0]), [float(c) for c in cells[1:]]


def mean_positions(values: list[float]) -> np.ndarray:
    ordered = np.sort(values)
    return np.array([np.flatnonzero(ordered == v).mean() for v in values])


def test_ranks_prints_the_correlations_over_the_campaigns_without_early_stopping_and_over_all():
    experiment = EXPERIMENTS["stopping-10"]
    trials = read_ledger(experiment.ledger, "trial", ["config", "status", "epochs", "fitness"])
    completed = trials[trials["status"] == "completed"]
    unstopped = completed[completed["config"].map(lambda config: "early_stopping" not in CONFIGS[config].spec)]
    epochs = len(completed["epochs"].iloc[0])
    done = run("ranks", "--experiments", experiment.name)
    assert done.returncode == 0, done.stderr
    for label, trials in (("campaigns without early stopping", unstopped), ("every completed trial", completed)):
        count, by_epoch = row(done.stdout, label, epochs)
        assert count == len(trials) and len(by_epoch) == epochs - 1
        # epoch 1 recomputed from the ledger: tied values (repeated trials) share their mean position
        first = mean_positions([curve[0] for curve in trials["epochs"]])
        final = mean_positions(trials["fitness"].tolist())
        assert by_epoch[0] == pytest.approx(np.corrcoef(first, final)[0, 1], abs=0.005)
