"""Running our trainer and YOLOv5's (the reference) as the commands a user runs, and reading
their figures from what they print.

Each training is one subprocess, timed from outside (imports, dataset scan, every epoch's
validation and, for YOLOv5, its final validation of best.pt), so the wall times compare like with
like. Scores on a split come from either evaluator: ours (`evolver val`, which reads YOLOv5 .pt
files too) or YOLOv5's `val.py` (its own checkpoints only). YOLOv5 runs from its throwaway venv
(`benchmarks/reference_yolov5.sh` builds it); nothing of it is imported here.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVOLVER = Path(sys.executable).parent / "evolver"
FITNESS_MAP50, FITNESS_MAP = 0.1, 0.9  # fitness = 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95, both implementations

# YOLOv5's .pt files are pickles of its classes: torch >= 2.6 loads them only with weights_only=False,
# which YOLOv5 7.0.14 predates. Only YOLOv5's own files (the release weights, its runs) are loaded.
YOLOV5_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "YOLOv5_AUTOINSTALL": "False"}


@dataclass(frozen=True)
class FineTune:
    """What both trainers are asked to do, flag for flag."""

    weights: Path
    data_yaml: Path
    epochs: int
    img_size: int
    batch_size: int
    workers: int


@dataclass(frozen=True)
class Training:
    wall_s: float  # the whole process, from outside
    train_s: float  # the trainer's own count of its epochs (YOLOv5 prints it in 0.001 h steps)
    weights: Path  # last.pt: the final EMA weights (best.pt depends on val, which YOLOv5 truncates under load)
    best_epoch: int  # 1-based, by val fitness, as the trainer saw it
    nms_time_limit_hits: int  # YOLOv5's NMS gives up on a batch past 0.5 + 0.05 * batch seconds


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    map50: float
    map: float
    images: int
    nms_time_limit_hits: int = 0

    @property
    def fitness(self) -> float:
        return FITNESS_MAP50 * self.map50 + FITNESS_MAP * self.map

    def to_dict(self) -> dict:
        return {**asdict(self), "fitness": self.fitness}


def _run(command: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[str, float]:
    """Run `command`, its stdout and stderr into `log`; (their text with progress bars split into
    lines, wall seconds). A failure raises with the log's tail, which names the cause."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                               cwd=cwd)
    wall = time.perf_counter() - started
    text = log.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    if code != 0:
        tail = "\n".join(text.strip().splitlines()[-15:])
        raise RuntimeError(f"{command[0]} exited with {code} (log {log}):\n{tail}")
    return text, wall


def _match(pattern: str, text: str, what: str, log: Path) -> re.Match:
    found = list(re.finditer(pattern, text, re.MULTILINE))
    if not found:
        raise RuntimeError(f"{log}: no {what} in the output (pattern {pattern!r})")
    return found[-1]


def train_ours(job: FineTune, seed: int, project: Path) -> Training:
    name = f"ours-seed{seed}"
    log = project / f"{name}.log"
    text, wall = _run([
        str(EVOLVER), "train", "--data", str(job.data_yaml), "--weights", str(job.weights), "--epochs", str(job.epochs),
        "--img", str(job.img_size), "--batch", str(job.batch_size), "--workers", str(job.workers), "--seed", str(seed),
        "--device", "cpu", "--project", str(project), "--name", name, "--quiet",
    ], log, cwd=ROOT)
    epochs = _match(r"^(\d+) epochs in ([\d.]+)s.*at epoch (\d+)\)", text, "epoch summary", log)
    best = Path(_match(r"^weights: (.+)$", text, "weights path", log).group(1).strip())
    return Training(wall_s=wall, train_s=float(epochs.group(2)), weights=best.with_name("last.pt"),
                    best_epoch=int(epochs.group(3)), nms_time_limit_hits=0)


def _yolov5_script(python: Path, name: str) -> Path:
    """train.py / val.py of the `yolov5` package installed beside `python`."""
    found = subprocess.run([str(python), "-c", "import yolov5, os; print(os.path.dirname(yolov5.__file__))"],
                           capture_output=True, text=True, env={**os.environ, **YOLOV5_ENV})
    if found.returncode != 0:
        raise RuntimeError(f"{python} cannot import yolov5 (build its venv with benchmarks/reference_yolov5.sh):\n"
                           f"{found.stderr.strip()[-1500:]}")
    return Path(found.stdout.strip().splitlines()[-1]) / name


def _nms_hits(text: str) -> int:
    return text.count("NMS time limit")


def train_yolov5(python: Path, job: FineTune, seed: int, project: Path) -> Training:
    name = f"yolov5-seed{seed}"
    log = project / f"{name}.log"
    text, wall = _run([
        str(python), str(_yolov5_script(python, "train.py")), "--data", str(job.data_yaml), "--weights", str(job.weights),
        "--epochs", str(job.epochs), "--img", str(job.img_size), "--batch-size", str(job.batch_size),
        "--workers", str(job.workers), "--seed", str(seed), "--device", "cpu", "--noplots",
        "--project", str(project), "--name", name, "--exist-ok",
    ], log, env=YOLOV5_ENV, cwd=project)
    hours = _match(r"(\d+) epochs completed in ([\d.]+) hours", text, "epoch summary", log)
    return Training(wall_s=wall, train_s=float(hours.group(2)) * 3600, weights=project / name / "weights" / "last.pt",
                    best_epoch=_best_yolov5_epoch(project / name / "results.csv"), nms_time_limit_hits=_nms_hits(text))


def _best_yolov5_epoch(results_csv: Path) -> int:
    """The 1-based epoch of YOLOv5's best.pt: the highest val fitness in its results.csv."""
    with open(results_csv, encoding="utf-8") as f:
        rows = [{key.strip(): value for key, value in row.items()} for row in csv.DictReader(f)]
    fitness = [FITNESS_MAP50 * float(r["metrics/mAP_0.5"]) + FITNESS_MAP * float(r["metrics/mAP_0.5:0.95"]) for r in rows]
    return max(range(len(fitness)), key=fitness.__getitem__) + 1


def score_with_ours(weights: Path, data_yaml: Path, split: str, img_size: int, log: Path) -> Scores:
    """`evolver val` on `split`: conf 0.001, NMS IoU 0.6, rectangular batches of 32, as training's val."""
    text, _ = _run([
        str(EVOLVER), "val", "--weights", str(weights), "--data", str(data_yaml), "--split", split,
        "--img", str(img_size), "--batch", "32", "--device", "cpu",
    ], log, cwd=ROOT)
    images = _match(rf"^{split}: (\d+) image", text, "image count", log)
    line = _match(r"^P ([\d.]+)\s+R ([\d.]+)\s+mAP@0\.5 ([\d.]+)\s+mAP@0\.5:0\.95 ([\d.]+)", text, "metrics line", log)
    return Scores(*(float(line.group(i)) for i in range(1, 5)), images=int(images.group(1)))


# The `yolov5` pip package pickles its classes as `yolov5.models.yolo.DetectionModel`, where YOLOv5's
# repository (and its release weights) say `models.yolo.DetectionModel`; `evolver val` reads the
# latter only. This re-saves a checkpoint, in YOLOv5's own venv, under the repository's names.
_REPOSITORY_NAMES = """
import sys, torch, yolov5.models.yolo
checkpoint = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
for name in [n for n in sys.modules if n == "yolov5.models" or n.startswith("yolov5.models.")]:
    short = name[len("yolov5."):]
    sys.modules[short] = sys.modules[name]
    for value in vars(sys.modules[name]).values():
        if isinstance(value, type) and value.__module__ == name:
            value.__module__ = short
torch.save(checkpoint, sys.argv[2])
"""


def with_repository_names(python: Path, weights: Path) -> Path:
    """A copy of a checkpoint of the `yolov5` package whose classes carry the names of YOLOv5's
    repository (`models.yolo.DetectionModel`), beside it; the tensors are the same."""
    renamed = weights.with_name(f"{weights.stem}-repository-names.pt")
    _run([str(python), "-W", "ignore", "-c", _REPOSITORY_NAMES, str(weights), str(renamed)],
         weights.with_name(f"{weights.stem}-rename.log"), env=YOLOV5_ENV, cwd=weights.parent)
    return renamed


def score_with_yolov5(python: Path, weights: Path, data_yaml: Path, split: str, img_size: int, out: Path) -> Scores:
    """YOLOv5's `val.py --task split` with its defaults (conf 0.001, NMS IoU 0.6, batch 32, rect);
    its files go to the folder `out`, its log beside it."""
    log = out.with_name(f"{out.name}.log")
    text, _ = _run([
        str(python), str(_yolov5_script(python, "val.py")), "--weights", str(weights), "--data", str(data_yaml),
        "--task", split, "--img", str(img_size), "--batch-size", "32", "--device", "cpu",
        "--project", str(out.parent), "--name", out.name, "--exist-ok",
    ], log, env=YOLOV5_ENV, cwd=out.parent)
    row = _match(r"^\s*all\s+(\d+)\s+\d+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", text, "'all' row", log)
    return Scores(*(float(row.group(i)) for i in range(2, 6)), images=int(row.group(1)),
                  nms_time_limit_hits=_nms_hits(text))


@dataclass(frozen=True)
class EpochTimes:
    """YOLOv5's per-epoch train and val seconds, read from its finished progress bars."""

    train_s: list[float]
    val_s: list[float]
    wall_s: float


def _bar_seconds(line: str) -> float:
    elapsed = re.search(r"100%\|[^|]*\|\s*\d+/\d+ \[(?:(\d+):)?(\d+):(\d+)<", line)
    hours, minutes, seconds = (int(g or 0) for g in elapsed.groups())
    return hours * 3600 + minutes * 60 + seconds


def _finished_bars(text: str) -> list[str]:
    """The last line of every progress bar that reached 100 % (tqdm draws a finished bar twice,
    the second time with the final rate: one bar, one line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    finished = []
    for previous, line in zip([""] + lines, lines):
        if "100%|" not in line:
            continue
        if "100%|" in previous and previous.split("100%|")[0] == line.split("100%|")[0]:
            finished[-1] = line
        else:
            finished.append(line)
    return finished


def train_yolov5_from_scratch(python: Path, data_yaml: Path, cfg: str, img_size: int, batch_size: int, epochs: int,
                              workers: int, project: Path) -> EpochTimes:
    """YOLOv5's `train.py --weights '' --cfg cfg`: the speed case of `benchmarks.speed`."""
    models = _yolov5_script(python, "models")
    log = project / "coco128-scratch.log"
    text, wall = _run([
        str(python), str(_yolov5_script(python, "train.py")), "--data", str(data_yaml), "--cfg", str(models / f"{cfg}.yaml"),
        "--weights", "", "--img", str(img_size), "--batch-size", str(batch_size), "--epochs", str(epochs),
        "--workers", str(workers), "--device", "cpu", "--noplots", "--project", str(project), "--name", "coco128",
        "--exist-ok",
    ], log, env=YOLOV5_ENV, cwd=project)
    finished = _finished_bars(text)
    train = [_bar_seconds(line) for line in finished if re.match(rf"\s*\d+/{epochs - 1}\s", line)]
    val = [_bar_seconds(line) for line in finished if "mAP50" in line]
    return EpochTimes(train_s=train, val_s=val[:len(train)], wall_s=wall)  # the last val is best.pt's final one
