"""Trials sharing one GPU: N trial processes at once, started the way workers are.

A Ray GPU worker is a process whose CUDA_VISIBLE_DEVICES Ray narrowed to its GPU; its trainer
trains on 'cuda:0' (that GPU) with torch threads = the node's CPUs / workers, and keeps a dataset
cache across its trials. Each round here starts N such processes with CUDA_VISIBLE_DEVICES set
to the same GPU. Every process first imports, creates its CUDA context and says it is ready;
when all are, they are let go together and each trains one trial of the demo campaign. So a
round measures steady-state trials, as long-lived workers run them: trials/hour = N × 3600 /
(the last trial's end − the start), plus each trial's time, mAP and peak GPU memory, and the
device's peak memory use (NVML) while the round ran.

    python -m benchmarks.gpu_sharing --job JOB --ready FILE --go FILE --result FILE   (one trial; internal)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from benchmarks.gpu_memory import DeviceMemorySampler
from benchmarks.gpu_plan import REPO, CheckPlan
from benchmarks.gpu_record import StepRecord
from workers.gpu_memory import PEAK_RESERVED

READY_SECONDS = 180.0  # imports and CUDA context of every process of a round, before the start
GO_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class TrialJob:
    """What one trial process trains: a TrainConfig (as a dict) and its torch threads."""

    config: dict[str, Any]
    torch_threads: int


@dataclass(frozen=True)
class RoundResult:
    trials: int
    wall_seconds: float  # the start signal to the last trial's end
    trials_per_hour: float
    trial_seconds: list[float]
    trial_maps: list[float]  # mAP@0.5:0.95 of each trial's final epoch
    peak_reserved_mib: list[float]  # torch's peak per trial process (CUDA context not counted)
    device_peak_used_mib: float | None  # NVML: the whole GPU, contexts included
    failures: list[str]  # "trial i: error" for trials that failed (an out-of-memory, say)


def run_sharing(plan: CheckPlan, record: StepRecord) -> None:
    """One round per count in plan.sharing_counts; each round's figures saved as it ends."""
    from yolo.synthetic import resolve_data

    data = resolve_data(plan.trial.data)  # a built-in dataset is generated once, before any round
    cpus = os.cpu_count() or 1
    record.figure("trial", {"cfg": plan.trial.cfg, "weights": plan.trial.weights, "data": plan.trial.data,
                            "epochs": plan.trial.epochs, "img_size": plan.trial.img_size,
                            "batch_size": plan.trial.batch_size, "device": plan.trial_device,
                            "CUDA_VISIBLE_DEVICES": plan.visible_device})
    rates: dict[int, float] = {}
    for count in plan.sharing_counts:
        folder = plan.work("sharing", f"x{count}")
        jobs = [TrialJob(plan.trial.train_config(data, seed, folder / f"trial{seed}", plan.trial_device).to_dict(),
                         torch_threads=max(1, cpus // count)) for seed in range(count)]
        gpu_index = int(plan.visible_device) if plan.visible_device.isdigit() and not plan.dry_run else None
        result = run_round(jobs, folder, plan.visible_device, gpu_index)
        record.figure(f"x{count}", asdict(result))
        if result.failures:
            record.note(f"{count} trials at once: {len(result.failures)} failed: " + "; ".join(result.failures))
        rates[count] = result.trials_per_hour
    if rates.get(1):
        record.figure("trials_per_hour_over_x1", {f"x{n}": rate / rates[1] for n, rate in rates.items()})


def run_round(jobs: Sequence[TrialJob], folder: Path, visible_device: str, gpu_index: int | None) -> RoundResult:
    """Start one process per job with CUDA_VISIBLE_DEVICES=`visible_device`, release them together
    once all are ready, wait for all; their results as one round."""
    folder.mkdir(parents=True, exist_ok=True)
    go = folder / "go"
    go.unlink(missing_ok=True)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible_device, "PYTHONUNBUFFERED": "1"}
    processes, paths = [], []
    for i, job in enumerate(jobs):
        job_path = folder / f"job{i}.json"
        job_path.write_text(json.dumps(asdict(job)), encoding="utf-8")
        ready, result = folder / f"ready{i}", folder / f"result{i}.json"
        ready.unlink(missing_ok=True)
        result.unlink(missing_ok=True)
        command = [sys.executable, "-m", "benchmarks.gpu_sharing", "--job", str(job_path), "--ready", str(ready),
                   "--go", str(go), "--result", str(result)]
        processes.append(subprocess.Popen(command, cwd=REPO, env=env))  # output: this step's log
        paths.append((ready, result))
    sampler = DeviceMemorySampler(gpu_index) if gpu_index is not None else None
    try:
        _wait_until_ready(processes, [ready for ready, _ in paths])
        if sampler is not None:
            sampler.start()
        started = time.time()
        go.write_text(str(started), encoding="utf-8")
        codes = [p.wait() for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
        if sampler is not None:
            sampler.stop()
    return _round_result(started, [result for _, result in paths], codes,
                         sampler.peak_mib if sampler is not None else None)


def _wait_until_ready(processes: Sequence[subprocess.Popen], ready: Sequence[Path]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not all(path.exists() for path in ready):
        for i, p in enumerate(processes):
            if p.poll() is not None and not ready[i].exists():
                raise RuntimeError(f"trial process {i} exited with code {p.returncode} before it was ready "
                                   "(its output is in this step's log)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"trial processes not ready after {READY_SECONDS:.0f} s")
        time.sleep(0.1)


def _round_result(started: float, results: Sequence[Path], codes: Sequence[int],
                  device_peak: float | None) -> RoundResult:
    rows = []
    failures = []
    for i, (path, code) in enumerate(zip(results, codes)):
        row = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if code != 0 or "error" in row:
            failures.append(f"trial {i}: exit code {code}, {row.get('error', 'no result written').splitlines()[-1]}")
        rows.append(row)
    ended = [row["ended"] for row in rows if "ended" in row]
    wall = max(ended) - started if ended else float("nan")
    done = sum("seconds" in row and "error" not in row for row in rows)
    return RoundResult(
        trials=len(rows), wall_seconds=wall, trials_per_hour=done * 3600 / wall if ended else float("nan"),
        trial_seconds=[row.get("seconds", float("nan")) for row in rows],
        trial_maps=[row.get("map", float("nan")) for row in rows],
        peak_reserved_mib=[row.get(PEAK_RESERVED, float("nan")) for row in rows],
        device_peak_used_mib=device_peak, failures=failures,
    )


def train_one_trial(job: TrialJob, ready: Path, go: Path, result: Path) -> int:
    """The trial process: get ready (imports, CUDA context), wait for the start, train, write
    the result (or the error) as JSON."""
    import torch

    from benchmarks.gpu_record import json_safe
    from workers.gpu_memory import peak_gpu_memory, reset_peak_gpu_memory
    from yolo.hyp import Hyperparameters
    from yolo.loader import DatasetCache
    from yolo.train import TrainConfig, train

    torch.set_num_threads(job.torch_threads)
    config = TrainConfig.from_dict(job.config)
    device = torch.device(config.device)
    if device.type == "cuda":
        torch.zeros(1, device=device)  # the CUDA context, before the clock starts
    reset_peak_gpu_memory()
    ready.write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + READY_SECONDS
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no start signal {go} after {READY_SECONDS:.0f} s")
        time.sleep(GO_POLL_SECONDS)
    started = time.time()
    row: dict[str, Any] = {"pid": os.getpid(), "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
                           "device": str(device), "started": started}
    try:
        outcome = train(config, Hyperparameters(), dataset_cache=DatasetCache())
        row.update(map=outcome.metrics["metrics/mAP_0.5:0.95"], fitness=outcome.fitness)
    except Exception:  # an out-of-memory among neighbours is a finding: recorded, not raised
        row["error"] = traceback.format_exc()
    row.update(ended=time.time(), **peak_gpu_memory())
    row["seconds"] = row["ended"] - started
    result.write_text(json.dumps(json_safe(row)), encoding="utf-8")
    if "error" in row:
        print(row["error"], file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_sharing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--go", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s trial-pid{os.getpid()} %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    job = TrialJob(**json.loads(args.job.read_text(encoding="utf-8")))
    return train_one_trial(job, args.ready, args.go, args.result)


if __name__ == "__main__":
    sys.exit(main())
