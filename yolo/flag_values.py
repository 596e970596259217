"""Command-line values checked before any work starts. The argparse types refuse an impossible
number (`--batch 0`, `--conf 2`) while the command line is parsed, in argparse's one line naming the
flag; `existing_file` refuses a path that is not a file, naming the flag and what it takes.
Nothing here imports torch."""

from __future__ import annotations

import argparse
from pathlib import Path

WEIGHTS_FILE = "a local checkpoint file (an evolver .pt or a YOLOv5 .pt such as yolov5s.pt; nothing is downloaded)"


def existing_file(path: str, flag: str, accepted: str) -> str:
    """`path`, if it is a file; otherwise a one-line ValueError naming `flag`, the path and what
    the flag takes (`accepted`)."""
    target = Path(path)
    if target.is_file():
        return path
    problem = "is a folder" if target.is_dir() else "does not exist"
    raise ValueError(f"{flag} {path} {problem}; it takes {accepted}".lstrip())


def _number(text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None


def positive_int(text: str) -> int:
    """1, 2, 3 ... (a batch, a number of epochs, an image size)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (1 or more), got {value}")
    return value


def non_negative_int(text: str) -> int:
    """0, 1, 2 ... (loader worker processes: 0 = load in the main process)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def unit_fraction(text: str) -> float:
    """A threshold in [0, 1] (confidence, IoU)."""
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value:g}")
    return value


def open_fraction(text: str) -> float:
    """A share strictly between 0 and 1 (pruning 0 changes nothing, pruning 1 zeroes everything)."""
    value = _number(text, float)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value:g}")
    return value
