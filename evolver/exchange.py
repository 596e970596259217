"""Files users exchange with YOLOv5: `evolve.csv` and `hyp_evolved.yaml` (formats in DESIGN.md).

`evolve.csv` is written exactly as YOLOv5's `print_mutation` writes it: a header of column names,
each right-aligned in 20 characters (`%20s`), then one line per trial with each value as `%20.5g`;
fields separated by commas with no trailing comma, lines ended by "\\n". The seven validation
metrics come first under YOLOv5's column names, then one column per hyperparameter: in DESIGN.md
table order in the files Evolver writes, in the order of the hyp file it ran with in YOLOv5's
(older files lack keys, `anchors` may sit last). `%.5g` keeps 5 significant digits, so the file
holds every metric and hyperparameter rounded to 5 significant digits, as YOLOv5's files do (SQL
keeps the exact values).

Reading goes through pandas and by column name: padding is skipped and names are stripped, as
YOLOv5's own reader does (`pd.read_csv(evolve_csv, skipinitialspace=True)`). An `EvolveTable`
keeps the file's column order, so a file YOLOv5 or Evolver wrote is written back byte for byte.
Every mistake in a file is reported with the file, the line and, where one is at fault, the column.

Both files are rewritten after every finished trial while users may be reading them, so they are
replaced atomically: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from yolo.hyp import Hyperparameters

EVOLVE_CSV_METRICS = ("metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",
                      "val/box_loss", "val/obj_loss", "val/cls_loss")
# Our metric keys, column for column with EVOLVE_CSV_METRICS.
METRIC_KEYS = ("precision", "recall", "map50", "map", "val_box_loss", "val_obj_loss", "val_cls_loss")

NAME_FORMAT = "%20s"  # YOLOv5's print_mutation: every field 20 characters wide
VALUE_FORMAT = "%20.5g"
NAN_SPELLINGS = frozenset({"nan", "+nan", "-nan"})  # what Python's float() reads as NaN, lower-cased

TrialRow = tuple[Mapping[str, float], Mapping[str, float]]  # (metrics under METRIC_KEYS, hyp)


@dataclass(frozen=True, eq=False)
class EvolveTable:
    """An evolve.csv as a table: one float64 row per trial, the columns named as in the file
    (stripped) and in the file's order, which `to_csv` writes back as they came."""

    frame: pd.DataFrame

    def __post_init__(self) -> None:
        problem = _column_problem([str(name) for name in self.frame.columns])
        if problem is not None:
            column_number, message = problem
            raise ValueError(f"evolve.csv table: {f'column {column_number}: ' if column_number else ''}{message}")
        object.__setattr__(self, "frame", self.frame.astype("float64").reset_index(drop=True))

    @classmethod
    def from_trials(cls, trials: Sequence[TrialRow]) -> EvolveTable:
        """Evolver's own layout: the 7 metrics, then all 29 hyps in table order; every trial must
        carry all of them."""
        hyp_keys = Hyperparameters.keys()
        values = []
        for index, (metrics, hyp) in enumerate(trials):
            missing = [key for key in METRIC_KEYS if key not in metrics]
            missing += [key for key in hyp_keys if key not in hyp]
            if missing:
                raise ValueError(f"evolve.csv row {index} lacks {', '.join(missing)}")
            unknown = sorted(set(hyp) - set(hyp_keys))
            if unknown:
                raise ValueError(f"evolve.csv row {index} has unknown hyperparameter(s) {', '.join(unknown)}")
            values.append([float(metrics[key]) for key in METRIC_KEYS] + [float(hyp[key]) for key in hyp_keys])
        return cls(pd.DataFrame(values, columns=[*EVOLVE_CSV_METRICS, *hyp_keys], dtype="float64"))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.frame.columns)

    def trials(self) -> list[tuple[dict[str, float], dict[str, float]]]:
        """(metrics, hyp) per row, in file order; hyp dicts hold only the columns the file has."""
        metrics = self.frame[list(EVOLVE_CSV_METRICS)].set_axis(list(METRIC_KEYS), axis=1)
        hyps = self.frame[[name for name in self.columns if name not in EVOLVE_CSV_METRICS]]
        return list(zip(metrics.to_dict("records"), hyps.to_dict("records")))

    def to_csv(self, *, header: bool = True) -> str:
        """The table in YOLOv5's exact format (the header line only if `header`)."""
        return self.frame.to_csv(index=False, header=[NAME_FORMAT % name for name in self.columns] if header else False,
                                 float_format=VALUE_FORMAT, na_rep=NAME_FORMAT % "nan", lineterminator="\n",
                                 quoting=csv.QUOTE_NONE)


def write_evolve_table(path: str | os.PathLike, table: EvolveTable) -> None:
    _write_atomically(Path(path), table.to_csv())


def write_evolve_csv(path: str | os.PathLike, trials: Sequence[TrialRow]) -> None:
    """One line per (metrics, hyp) trial, in Evolver's layout."""
    write_evolve_table(path, EvolveTable.from_trials(trials))


def append_evolve_csv(path: str | os.PathLike, metrics: Mapping[str, float], hyp: Mapping[str, float]) -> None:
    """Add one row in Evolver's layout (writing the header first if the file is new) to a file in
    that layout: O(1) per finished trial, where rewriting would cost O(trials). One short append is
    seen whole or not at all by readers."""
    path = Path(path)
    table = EvolveTable.from_trials([(metrics, hyp)])
    if not path.exists():
        write_evolve_table(path, table)
        return
    with open(path, "a", encoding="utf-8", newline="\n") as f:
        f.write(table.to_csv(header=False))


def read_evolve_csv(path: str | os.PathLike) -> list[tuple[dict[str, float], dict[str, float]]]:
    """(metrics, hyp) per row, in file order. Hyp dicts hold only the columns the file has."""
    return read_evolve_table(path).trials()


class _FieldCount(int):
    """Stands in a line's first cell when the line has more fields than the header."""


def read_evolve_table(path: str | os.PathLike) -> EvolveTable:
    """The file's table, columns in its order; a file that is not an evolve.csv, or a line or
    field that cannot be one, is refused with the file, line and column at fault."""
    path = Path(path)
    cells = _cells(path, _text(path))  # one row per line of the file, header included
    if cells.empty or _blank(cells).iloc[0]:
        raise ValueError(f"{path}: line 1: expected a header of column names, found an empty line")
    names = [str(name).strip() for name in cells.iloc[0]]
    problem = _column_problem(names)
    if problem is not None:
        column_number, message = problem
        raise ValueError(f"{path}: line 1{f', column {column_number}' if column_number else ''}: {message}")
    body = cells.iloc[1:][~_blank(cells).iloc[1:]]
    found = body.notna().sum(axis=1).where(~body[0].map(lambda cell: isinstance(cell, _FieldCount)), body[0])
    wrong = found[found != len(names)]
    if not wrong.empty:
        raise ValueError(f"{path}: line {wrong.index[0] + 1}: expected {len(names)} columns, found {wrong.iloc[0]}")
    text = body.apply(lambda column: column.str.strip()).set_axis(names, axis=1)
    numbers = text.apply(lambda column: pd.to_numeric(column, errors="coerce")).astype("float64")

    def where(cell: tuple[int, int]) -> str:
        row, column = cell
        return f"{path}: line {text.index[row] + 1}, column {column + 1} ({names[column]})"

    not_number = _first_cell(numbers.isna() & ~text.apply(lambda column: column.str.lower().isin(NAN_SPELLINGS)))
    if not_number is not None:
        cell = text.iat[not_number]
        raise ValueError(f"{where(not_number)}: " + (f"{cell!r} is not a number" if cell else "empty, expected a number"))
    hyp_columns = [name not in EVOLVE_CSV_METRICS for name in names]
    not_finite = _first_cell(~np.isfinite(numbers) & hyp_columns)
    if not_finite is not None:
        raise ValueError(f"{where(not_finite)}: a hyperparameter must be finite, got {text.iat[not_finite]!r}")
    return EvolveTable(numbers)


def _first_cell(mask: pd.DataFrame) -> tuple[int, int] | None:
    """(row, column) positions of the first true cell, reading the table line by line, or None."""
    rows, columns = np.nonzero(mask.to_numpy())
    return (int(rows[0]), int(columns[0])) if len(rows) else None


def _text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: " + ("is a folder, not an evolve.csv" if path.is_dir() else "no such file"))
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file (an evolve.csv is UTF-8 text): {err.reason} at byte {err.start}") \
            from None


def _cells(path: Path, text: str) -> pd.DataFrame:
    """Every field as text, row i holding line i + 1 (blank lines kept, no quoting, so lines and
    rows correspond); a missing field is None, a line with too many fields holds their count."""
    try:
        return pd.read_csv(io.StringIO(text), header=None, dtype=object, keep_default_na=False,
                           skipinitialspace=True, skip_blank_lines=False, quoting=csv.QUOTE_NONE, engine="python",
                           on_bad_lines=lambda fields: [_FieldCount(len(fields))])
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: not a CSV file: {err}") from None


def _blank(cells: pd.DataFrame) -> pd.Series:
    """Lines holding nothing but spaces."""
    return cells.iloc[:, 1:].isna().all(axis=1) & cells[0].map(lambda cell: cell is None or cell == "")


def _column_problem(names: list[str]) -> tuple[int | None, str] | None:
    """What is wrong with a header of column names (the column number, 1-based, where one is at
    fault), or None."""
    hyp_keys = Hyperparameters.keys()
    for column_number, name in enumerate(names, start=1):
        if not name:
            return column_number, "empty column name"
        if names.index(name) != column_number - 1:
            return column_number, f"column {name!r} appears twice"
        if name not in EVOLVE_CSV_METRICS and name not in hyp_keys:
            return column_number, f"unknown column {name!r}"
    missing = [name for name in EVOLVE_CSV_METRICS if name not in names]
    if missing:
        return None, f"missing metric column(s) {', '.join(missing)}"
    return None


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
