"""The export formats and their spelling on the command line, apart from the exporters (which
import torch), so that `evolver export` refuses an unknown format at once."""

from __future__ import annotations

from typing import Sequence

FORMATS = ("onnx", "engine", "wts")
SUFFIXES = {"onnx": ".onnx", "engine": ".engine", "wts": ".wts"}


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """'onnx,engine' or ['onnx', 'wts'] -> validated, de-duplicated, in FORMATS order."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown or not wanted:
        raise ValueError(f"unknown export format(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in wanted)
