"""benchmarks.gpu_check where there is no GPU: the CPU path says so and exits 0 at once; the dry
run drives each step's plumbing on the CPU at tiny sizes (training, the JSON records, the trial
processes of the sharing step, the ONNX check, the Ray campaign, the DDP launcher); a failing step
is recorded with its traceback and the next one still runs; a spent budget skips steps, saying so."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_check import KILL_GRACE_SECONDS, LOG_FILE, REPORT_FILE, main, parse_args, run_step
from benchmarks.gpu_plan import COCO128_CANDIDATES, REPO as PLAN_REPO, STEPS, CheckPlan, dry_run_plan, gpu_plan
from benchmarks.gpu_record import StepRecord

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(torch.cuda.is_available(),
                                reason="these check the paths of a machine without a GPU; a GPU runs the real check")


def run_check(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def read_report(out: Path) -> dict:
    return json.loads((out / REPORT_FILE).read_text())


def steps_of(report: dict) -> dict[str, dict]:
    return {step["step"]: step for step in report["steps"]}


def test_the_gpu_plan_trains_the_demo_campaign_trial_and_coco128_or_says_what_instead(tmp_path, monkeypatch):
    plan = gpu_plan(tmp_path, "0", "0", None, cpu_count=16)
    assert (plan.cfg, plan.img_size, plan.epochs, plan.batch_size, plan.train_device) == ("yolov5s", 640, 2, 16, "0")
    trial = plan.trial  # examples/synthetic-campaign.yaml, as its campaign trains it
    assert (trial.cfg, trial.epochs, trial.img_size, trial.data) == ("yolov5n", 3, 160, "synthetic-shifted")
    assert trial.weights == str(PLAN_REPO / "examples" / "yolov5n-shapes.pt") and Path(trial.weights).is_file()
    assert plan.sharing_counts == (1, 2, 4) and plan.campaign_trials == 4 and plan.trial_device == "cuda:0"
    assert CheckPlan.read(plan.write(tmp_path / "plan.json")) == plan
    if any(path.is_file() for path in COCO128_CANDIDATES):
        assert plan.data.endswith("coco128.yaml") and "COCO128 found" in plan.data_note
    monkeypatch.setattr("benchmarks.gpu_plan.COCO128_CANDIDATES", (tmp_path / "none" / "coco128.yaml",))
    fallback = gpu_plan(tmp_path, "0", "0", None, cpu_count=16)
    assert fallback.data == "synthetic" and "COCO128 not found" in fallback.data_note


def test_without_a_gpu_it_says_so_and_exits_0_at_once(tmp_path):
    out = tmp_path / "out"
    start = time.monotonic()
    done = run_check("--out", str(out), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "no CUDA GPU here" in done.stdout
    assert time.monotonic() - start < 30  # imports torch and stops: nothing is trained
    report = read_report(out)
    assert report["gpu"] is False and "no CUDA GPU here" in report["message"]
    assert [p.name for p in out.iterdir()] == [REPORT_FILE]


@pytest.mark.parametrize("args, named", [
    (["--budget", "0"], "--budget"),
    (["--data", "no-such-data.yaml"], "no-such-data.yaml"),
    (["--only", "onnx,warp"], "warp"),
    (["--device", "0,1"], "--device"),
])
def test_bad_arguments_are_refused_naming_what_is_wrong(tmp_path, capsys, args, named):
    with pytest.raises(SystemExit) as refused:
        parse_args(["--out", str(tmp_path), *args])
    assert refused.value.code == 2
    assert named in capsys.readouterr().err


def test_a_spent_budget_skips_every_step_and_says_why(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--out", str(out), "--work", str(tmp_path / "work"), "--dry-run-on-cpu", "--budget", "5"]) == 0
    report = read_report(out)
    assert [s["step"] for s in report["steps"]] == list(STEPS)
    assert {s["status"] for s in report["steps"]} == {"skipped"}
    assert all(s["reason"].startswith("budget spent") for s in report["steps"])
    assert "8 skipped" in capsys.readouterr().out


def test_a_failing_step_is_recorded_with_its_traceback_and_the_next_step_runs(tmp_path):
    out = tmp_path / "out"
    done = run_check("--out", str(out), "--work", str(tmp_path / "work"), "--dry-run-on-cpu", "--only", "onnx,tensorrt")
    assert done.returncode == 1, done.stdout + done.stderr  # a failed step
    steps = steps_of(read_report(out))
    assert list(steps) == ["onnx", "tensorrt"]
    assert steps["onnx"]["status"] == "failed"  # nothing trained before it: no weights to export
    assert "Traceback" in steps["onnx"]["error"] and "FileNotFoundError" in steps["onnx"]["error"]
    assert steps["tensorrt"]["status"] == "not_applicable" and "tensorrt" in steps["tensorrt"]["reason"]
    assert "== onnx: failed" in done.stdout and "== tensorrt: not_applicable" in done.stdout


def test_a_step_past_its_limit_is_stopped_and_recorded_as_timed_out(tmp_path):
    plan = dry_run_plan(tmp_path, "0", "0", None)
    plan_path = plan.write(tmp_path / "plan.json")
    start = time.monotonic()
    record = run_step(plan, plan_path, "sharing", limit=1.0)  # its imports alone take longer
    assert time.monotonic() - start < 1.0 + KILL_GRACE_SECONDS + 5
    assert record.status == "timeout" and record.reason == "stopped at its 1 s limit"
    assert StepRecord.load("sharing", plan.record_path("sharing")).status == "timeout"  # as OUT's report will say


def test_the_dry_run_trains_exports_and_runs_trials_side_by_side(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    done = run_check("--out", str(out), "--work", str(work), "--dry-run-on-cpu", "--only", "amp_train,onnx,sharing")
    assert done.returncode == 0, done.stdout + done.stderr
    report = read_report(out)
    assert report["gpu"] is True and report["dry_run"] is True
    steps = steps_of(report)
    assert {name: s["status"] for name, s in steps.items()} == {"amp_train": "ok", "onnx": "ok", "sharing": "ok"}

    trained = steps["amp_train"]["figures"]
    assert trained["config"]["amp"] is True and trained["config"]["autocast"] is False  # no autocast on a CPU
    assert trained["train_img_per_s"] > 0 and trained["val_img_per_s"] > 0
    assert Path(trained["weights"]).is_file()

    exported = steps["onnx"]["figures"]
    assert exported["weights"] == trained["weights"]  # the weights the training step left
    assert exported["weights_trained_on"] == {"device": "cpu", "amp": True}  # on a GPU: "0"
    assert exported["parity_passed"] is True and exported["parity_max_abs_diff"] < 1e-3
    assert exported["torch_cpu_vs_onnxruntime_max_abs_diff"] < 1e-3

    shared = steps["sharing"]["figures"]
    for count in (1, 2):
        round_ = shared[f"x{count}"]
        assert round_["trials"] == count and round_["failures"] == []
        assert round_["trials_per_hour"] > 0 and all(m > 0 for m in round_["trial_maps"])
    trials = [json.loads(p.read_text()) for p in sorted((work / "sharing" / "x2").glob("result*.json"))]
    assert len({t["pid"] for t in trials}) == 2  # one process per trial
    assert {t["CUDA_VISIBLE_DEVICES"] for t in trials} == {"0"}  # both shown the same GPU, as workers are
    assert sorted(p.name for p in out.iterdir()) == sorted([REPORT_FILE, LOG_FILE])  # runs stay in --work
    for line in ("== amp_train: ok", "train_img_per_s:", "parity_max_abs_diff:", "x2.trials_per_hour:"):
        assert line in done.stdout


@pytest.mark.slow
def test_the_dry_run_campaign_and_ddp_steps(tmp_path):
    """The trainer alone and a Ray campaign (Ray is installed here), and the DDP launcher on gloo."""
    out = tmp_path / "out"
    done = run_check("--out", str(out), "--work", str(tmp_path / "work"), "--dry-run-on-cpu", "--only",
                     "campaign,nccl", timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = steps_of(read_report(out))
    campaign = steps["campaign"]["figures"]
    assert len(campaign["trainer_alone_trial_seconds"]) == 2 and campaign["trainer_alone_trials_per_hour"] > 0
    assert campaign["ray_campaign_status"] == "completed"
    assert campaign["ray_trial_statuses"] == ["completed", "completed"]
    assert steps["nccl"]["status"] == "ok" and steps["nccl"]["figures"]["config"]["backend"] == "gloo"
