"""One prepared command that checks every CUDA path of Evolver the day a GPU is at hand (issue 23).

No GPU has run this yet. On the device tool's machine (one H100 / H200, PyTorch with CUDA, onnx,
onnxruntime, OpenCV; no downloads), from the repository root, the exact command is:

    PYTHONUNBUFFERED=1 python3 -m benchmarks.gpu_check --out $OUT --budget 480 --data .gpu-data/coco128/coco128.yaml

with `carry: [".gpu-data"]` and `timeout_s: 570`. The ../shared datasets do not travel to that
machine, so COCO128 goes in an ignored folder of the checkout first (once, here; 11 MB):

    mkdir -p .gpu-data && cp -r ../shared/datasets/coco128 .gpu-data/ && echo /.gpu-data/ >> .git/info/exclude

Without COCO128 (no --data and none found) the detector steps train on the built-in synthetic
dataset instead, and say so. Steps, in order, each in its own process under its own time limit
(gpu_plan.STEP_LIMITS, cut to what is left of --budget); a step that fails is recorded with its
traceback and the next one runs:

1. machine     GPU, driver, torch / CUDA / cuDNN, which optional packages import
2. amp_train   yolov5s, AMP, 2 epochs at 640 px, batch 16, --device 0, validated: train and val
               img/s, peak GPU memory, mAP (yolo.train, as `evolver train` trains)
3. fp32_train  the same without AMP (TrainConfig.amp=False): the AMP / float32 img/s ratio
4. onnx        ONNX export of those CUDA-trained weights (deploy/), onnxruntime against torch
               (max abs diff: deploy's parity check, and the model on the GPU with and without TF32)
5. sharing     the demo campaign's trial (examples/synthetic-campaign.yaml: yolov5n from
               examples/yolov5n-shapes.pt, 3 epochs, 160 px, synthetic-shifted) at 1, 2 and 4
               trial processes at once on the GPU, each with CUDA_VISIBLE_DEVICES set to it as Ray
               sets a worker's: trials/hour, per-trial and device peak GPU memory
6. campaign    4 such trials through the trainer alone (one worker process, back to back); then,
               if Ray and the coordinator import, a 4-trial `evolver run` on a local Ray whose
               worker holds the GPU (Ray is not on the device image and its wheel alone is larger
               than the tool's 64 MiB carry limit: see the README)
7. tensorrt    an engine built from the ONNX (deploy/), checked against onnxruntime, if
               `tensorrt` imports; else why not
8. nccl        one DDP epoch on 2 GPUs with SyncBatchNorm over NCCL; with 1 GPU, says it needs 2

Every figure is printed and written to OUT/gpu_check.json (rewritten after each step, so a run
stopped early keeps what it measured); the steps' logs go to OUT/gpu_check.log. Runs, weights and
exports stay in --work (default a new folder under /tmp), so OUT holds those two files only.
`--only onnx,tensorrt` reruns chosen steps (a later step reads what earlier ones left in --work).

Without CUDA it says there is no GPU and exits 0 at once. `--dry-run-on-cpu` runs every step's
plumbing on the CPU at tiny sizes (1 epoch, 64 px, 2 images; gloo instead of NCCL) to prove the
code paths on a machine without a GPU. Exit status: 1 if a step failed or ran out of time, else 0.

    .venv/bin/python -m benchmarks.gpu_check --out /tmp/gpu-check --dry-run-on-cpu
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from benchmarks.gpu_plan import MIN_STEP_SECONDS, REPO, STEP_LIMITS, STEPS, CheckPlan, dry_run_plan, gpu_plan
from benchmarks.gpu_record import StepRecord, json_safe

REPORT_FILE = "gpu_check.json"
LOG_FILE = "gpu_check.log"
KILL_GRACE_SECONDS = 10.0
LOG_TAIL_LINES = 25


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help=f"folder for {REPORT_FILE} and {LOG_FILE}")
    parser.add_argument("--budget", type=float, default=480.0, metavar="SECONDS",
                        help="wall time for all the steps together (default 480)")
    parser.add_argument("--data", help="data yaml of the detector steps (default: COCO128 if found, else synthetic)")
    parser.add_argument("--device", default="0", help="the GPU index to check (default 0)")
    parser.add_argument("--only", help=f"comma-separated steps to run, from {','.join(STEPS)} (default: all)")
    parser.add_argument("--work", type=Path, help="folder for runs, exports and step logs (default: new, in /tmp)")
    parser.add_argument("--dry-run-on-cpu", action="store_true",
                        help="run every step's plumbing on the CPU at tiny sizes (no GPU needed)")
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error(f"--budget must be positive seconds, got {args.budget:g}")
    if not args.device.isdigit():
        parser.error(f"--device must be one GPU index such as 0, got {args.device!r}")
    if args.data is not None and not Path(args.data).is_file():
        parser.error(f"--data {args.data}: no such file (give a data yaml, or leave --data out)")
    args.steps = _chosen_steps(parser, args.only)
    return args


def _chosen_steps(parser: argparse.ArgumentParser, only: str | None) -> tuple[str, ...]:
    if only is None:
        return STEPS
    chosen = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in STEPS]
    if unknown or not chosen:
        parser.error(f"--only {only!r}: unknown step(s) {', '.join(unknown) or '(none given)'}; "
                     f"steps are {', '.join(STEPS)}")
    return tuple(name for name in STEPS if name in chosen)  # always in their order


class CheckReport:
    """OUT/gpu_check.json, rewritten whole after every step; OUT/gpu_check.log, appended."""

    def __init__(self, out: Path, header: dict[str, Any]) -> None:
        self.path = out / REPORT_FILE
        self.log = out / LOG_FILE
        self.header = header
        self.records: list[StepRecord] = []
        self.log.write_text("", encoding="utf-8")
        self.save()

    def add(self, record: StepRecord, log_path: Path | None) -> None:
        self.records.append(record)
        self.save()
        text = log_path.read_text(encoding="utf-8", errors="replace") if log_path and log_path.is_file() else ""
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"===== {record.step}: {record.status} =====\n{text}\n")

    def save(self) -> None:
        row = {**self.header, "steps": [r.to_dict() for r in self.records]}
        self.path.write_text(json.dumps(json_safe(row), indent=1), encoding="utf-8")


def run_step(plan: CheckPlan, plan_path: Path, step: str, limit: float) -> StepRecord:
    """`python -m benchmarks.gpu_steps STEP` in its own process group, killed at `limit` seconds;
    what it recorded comes back, with its status, wall time and, on failure, its error."""
    record_path, log_path = plan.record_path(step), plan.log_path(step)
    for path in (record_path, log_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    record_path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if step == "campaign" and not plan.dry_run:
        env["CUDA_VISIBLE_DEVICES"] = plan.visible_device  # its process is a worker: it sees its GPU alone
    command = [sys.executable, "-m", "benchmarks.gpu_steps", step, "--plan", str(plan_path),
               "--record", str(record_path)]
    start = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its own group: a kill reaches its children too
        try:
            code: int | None = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            code = None
    record = StepRecord.load(step, record_path) or StepRecord(step, record_path)
    if code is None:
        record.finish("timeout", reason=f"stopped at its {limit:.0f} s limit")
    elif code != 0 and record.status in ("running", "ok"):
        record.finish("failed", error=f"exit status {code}; the log ends:\n{_tail(log_path)}")
    elif record.status == "running":
        record.finish("ok")
    record.seconds, record.limit_seconds = time.monotonic() - start, limit
    record.save()
    return record


def _kill_group(process: subprocess.Popen) -> None:
    """SIGTERM the step's process group, then after a grace SIGKILL whatever is left of it
    (children that outlive their leader too)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=KILL_GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def format_figures(figures: dict[str, Any], prefix: str = "") -> list[str]:
    """One 'name: value' line per figure, nested dicts flattened to dotted names."""
    lines = []
    for name, value in figures.items():
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            lines += format_figures(value, f"{prefix}{name}.")
        else:
            lines.append(f"{prefix}{name}: {_format_value(value)}")
    return lines


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def print_record(record: StepRecord) -> None:
    took = f" in {record.seconds:.1f} s" if record.seconds is not None else ""
    print(f"== {record.step}: {record.status}{took}" + (f" ({record.reason})" if record.reason else ""), flush=True)
    for line in format_figures(record.figures):
        print(f"   {line}")
    for note in record.notes:
        print(f"   note: {note}")
    if record.error:
        print("   error:\n" + "\n".join(f"     {line}" for line in record.error.rstrip().splitlines()[-LOG_TAIL_LINES:]))
    sys.stdout.flush()


def _command(argv: Sequence[str]) -> list[str]:
    return ["python", "-m", "benchmarks.gpu_check", *argv]


def no_gpu(out: Path, argv: Sequence[str], torch_version: str) -> int:
    message = (f"no CUDA GPU here (torch {torch_version}: torch.cuda.is_available() is False): nothing to check. "
               "Run this on a CUDA machine; --dry-run-on-cpu runs every step's plumbing on the CPU at tiny sizes.")
    print(message)
    (out / REPORT_FILE).write_text(json.dumps({"gpu": False, "message": message, "command": _command(argv),
                                               "torch": torch_version}, indent=1), encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    if not args.dry_run_on_cpu and not torch.cuda.is_available():
        return no_gpu(args.out, argv, torch.__version__)
    from yolo.device import parse_device, visible_devices_for

    visible = visible_devices_for(parse_device(args.device), os.environ.get("CUDA_VISIBLE_DEVICES"))
    work = args.work or Path(tempfile.mkdtemp(prefix="evolver-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    data = str(Path(args.data).resolve()) if args.data else None
    if args.dry_run_on_cpu:
        plan = dry_run_plan(work.resolve(), args.device, visible, data)
    else:
        plan = gpu_plan(work.resolve(), args.device, visible, data, os.cpu_count() or 1)
    plan_path = plan.write(work / "plan.json")
    started = time.monotonic()
    report = CheckReport(args.out, {
        "gpu": True, "dry_run": plan.dry_run, "command": _command(argv),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "budget_seconds": args.budget,
        "plan": dataclasses.asdict(plan)})
    print(f"gpu_check: {'DRY RUN on the CPU, ' if plan.dry_run else ''}device {plan.device} "
          f"(CUDA_VISIBLE_DEVICES of a worker: {plan.visible_device}), budget {args.budget:.0f} s, "
          f"steps {', '.join(args.steps)}\n   data: {plan.data_note}\n   work: {work}\n   out: {args.out}", flush=True)
    for step in args.steps:
        left = args.budget - (time.monotonic() - started)
        limit = min(STEP_LIMITS[step], left - KILL_GRACE_SECONDS)  # a step stopped at its limit gets a grace
        if limit < MIN_STEP_SECONDS:
            record = StepRecord(step, status="skipped",
                                reason=f"budget spent: {max(0.0, left):.0f} s of {args.budget:.0f} s left")
            report.add(record, None)
        else:
            print(f"-- {step}: starting (limit {limit:.0f} s)", flush=True)
            record = run_step(plan, plan_path, step, limit)
            report.add(record, plan.log_path(step))
        print_record(record)
    counts = {status: sum(r.status == status for r in report.records)
              for status in ("ok", "not_applicable", "failed", "timeout", "skipped")}
    print(f"gpu_check: {', '.join(f'{n} {s}' for s, n in counts.items())} in {time.monotonic() - started:.0f} s; "
          f"figures in {report.path}, logs in {report.log}", flush=True)
    return 1 if counts["failed"] or counts["timeout"] else 0


if __name__ == "__main__":
    sys.exit(main())
