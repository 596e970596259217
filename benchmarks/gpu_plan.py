"""What `benchmarks.gpu_check` runs: the steps, their time limits, and the sizes they train at.

A `CheckPlan` is written to JSON by the orchestrator and read by every step's own process, so a
step sees exactly the sizes, data and device the orchestrator chose. Two plans exist: the GPU
plan (the issue's sizes: yolov5s at 640 px on COCO128, the demo campaign's trials) and the dry
run (`--dry-run-on-cpu`: every step's plumbing on the CPU at tiny sizes, to prove the code paths
on a machine without a GPU).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO_CAMPAIGN = REPO / "examples" / "synthetic-campaign.yaml"

# In the order they run; a later step may use what an earlier one left in the work folder
# (onnx exports amp_train's weights, tensorrt builds from onnx's file).
STEPS = ("machine", "amp_train", "fp32_train", "onnx", "sharing", "campaign", "tensorrt", "nccl")
# Seconds each step may run at most (less when the budget has less left). Expected on an H100:
# well under half of each.
STEP_LIMITS = {"machine": 60, "amp_train": 150, "fp32_train": 150, "onnx": 90, "sharing": 240, "campaign": 150,
               "tensorrt": 150, "nccl": 120}
MIN_STEP_SECONDS = 20  # a step is not started with less budget left than this

# Where COCO128 is looked for when --data is not given: beside the checkout (this machine), or
# copied into an ignored folder of the checkout that the device tool carries (see gpu_check).
COCO128_CANDIDATES = (
    Path(os.environ.get("EVOLVER_SHARED", REPO.parent / "shared")) / "datasets" / "coco128" / "coco128.yaml",
    REPO / ".gpu-data" / "coco128" / "coco128.yaml",
)


@dataclass(frozen=True)
class TrialRecipe:
    """One trial of a campaign, as its worker trains it: the campaign's training fields."""

    data: str  # a data yaml or a built-in dataset name ('synthetic-shifted')
    weights: str | None
    cfg: str | None
    epochs: int
    img_size: int
    batch_size: int
    loader_workers: int
    fitness_weights: tuple[float, float, float, float]
    freeze: tuple[int, ...]

    @classmethod
    def from_campaign_yaml(cls, path: Path) -> "TrialRecipe":
        """The training fields of a campaign yaml, read with the campaign's defaults and its rule
        that relative weights are relative to the yaml's folder (the spec class itself needs
        pydantic, which a bare GPU machine may lack)."""
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or "data" not in raw:
            raise ValueError(f"{path}: not a campaign yaml (no `data` field)")
        weights = raw.get("weights")
        if weights and not Path(weights).is_absolute():
            weights = str((Path(path).parent / weights).resolve())
        return cls(
            data=str(raw["data"]), weights=weights, cfg=raw.get("cfg"), epochs=int(raw.get("epochs", 10)),
            img_size=int(raw.get("img_size", 640)), batch_size=int(raw.get("batch_size", 16)),
            loader_workers=int(raw.get("loader_workers", 0)),
            fitness_weights=tuple(raw.get("fitness_weights", (0.0, 0.0, 0.1, 0.9))),
            freeze=tuple(raw.get("freeze", ())),
        )

    def train_config(self, data: str, seed: int, save_dir: Path, device: str, amp: bool = True) -> Any:
        """yolo's TrainConfig for one trial (`data` resolved to a yaml path)."""
        from yolo.train import TrainConfig

        return TrainConfig(
            data=data, cfg=self.cfg, epochs=self.epochs, img_size=self.img_size, batch_size=self.batch_size,
            device=device, seed=seed, workers=self.loader_workers, save_dir=str(save_dir), weights=self.weights,
            fitness_weights=self.fitness_weights, progress=False, freeze=self.freeze, amp=amp,
        )


@dataclass(frozen=True)
class CheckPlan:
    dry_run: bool
    device: str  # the GPU index ('0') as --device names it, among the GPUs this process sees
    visible_device: str  # that GPU as a worker's CUDA_VISIBLE_DEVICES names it (composed with an inherited mask)
    work_dir: str  # runs, exports, per-step records and logs
    data: str  # data yaml of the detector steps, or a built-in dataset name
    data_note: str  # where `data` came from, in words
    cfg: str
    img_size: int
    epochs: int
    batch_size: int
    loader_workers: int
    parity_images: int
    trial: TrialRecipe  # the demo campaign's trial (sharing and campaign steps)
    sharing_counts: tuple[int, ...]  # trials sharing the GPU at once, one round each
    campaign_trials: int
    ddp_img_size: int

    @property
    def train_device(self) -> str:
        """The device of the detector steps' TrainConfig."""
        return "cpu" if self.dry_run else self.device

    @property
    def trial_device(self) -> str:
        """A worker's device: the one GPU its CUDA_VISIBLE_DEVICES shows (YoloTrialTrainer's 'cuda:0')."""
        return "cpu" if self.dry_run else "cuda:0"

    def work(self, *parts: str) -> Path:
        return Path(self.work_dir).joinpath(*parts)

    def record_path(self, step: str) -> Path:
        """Where `step`'s process saves its StepRecord (a later step may read an earlier one's)."""
        return self.work("records", f"{step}.json")

    def log_path(self, step: str) -> Path:
        return self.work("logs", f"{step}.log")

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> "CheckPlan":
        row = json.loads(Path(path).read_text(encoding="utf-8"))
        trial = row.pop("trial")
        trial = TrialRecipe(**{**trial, "fitness_weights": tuple(trial["fitness_weights"]),
                               "freeze": tuple(trial["freeze"])})
        return cls(**{**row, "trial": trial, "sharing_counts": tuple(row["sharing_counts"])})


def find_coco128() -> Path | None:
    return next((path for path in COCO128_CANDIDATES if path.is_file()), None)


def gpu_plan(work_dir: Path, device: str, visible_device: str, data: str | None, cpu_count: int) -> CheckPlan:
    """The issue's sizes: yolov5s, 2 epochs, 640 px, batch 16 on COCO128 (or the synthetic
    dataset, said so); the demo campaign's trials at 1, 2 and 4 per GPU; a 4-trial campaign."""
    if data is not None:
        note = f"--data {data}"
    elif (coco := find_coco128()) is not None:
        data, note = str(coco), f"COCO128 found at {coco}"
    else:
        looked = ", ".join(str(p) for p in COCO128_CANDIDATES)
        data, note = "synthetic", (f"COCO128 not found ({looked}): the built-in synthetic dataset instead "
                                   "(512 train / 128 val shapes at 256 px); pass --data for another")
    return CheckPlan(
        dry_run=False, device=device, visible_device=visible_device, work_dir=str(work_dir), data=data, data_note=note, cfg="yolov5s", img_size=640,
        epochs=2, batch_size=16, loader_workers=max(1, min(8, cpu_count - 1)), parity_images=8,
        trial=TrialRecipe.from_campaign_yaml(DEMO_CAMPAIGN), sharing_counts=(1, 2, 4), campaign_trials=4,
        ddp_img_size=320,
    )


def dry_run_plan(work_dir: Path, device: str, visible_device: str, data: str | None) -> CheckPlan:
    """Every step at tiny sizes on the CPU: 1 epoch, 64 px, 2 images (a generated dataset unless
    --data names one), the demo trial shrunk alike, 1 and 2 trials at once, a 2-trial campaign."""
    if data is None:
        from yolo.synthetic import generate_synthetic_dataset

        data = str(generate_synthetic_dataset(work_dir / "data" / "tiny", n_train=2, n_val=2, img_size=64, n_test=2))
        note = "dry run: 2 generated synthetic images per split at 64 px"
    else:
        note = f"dry run: --data {data}"
    demo = TrialRecipe.from_campaign_yaml(DEMO_CAMPAIGN)
    trial = dataclasses.replace(demo, data=data, epochs=1, img_size=64, batch_size=2)
    return CheckPlan(
        dry_run=True, device=device, visible_device=visible_device, work_dir=str(work_dir), data=data, data_note=note, cfg="yolov5n", img_size=64,
        epochs=1, batch_size=2, loader_workers=1, parity_images=2, trial=trial, sharing_counts=(1, 2),
        campaign_trials=2, ddp_img_size=64,
    )
