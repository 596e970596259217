"""Files users exchange with YOLOv5: `evolve.csv` and `hyp_evolved.yaml` (formats in DESIGN.md).

`evolve.csv` has the seven validation metrics under YOLOv5's column names, then one column per
hyperparameter. YOLOv5 pads every field to 20 characters and its hyp columns follow whatever hyp
file it ran with (older files lack keys, `anchors` may sit last), so reading goes by column
name and tolerates padding; our own file is written unpadded, in DESIGN.md table order.

Both files are rewritten after every finished trial while users may be reading them, so they are
replaced atomically: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from yolo.hyp import Hyperparameters

EVOLVE_CSV_METRICS = ("metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",
                      "val/box_loss", "val/obj_loss", "val/cls_loss")
# Our metric keys, column for column with EVOLVE_CSV_METRICS.
METRIC_KEYS = ("precision", "recall", "map50", "map", "val_box_loss", "val_obj_loss", "val_cls_loss")


def write_evolve_csv(path: str | os.PathLike, rows: Sequence[tuple[Mapping[str, float], Mapping[str, float]]]) -> None:
    """One line per (metrics, hyp) row; every row must carry all 7 metrics and all 29 hyps."""
    lines = [_header()] + [_row(index, metrics, hyp) for index, (metrics, hyp) in enumerate(rows)]
    _write_atomically(Path(path), "\n".join(lines) + "\n")


def append_evolve_csv(path: str | os.PathLike, metrics: Mapping[str, float], hyp: Mapping[str, float]) -> None:
    """Add one row (writing the header first if the file is new): O(1) per finished trial, where
    rewriting would cost O(trials). One short append is seen whole or not at all by readers."""
    path = Path(path)
    line = _row(0, metrics, hyp) + "\n"
    if not path.exists():
        _write_atomically(path, _header() + "\n" + line)
        return
    with open(path, "a", encoding="utf-8", newline="\n") as f:
        f.write(line)


def _header() -> str:
    return ",".join((*EVOLVE_CSV_METRICS, *Hyperparameters.keys()))


def _row(index: int, metrics: Mapping[str, float], hyp: Mapping[str, float]) -> str:
    hyp_keys = Hyperparameters.keys()
    missing = [key for key in METRIC_KEYS if key not in metrics]
    missing += [key for key in hyp_keys if key not in hyp]
    if missing:
        raise ValueError(f"evolve.csv row {index} lacks {', '.join(missing)}")
    unknown = sorted(set(hyp) - set(hyp_keys))
    if unknown:
        raise ValueError(f"evolve.csv row {index} has unknown hyperparameter(s) {', '.join(unknown)}")
    values = [float(metrics[key]) for key in METRIC_KEYS] + [float(hyp[key]) for key in hyp_keys]
    # repr() is the shortest text that reads back as the same float: the round trip is exact.
    return ",".join(repr(value) for value in values)


def read_evolve_csv(path: str | os.PathLike) -> list[tuple[dict[str, float], dict[str, float]]]:
    """(metrics, hyp) per row, in file order. Hyp dicts hold only the columns the file has."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: " + ("is a folder, not an evolve.csv" if path.is_dir() else "no such file"))
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file (an evolve.csv is UTF-8 text): {err.reason} at byte {err.start}") \
            from None
    if not lines or not lines[0].strip():
        raise ValueError(f"{path}: line 1: expected a header of column names, found an empty line")
    columns = [name.strip() for name in lines[0].split(",")]
    _check_header(path, columns)
    metric_key_of = dict(zip(EVOLVE_CSV_METRICS, METRIC_KEYS))
    rows: list[tuple[dict[str, float], dict[str, float]]] = []
    for line_number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != len(columns):
            raise ValueError(f"{path}: line {line_number}: expected {len(columns)} columns, found {len(fields)}")
        metrics: dict[str, float] = {}
        hyp: dict[str, float] = {}
        for column_number, (name, text) in enumerate(zip(columns, fields), start=1):
            value = _parse_number(text)
            where = f"{path}: line {line_number}, column {column_number} ({name})"
            if value is None:
                raise ValueError(f"{where}: {text.strip()!r} is not a number")
            if name in metric_key_of:
                metrics[metric_key_of[name]] = value
            elif not math.isfinite(value):
                raise ValueError(f"{where}: a hyperparameter must be finite, got {text.strip()!r}")
            else:
                hyp[name] = value
        rows.append((metrics, hyp))
    return rows


def write_hyp_evolved(path: str | os.PathLike, hyp: Mapping[str, float], *, campaign: str,
                      summary: Sequence[str]) -> None:
    """Hyperparameters as a YOLOv5 hyp file (`train.py --hyp` loads it), with a comment header:
    the campaign, then `summary` (one comment line each: where the values came from, how they
    scored)."""
    values = Hyperparameters.from_dict(hyp).to_dict()  # all 29 keys, table order, plain floats
    campaign_text = " ".join(str(campaign).split())  # a newline in a name must not end the comment
    header = [f"# Evolver hyperparameter evolution, campaign {campaign_text!r}"]
    header += ["# " + " ".join(str(line).split()) for line in summary]
    header.append("# Load with YOLOv5: python train.py --hyp hyp_evolved.yaml")
    body = yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
    _write_atomically(Path(path), "\n".join(header) + "\n\n" + body)


def metrics_text(metrics: Mapping[str, float]) -> str:
    """A trial's metrics under YOLOv5's evolve.csv column names, for comment headers."""
    return ", ".join(
        f"{column} {float(metrics[key]):.5g}" for column, key in zip(EVOLVE_CSV_METRICS, METRIC_KEYS) if key in metrics
    )


def _check_header(path: Path, columns: list[str]) -> None:
    hyp_keys = Hyperparameters.keys()
    for column_number, name in enumerate(columns, start=1):
        if not name:
            raise ValueError(f"{path}: line 1, column {column_number}: empty column name")
        if columns.index(name) != column_number - 1:
            raise ValueError(f"{path}: line 1, column {column_number}: column {name!r} appears twice")
        if name not in EVOLVE_CSV_METRICS and name not in hyp_keys:
            raise ValueError(f"{path}: line 1, column {column_number}: unknown column {name!r}")
    missing = [name for name in EVOLVE_CSV_METRICS if name not in columns]
    if missing:
        raise ValueError(f"{path}: line 1: missing metric column(s) {', '.join(missing)}")


def _parse_number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _write_atomically(path: Path, text: str) -> None:
    """Write beside the target, flush to disk, then rename over it (atomic on POSIX and Windows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it owner-only; these files are for sharing
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
