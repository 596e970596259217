"""YOLOv5 master's `evolve_population.yaml`: a population of hyperparameters to train.

YOLOv5 writes it at every generation from the second on (`--resume_evolve` restarts from it): a
mapping `gen{g}number{i}: {hyp: value, ...}` holding the evolved genes of each individual. Any
mapping of names to hyp mappings reads the same way, so a population can also be written by hand
(say, one entry per hyp file, as YOLOv5 seeds from `data/hyps/*.yaml`). Individuals keep the
file's order; keys they lack take the campaign's base.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from yolo.hyp import Hyperparameters
from yolo.yaml_errors import yaml_error_line


def read_population(path: str | Path) -> list[dict[str, float]]:
    """The individuals, in file order; ValueError naming the file and the entry at fault."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: " + ("is a folder, not a population yaml" if path.is_dir() else "no such file"))
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(yaml_error_line(path, err)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot be read: {err}") from None
    if not isinstance(document, dict) or not document:
        raise ValueError(f"{path}: a population yaml maps names to hyperparameters "
                         "(gen1number0: {hsv_h: 0.015, ...}), got " + (type(document).__name__ if document else "nothing"))
    known = set(Hyperparameters.keys())
    individuals = []
    for name, hyp in document.items():
        if not isinstance(hyp, dict) or not hyp:
            raise ValueError(f"{path}: {name}: expected a mapping of hyperparameters, got {hyp!r}")
        unknown = sorted(str(key) for key in hyp if key not in known)
        if unknown:
            raise ValueError(f"{path}: {name}: unknown hyperparameter(s) {', '.join(unknown)}")
        for key, value in hyp.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{path}: {name}: {key} must be a finite number, got {value!r}")
        individuals.append({key: float(value) for key, value in hyp.items()})
    return individuals
