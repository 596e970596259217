"""The steps of `benchmarks.gpu_check`, each run in its own process by the orchestrator:

    python -m benchmarks.gpu_steps STEP --plan PLAN.json --record RECORD.json

A step saves its figures to its record as it measures them; an exception is recorded with its
traceback (exit status 1). A step that cannot apply here (TensorRT not installed, one GPU for
NCCL) ends `not_applicable` with the reason.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
import importlib
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import yaml

from workers.gpu_memory import peak_gpu_memory, reset_peak_gpu_memory
from benchmarks.gpu_plan import DEMO_CAMPAIGN, REPO, STEPS, CheckPlan
from benchmarks.gpu_record import StepRecord

log = logging.getLogger("gpu_check")

# Importable packages the machine step reports (import name, distribution name).
PACKAGES = (("onnx", "onnx"), ("onnxruntime", "onnxruntime"), ("cv2", "opencv-python-headless"),
            ("numpy", "numpy"), ("tensorrt", "tensorrt"), ("ray", "ray"), ("sqlalchemy", "sqlalchemy"),
            ("pydantic", "pydantic"), ("pynvml", "nvidia-ml-py"))
LATENCY_RUNS = 20


def torch_device(plan: CheckPlan) -> torch.device:
    """The device the detector steps train and compare on."""
    return torch.device("cpu") if plan.dry_run else torch.device("cuda", int(plan.device))


def machine(plan: CheckPlan, record: StepRecord) -> None:
    """What ran the check: GPU(s), driver, torch / CUDA / cuDNN, and which optional packages import."""
    record.figure("python", sys.version.split()[0])
    record.figure("platform", platform.platform())
    record.figure("cpu_count", os.cpu_count())
    record.figure("torch", torch.__version__)
    record.figure("torch_cuda", torch.version.cuda)
    record.figure("cuda_available", torch.cuda.is_available())
    if torch.cuda.is_available():
        record.figure("cudnn", torch.backends.cudnn.version())
        gpus = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append({"index": index, "name": props.name, "memory_mib": props.total_memory / (1 << 20),
                         "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count})
        record.figure("gpus", gpus)
    record.figure("packages", {name: _package_version(name, dist) for name, dist in PACKAGES})
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
        record.figure("nvidia_smi", query.stdout.strip() or query.stderr.strip())
    record.figure("data", plan.data)
    record.note(plan.data_note)


def _package_version(name: str, dist: str) -> str:
    """Its version if it imports, else why not (a package can be installed and still fail to load)."""
    try:
        module = importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 -- ImportError, or a broken install raising anything
        return f"not importable ({type(err).__name__}: {err})"
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return str(getattr(module, "__version__", "imports (version unknown)"))


def amp_train(plan: CheckPlan, record: StepRecord) -> None:
    """yolov5s, AMP (autocast + GradScaler), the plan's epochs, validated every epoch."""
    _train_detector(plan, record, amp=True)


def fp32_train(plan: CheckPlan, record: StepRecord) -> None:
    """The same training in float32; the AMP run's train img/s over this one's."""
    ours = _train_detector(plan, record, amp=False)
    amp = StepRecord.load("amp_train", plan.record_path("amp_train"))
    theirs = amp.figures.get("train_img_per_s") if amp is not None else None
    if theirs and ours:
        record.figure("amp_over_fp32_train_img_per_s", theirs / ours)
        val = amp.figures.get("val_img_per_s")
        if val and record.figures.get("val_img_per_s"):
            record.figure("amp_over_fp32_val_img_per_s", val / record.figures["val_img_per_s"])
    else:
        record.note("no AMP figure to compare with (amp_train did not finish)")


def _train_detector(plan: CheckPlan, record: StepRecord, amp: bool) -> float:
    """Train with yolo's own trainer as `evolver train --device N` does; returns the last
    epoch's train img/s (the first epoch also decodes and caches the images)."""
    from yolo.data import load_data_config, scan_dataset
    from yolo.hyp import Hyperparameters
    from yolo.synthetic import resolve_data
    from yolo.train import EpochReport, TrainConfig, train

    data = resolve_data(plan.data)
    config = TrainConfig(data=data, cfg=plan.cfg, epochs=plan.epochs, img_size=plan.img_size,
                         batch_size=plan.batch_size, device=plan.train_device, workers=plan.loader_workers,
                         save_dir=str(plan.work(record.step, "run")), progress=False, amp=amp)
    device = torch_device(plan)
    record.figure("config", {"cfg": config.cfg, "epochs": config.epochs, "img_size": config.img_size,
                             "batch_size": config.batch_size, "device": config.device, "workers": config.workers,
                             "amp": amp, "autocast": amp and device.type == "cuda", "data": data,
                             "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32})  # float32 convs may run as TF32
    data_config = load_data_config(data)
    train_images = len(scan_dataset(data_config.train, data_config.nc))
    reports: list[EpochReport] = []
    reset_peak_gpu_memory()
    start = time.perf_counter()
    result = train(config, Hyperparameters(), callbacks=[reports.append])
    record.figure("wall_seconds", time.perf_counter() - start)
    train_rates = [train_images / max(1e-9, r.seconds - r.val.seconds) for r in reports]
    record.figure("train_images", train_images)
    record.figure("epoch_train_img_per_s", train_rates)
    record.figure("epoch_val_img_per_s", [r.val.images_per_second for r in reports])
    record.figure("train_img_per_s", train_rates[-1])
    record.figure("val_img_per_s", reports[-1].val.images_per_second)
    for name, value in peak_gpu_memory().items():
        record.figure(name, value)
    record.figure("map50", result.metrics["metrics/mAP_0.5"])
    record.figure("map", result.metrics["metrics/mAP_0.5:0.95"])
    record.figure("weights", result.weights)
    return train_rates[-1]


def onnx(plan: CheckPlan, record: StepRecord) -> None:
    """Export the weights trained on the GPU (deploy's export), check onnxruntime against torch
    (deploy's parity check: fused float32 torch on the CPU), then against the model on its
    training device (with and without TF32 convolutions), and onnxruntime's CUDA provider if any."""
    import onnxruntime as ort

    from deploy.export import check_parity, export_weights
    from deploy.onnx_runtime import OnnxDetector, prepare_batch
    from yolo.checkpoint import load_checkpoint, load_model
    from yolo.data import load_data_config
    from yolo.synthetic import resolve_data

    weights = _trained_weights(plan)
    record.figure("weights", weights)
    trained = load_checkpoint(weights).train_config
    record.figure("weights_trained_on", {"device": trained.get("device"), "amp": trained.get("amp")})
    start = time.perf_counter()
    (exported,) = export_weights(weights, ("onnx",), img_size=plan.img_size, out_dir=plan.work("onnx"))
    record.figure("export_seconds", time.perf_counter() - start)
    record.figure("onnx", exported.path)
    record.figure("onnx_bytes", exported.size)
    images = load_data_config(resolve_data(plan.data)).val[: plan.parity_images]
    parity = check_parity(exported.path, weights, images)
    record.figure("parity_passed", parity.passed)
    record.figure("parity_max_abs_diff", parity.max_abs_diff)
    record.figure("parity_max_scaled_diff", parity.max_scaled_diff)
    record.figure("parity_detections_torch_onnx", [parity.torch_detections, parity.onnx_detections])
    record.note(parity.summary())

    detector = OnnxDetector(exported.path)
    batch, _ = prepare_batch(images, detector.img_size)
    expected = torch.from_numpy(detector(batch))
    device = torch_device(plan)
    model, _ = load_model(weights, device, fuse=True)
    for tf32 in ((True, False) if device.type == "cuda" else (False,)):
        torch.backends.cudnn.allow_tf32 = tf32
        with torch.no_grad():
            got = torch.cat([model(torch.from_numpy(batch[i : i + 1]).to(device))[0].float().cpu()
                             for i in range(len(batch))])
        name = f"torch_{device.type}{'_tf32' if tf32 else ''}_vs_onnxruntime_max_abs_diff"
        record.figure(name, float((got - expected).abs().max()))
    torch.backends.cudnn.allow_tf32 = True  # torch's default
    providers = ort.get_available_providers()
    record.figure("onnxruntime_providers", providers)
    if "CUDAExecutionProvider" in providers:
        on_gpu = OnnxDetector(exported.path, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
        record.figure("onnxruntime_cuda_vs_cpu_max_abs_diff",
                      float(np.abs(on_gpu(batch) - expected.numpy()).max()))


def _trained_weights(plan: CheckPlan) -> Path:
    for step in ("amp_train", "fp32_train"):
        best = plan.work(step, "run", "weights", "best.pt")
        if best.is_file():
            return best
    raise FileNotFoundError(f"neither amp_train nor fp32_train left weights ({plan.work('amp_train', 'run')}/"
                            "weights/best.pt): nothing to export")


def sharing(plan: CheckPlan, record: StepRecord) -> None:
    from benchmarks.gpu_sharing import run_sharing

    run_sharing(plan, record)


def campaign(plan: CheckPlan, record: StepRecord) -> None:
    """The campaign's trials through the trainer alone (one worker process, back to back, one
    dataset cache), then, where Ray and Evolver's coordinator import, a real campaign of as many
    trials on a local Ray whose worker holds the GPU."""
    _trainer_alone(plan, record)
    try:
        import ray  # noqa: F401
        import evolver.store  # noqa: F401  (sqlalchemy)
        import evolver.campaign  # noqa: F401  (pydantic)
    except ImportError as err:
        record.note(f"no Ray campaign: {err.name or err} is not importable here, so the {plan.campaign_trials} "
                    "trials above ran through the trainer alone (what a worker's actor calls per trial), "
                    "without Ray's scheduling")
        record.figure("ray_campaign", f"not run: {err.name or err} not importable")
        return
    _ray_campaign(plan, record)


def _trainer_alone(plan: CheckPlan, record: StepRecord) -> None:
    """What a worker does per trial (YoloTrialTrainer: yolo.train.train with the worker's dataset
    cache) for each trial of the campaign, in this process, whose CUDA_VISIBLE_DEVICES the
    orchestrator set as Ray sets a worker's."""
    from yolo.hyp import Hyperparameters
    from yolo.loader import DatasetCache
    from yolo.synthetic import resolve_data
    from yolo.train import train

    data = resolve_data(plan.trial.data)
    cache = DatasetCache()
    reset_peak_gpu_memory()
    seconds, maps = [], []
    for seed in range(plan.campaign_trials):
        config = plan.trial.train_config(data, seed, plan.work("campaign", "alone", f"trial{seed}"), plan.trial_device)
        start = time.perf_counter()
        result = train(config, Hyperparameters(), dataset_cache=cache)
        seconds.append(time.perf_counter() - start)
        maps.append(result.metrics["metrics/mAP_0.5:0.95"])
        record.figure("trainer_alone_trial_seconds", seconds)
        record.figure("trainer_alone_trial_maps", maps)
    record.figure("trainer_alone_trials_per_hour", len(seconds) * 3600 / sum(seconds))
    for name, value in peak_gpu_memory().items():
        record.figure(f"trainer_alone_{name}", value)


def _ray_campaign(plan: CheckPlan, record: StepRecord) -> None:
    """`evolver run` of the demo campaign cut to plan.campaign_trials trials (2 per generation, no
    confirmation stage), local Ray, SQLite; figures read back from SQL."""
    from evolver.store import Store

    folder = plan.work("campaign", "ray")
    folder.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load(DEMO_CAMPAIGN.read_text(encoding="utf-8"))
    trial = plan.trial
    spec.update(name="gpu-check", data=trial.data, weights=trial.weights, epochs=trial.epochs,
                img_size=trial.img_size, batch_size=trial.batch_size, population=2,
                generations=math.ceil(plan.campaign_trials / 2), confirm=False)
    spec_path = folder / "campaign.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray stays on loopback (FIELD-NOTES)
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "evolver", "run", str(spec_path), "--project", str(folder), "--quiet"],
                         cwd=REPO, env=env)
    record.figure("ray_campaign_wall_seconds", time.perf_counter() - start)
    record.figure("ray_campaign_exit_status", run.returncode)
    with Store.open(Store.sqlite_url(folder / "evolver.db")) as store:
        stored = store.campaigns()[-1]
        trials = store.trials(stored.id)
    record.figure("ray_campaign_status", stored.status)
    record.figure("ray_trial_statuses", [t.status for t in trials])
    record.figure("ray_trial_gpu_ids", [t.gpu_id for t in trials])
    timed = [t for t in trials if t.started_at and t.ended_at]
    record.figure("ray_trial_seconds", [(t.ended_at - t.started_at).total_seconds() for t in timed])
    if timed:
        span = (max(t.ended_at for t in timed) - min(t.started_at for t in timed)).total_seconds()
        record.figure("ray_trials_per_hour", len(timed) * 3600 / span)
    if run.returncode != 0:
        raise RuntimeError(f"evolver run exited with {run.returncode} (its output is in this step's log)")


def tensorrt(plan: CheckPlan, record: StepRecord) -> None:
    """A TensorRT engine from the onnx step's file (or a fresh export), checked against
    onnxruntime on the parity images, with its batch-1 latency."""
    from deploy.export import export_weights
    from deploy.onnx_runtime import OnnxDetector, prepare_batch
    from deploy.tensorrt_engine import EngineOptions, TensorRTDetector, build_engine, import_tensorrt
    from yolo.data import load_data_config
    from yolo.synthetic import resolve_data

    try:
        trt = import_tensorrt()
    except RuntimeError as err:
        record.finish("not_applicable", reason=f"tensorrt is not importable: {err}")
        return
    if not torch.cuda.is_available():
        record.finish("not_applicable", reason=f"tensorrt {trt.__version__} imports but CUDA is not available")
        return
    record.figure("tensorrt", trt.__version__)
    onnx_path = plan.work("onnx", "best.onnx")
    if not onnx_path.is_file():
        (exported,) = export_weights(_trained_weights(plan), ("onnx",), img_size=plan.img_size,
                                     out_dir=plan.work("tensorrt"))
        onnx_path = exported.path
    start = time.perf_counter()
    engine = build_engine(onnx_path, plan.work("tensorrt", "best.engine"), EngineOptions(workspace_gib=4.0))
    record.figure("build_seconds", time.perf_counter() - start)
    record.figure("engine_bytes", engine.stat().st_size)
    detector = TensorRTDetector(engine, device=torch_device(plan))
    images = load_data_config(resolve_data(plan.data)).val[: plan.parity_images]
    batch, _ = prepare_batch(images, detector.img_size)
    got = torch.cat([detector(batch[i : i + 1]).float().cpu() for i in range(len(batch))])
    expected = torch.from_numpy(OnnxDetector(onnx_path)(batch))
    record.figure("tensorrt_vs_onnxruntime_max_abs_diff", float((got - expected).abs().max()))
    one = batch[:1]
    detector(one)
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        detector(one)
        times.append(time.perf_counter() - start)
    record.figure("latency_ms_batch1_median", 1000 * sorted(times)[len(times) // 2])


def nccl(plan: CheckPlan, record: StepRecord) -> None:
    """One DDP epoch on 2 GPUs with SyncBatchNorm over NCCL (yolo's launcher: one process per GPU,
    replicas checked equal at the end). The dry run drives the same launcher with 2 gloo CPU
    processes and no SyncBatchNorm, which PyTorch does not train on the CPU."""
    from yolo.ddp_main import train_distributed
    from yolo.synthetic import resolve_data
    from yolo.train import TrainConfig

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not plan.dry_run and gpus < 2:
        record.finish("not_applicable", reason=f"NCCL DDP with SyncBatchNorm needs 2 GPUs; this machine has {gpus}")
        return
    device, sync_bn, nproc = ("cpu", False, 2) if plan.dry_run else ("0,1", True, None)
    config = TrainConfig(data=resolve_data(plan.data), cfg="yolov5n", epochs=1, img_size=plan.ddp_img_size,
                         batch_size=plan.batch_size, device=device, workers=plan.loader_workers,
                         save_dir=str(plan.work("nccl", "run")), progress=False, sync_bn=sync_bn)
    record.figure("config", {"device": device, "sync_bn": sync_bn, "backend": "gloo" if plan.dry_run else "nccl",
                             "img_size": config.img_size, "batch_size": config.batch_size})
    start = time.perf_counter()
    result = train_distributed(config, nproc=nproc)
    record.figure("wall_seconds", time.perf_counter() - start)
    record.figure("map", result.metrics["metrics/mAP_0.5:0.95"])
    if plan.dry_run:
        record.note("dry run: 2 gloo processes on the CPU without SyncBatchNorm (the launcher's plumbing only)")


STEP_FUNCTIONS: dict[str, Callable[[CheckPlan, StepRecord], None]] = {
    "machine": machine, "amp_train": amp_train, "fp32_train": fp32_train, "onnx": onnx, "sharing": sharing,
    "campaign": campaign, "tensorrt": tensorrt, "nccl": nccl,
}
assert tuple(STEP_FUNCTIONS) == STEPS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_steps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    plan = CheckPlan.read(args.plan)
    record = StepRecord(args.step, args.record)
    record.save()
    try:
        STEP_FUNCTIONS[args.step](plan, record)
    except Exception:  # noqa: BLE001 -- any failure is the step's finding, recorded with its traceback
        error = traceback.format_exc()
        print(error, file=sys.stderr, flush=True)
        record.finish("failed", error)
        return 1
    if record.status == "running":
        record.finish("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
