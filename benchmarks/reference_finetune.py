"""Our trainer beside the reference YOLOv5 v7.0 (`yolov5` 7.0.14), like with like, on this machine.

Fine-tune: both fine-tune YOLOv5's release `yolov5n.pt` on `../shared/datasets/vehicles-openimages`
(train / val / test = 439 / 125 / 63 photos, 5 classes) with the same flags: 5 epochs, 320 px,
batch 16, 2 loader workers, CPU, YOLOv5's hyp.scratch-low (the default of both), seeds 0, 1, 2.
Runs alternate (ours seed 0, YOLOv5 seed 0, ours seed 1, ...) so that the load of the shared
machine falls on both alike; the 1-minute load average at each run's start is recorded. Each
run's final model (last.pt: EMA weights after the last epoch) is scored on the TEST split, which neither
training saw, by the same evaluator for both, ours (`evolver val --split test`), and YOLOv5's
own model also by YOLOv5's `val.py --task test`. Fitness = 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95.

From scratch: YOLOv5's speed case of `benchmarks.speed` (yolov5n, COCO128, 320 px, batch 16,
3 epochs), its per-epoch train and val seconds.

Figures go to a JSON ledger (`benchmarks/results/reference_yolov5.json`, written after every run)
and `report` prints them again. YOLOv5 runs from the throwaway venv that
`benchmarks/reference_yolov5.sh` builds, which runs this module:

    benchmarks/reference_yolov5.sh                     # build the venv once, run everything (~80 min)
    benchmarks/reference_yolov5.sh report              # the table, from the ledger
    .venv/bin/python -m benchmarks.reference_finetune run --yolov5-python VENV/bin/python [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from benchmarks.reference_tools import (
    FineTune, score_with_ours, score_with_yolov5, train_ours, train_yolov5, train_yolov5_from_scratch,
    with_repository_names,
)
from benchmarks.search_report import mean_se

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EVOLVER_SHARED", ROOT.parent / "shared"))
LEDGER = Path(__file__).resolve().parent / "results" / "reference_yolov5.json"
SIDES = ("ours", "yolov5")


@dataclass(frozen=True)
class Settings:
    dataset: Path = SHARED / "datasets" / "vehicles-openimages" / "data.yaml"
    weights: Path = SHARED / "weights" / "yolov5n.pt"
    epochs: int = 5
    img_size: int = 320
    batch_size: int = 16
    workers: int = 2
    seeds: tuple[int, ...] = (0, 1, 2)
    split: str = "test"

    def to_dict(self) -> dict:
        return {**asdict(self), "dataset": str(self.dataset), "weights": str(self.weights), "seeds": list(self.seeds)}


def mirror_dataset(data_yaml: Path, into: Path, splits: tuple[str, ...]) -> Path:
    """A copy of the dataset of `data_yaml` (images and labels, no label caches) in `into` and a
    data yaml for it with absolute paths (YOLOv5's train.py needs them). YOLOv5 writes its label
    caches beside the labels, and resolves symbolic links first: a copy keeps the shared dataset
    as it is."""
    source = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    missing = [key for key in (*splits, "nc", "names") if key not in source]
    if missing:
        raise ValueError(f"{data_yaml}: needs {', '.join(missing)} for this comparison")
    root = (data_yaml.parent / source.get("path", ".")).resolve()
    for folder in ("images", "labels"):
        shutil.copytree(root / folder, into / folder, ignore=shutil.ignore_patterns("*.cache"))
    data = {"path": str(into), **{split: source[split] for split in splits}, "nc": source["nc"], "names": source["names"]}
    mirrored = into / data_yaml.name
    mirrored.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return mirrored


@dataclass
class Ledger:
    settings: dict
    machine: dict
    runs: list[dict] = field(default_factory=list)
    from_scratch: dict | None = None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Ledger":
        if not path.exists():
            raise SystemExit(f"no ledger at {path}: run `benchmarks/reference_yolov5.sh` first")
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def machine_facts(yolov5_python: Path) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = {}
    for side, python in (("ours", Path(sys.executable)), ("yolov5", yolov5_python)):
        out = subprocess.run([str(python), "-c", "import torch; print(torch.__version__, torch.get_num_threads())"],
                             capture_output=True, text=True)
        versions[side] = out.stdout.strip()
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu, "cores": os.cpu_count(),
            "torch_version_threads": versions}


def _one_run(side: str, seed: int, settings: Settings, job: FineTune, python: Path, work: Path) -> dict:
    load1 = os.getloadavg()[0]
    print(f"{time.strftime('%H:%M:%S')}  {side} seed {seed}: training (load average {load1:.2f})", flush=True)
    if side == "ours":
        training = train_ours(job, seed, work)
    else:
        training = train_yolov5(python, job, seed, work)
    row = {"side": side, "seed": seed, "load1_at_start": load1, "wall_s": training.wall_s, "train_s": training.train_s,
           "weights": training.weights.name, "best_epoch_on_val": training.best_epoch,
           "train_nms_time_limit_hits": training.nms_time_limit_hits}
    readable = training.weights if side == "ours" else with_repository_names(python, training.weights)
    row["scores"] = score_with_ours(readable, job.data_yaml, settings.split, settings.img_size,
                                    work / f"{side}-seed{seed}-val-ours.log").to_dict()
    if side == "yolov5":
        row["scores_yolov5_val"] = score_with_yolov5(python, training.weights, job.data_yaml, settings.split,
                                                     settings.img_size, work / f"yolov5-seed{seed}-valpy").to_dict()
    print(f"          wall {training.wall_s:.0f} s, {settings.split} fitness {row['scores']['fitness']:.4f}", flush=True)
    return row


def run_fine_tunes(settings: Settings, python: Path, ledger: Ledger, path: Path, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="reference-finetune-") as tmp:
        work = Path(keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        data_dir = Path(tempfile.mkdtemp(dir=work, prefix="data-"))
        data_yaml = mirror_dataset(settings.dataset, data_dir, ("train", "val", "test"))
        job = FineTune(weights=settings.weights, data_yaml=data_yaml,
                       epochs=settings.epochs, img_size=settings.img_size, batch_size=settings.batch_size,
                       workers=settings.workers)
        done = {(r["side"], r["seed"]) for r in ledger.runs}
        for seed in settings.seeds:
            for side in SIDES:
                if (side, seed) in done:
                    continue
                ledger.runs.append(_one_run(side, seed, settings, job, python, work))
                ledger.save(path)


def run_from_scratch(python: Path, ledger: Ledger, path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="reference-coco128-") as tmp:
        data_yaml = mirror_dataset(SHARED / "datasets" / "coco128" / "coco128.yaml", Path(tmp), ("train", "val"))
        load1 = os.getloadavg()[0]
        print(f"{time.strftime('%H:%M:%S')}  yolov5 from scratch on COCO128 (load average {load1:.2f})", flush=True)
        times = train_yolov5_from_scratch(python, data_yaml, "yolov5n", 320, 16, 3, 2, Path(tmp))
    ledger.from_scratch = {"case": "yolov5n@320, COCO128 (128 train = val images), batch 16, 3 epochs, 2 workers",
                           "images": 128, "load1_at_start": load1, **asdict(times)}
    ledger.save(path)


def _mean_se_text(values: list[float], digits: int) -> str:
    mean, se = mean_se(values)
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{mean:.{digits}f}"


def report(ledger: Ledger) -> None:
    s, m = ledger.settings, ledger.machine
    print(f"{m['date']}, {m['cpu']}, {m['cores']} cores; torch (version, threads): ours {m['torch_version_threads']['ours']}, "
          f"YOLOv5 {m['torch_version_threads']['yolov5']}")
    print(f"fine-tune {Path(s['weights']).name} on {Path(s['dataset']).parent.name}: {s['epochs']} epochs, {s['img_size']} px, "
          f"batch {s['batch_size']}, {s['workers']} workers, CPU; last.pt scored on '{s['split']}' by `evolver val`")
    print(f"{'run':<14} {'load1':>6} {'wall s':>7} {'train s':>8} {'best ep':>7} {'P':>6} {'R':>6} {'mAP50':>6} "
          f"{'mAP':>6} {'fitness':>8} {'YOLOv5 val.py':>14}")
    for r in ledger.runs:
        sc = r["scores"]
        own = f"{r['scores_yolov5_val']['fitness']:.4f}" if "scores_yolov5_val" in r else ""
        print(f"{r['side'] + ' seed ' + str(r['seed']):<14} {r['load1_at_start']:6.2f} {r['wall_s']:7.0f} "
              f"{r['train_s']:8.0f} {r['best_epoch_on_val']:7d} {sc['precision']:6.3f} {sc['recall']:6.3f} {sc['map50']:6.3f} {sc['map']:6.3f} "
              f"{sc['fitness']:8.4f} {own:>14}")
    by_side = {side: [r for r in ledger.runs if r["side"] == side] for side in SIDES}
    print(f"\n{'mean ± SE':<9} {'n':>2} {'test fitness':>16} {'mAP50':>14} {'mAP50-95':>14} {'wall s':>10} {'load1':>11}")
    for side, rows in by_side.items():
        if not rows:
            continue
        loads = [r["load1_at_start"] for r in rows]
        print(f"{side:<9} {len(rows):>2} {_mean_se_text([r['scores']['fitness'] for r in rows], 4):>16} "
              f"{_mean_se_text([r['scores']['map50'] for r in rows], 3):>14} "
              f"{_mean_se_text([r['scores']['map'] for r in rows], 3):>14} "
              f"{_mean_se_text([r['wall_s'] for r in rows], 0):>10} {min(loads):5.2f}–{max(loads):.2f}")
    own = [r["scores_yolov5_val"]["fitness"] for r in by_side["yolov5"] if "scores_yolov5_val" in r]
    if own:
        hits = sum(r["train_nms_time_limit_hits"] for r in by_side["yolov5"])
        print(f"YOLOv5's model by YOLOv5's val.py: test fitness {_mean_se_text(own, 4)}; YOLOv5's NMS gave up "
              f"on {hits} val batches during its trainings (time limit; last.pt does not depend on them)")
    ours_fit = [r["scores"]["fitness"] for r in by_side["ours"]]
    ref_fit = [r["scores"]["fitness"] for r in by_side["yolov5"]]
    if len(ours_fit) > 1 and len(ref_fit) > 1:
        (a, a_se), (b, b_se) = mean_se(ours_fit), mean_se(ref_fit)
        se = math.hypot(a_se, b_se)
        wall_ratio = mean_se([r["wall_s"] for r in by_side["ours"]])[0] / mean_se([r["wall_s"] for r in by_side["yolov5"]])[0]
        print(f"ours − YOLOv5: {a - b:+.4f} test fitness = {(a - b) / se:+.1f} SE (SE of the difference {se:.4f}); "
              f"wall time ours / YOLOv5 {wall_ratio:.2f}")
    if ledger.from_scratch:
        f = ledger.from_scratch
        per = ", ".join(f"{t:.0f}/{v:.0f}" for t, v in zip(f["train_s"], f["val_s"]))
        last_train, last_val = f["train_s"][-1], f["val_s"][-1]
        print(f"\nYOLOv5 from scratch, {f['case']} (load average {f['load1_at_start']:.2f}): train/val s per epoch {per}; "
              f"last epoch {f['images'] / last_train:.1f} train img/s, {f['images'] / last_val:.1f} val img/s; "
              f"process {f['wall_s']:.0f} s. Ours: `.venv/bin/python -m benchmarks.speed --only yolov5n@320 --epochs 3 --workers 2`")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and score both, then print the table")
    run.add_argument("--yolov5-python", type=Path, required=True, help="python of the venv holding yolov5 7.0.14")
    run.add_argument("--seeds", type=int, nargs="+", default=list(Settings.seeds))
    run.add_argument("--epochs", type=int, default=Settings.epochs)
    run.add_argument("--only", choices=("fine-tune", "from-scratch"), help="one of the two experiments")
    run.add_argument("--resume", action="store_true", help="keep the ledger's runs (same settings) and add the missing ones")
    run.add_argument("--keep", type=Path, help="keep the runs (weights, logs) in this folder instead of a temporary one")
    sub.add_parser("report", help="print the table from the ledger")
    for p in (run, sub.choices["report"]):
        p.add_argument("--ledger", type=Path, default=LEDGER)
    args = parser.parse_args(argv)
    if args.command == "report":
        report(Ledger.load(args.ledger))
        return
    if not args.yolov5_python.exists():
        parser.error(f"--yolov5-python {args.yolov5_python} does not exist (benchmarks/reference_yolov5.sh builds it)")
    settings = Settings(seeds=tuple(args.seeds), epochs=args.epochs)
    ledger = Ledger.load(args.ledger) if args.resume else Ledger(settings.to_dict(), machine_facts(args.yolov5_python))
    if ledger.settings != {**settings.to_dict(), "seeds": ledger.settings["seeds"]}:
        raise SystemExit(f"{args.ledger} holds runs of other settings: {ledger.settings}; run without --resume")
    ledger.settings["seeds"] = sorted(set(ledger.settings["seeds"]) | set(settings.seeds))
    if args.only != "from-scratch":
        run_fine_tunes(settings, args.yolov5_python, ledger, args.ledger, args.keep)
    if args.only != "fine-tune" and not (args.resume and ledger.from_scratch):
        run_from_scratch(args.yolov5_python, ledger, args.ledger)
    report(ledger)


if __name__ == "__main__":
    main()
