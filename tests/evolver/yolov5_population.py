"""The evolve_population.yaml that the `start_population` campaign tests start from.

YOLOv5 master's own file (written by its `train.py --evolve`, kept at YOLOV5_POPULATION) when that
fixture is in the repository; else one written here in the same format: YOLOv5 master dumps
`{f"gen{g}number{i}": {hyp: float(value) for every hyperparameter it evolves}}` with
`yaml.dump(..., default_flow_style=False)`, so every individual names every gene, keys sorted.
The written individuals move every gene off YOLOv5's defaults, inside Evolver's limits, so a test
can tell a value taken from the file from one kept from the base.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import yaml

from evolver.space import SearchSpace

REPO = Path(__file__).resolve().parents[2]
YOLOV5_POPULATION = REPO / "tests" / "fixtures" / "yolov5_evolve" / "evolve_population.yaml"
WRITTEN_INDIVIDUALS = 3


def evolve_population_file(folder: Path) -> tuple[Path, bool]:
    """(the population yaml, copied into `folder`; whether it is YOLOv5 master's own file)."""
    target = folder / "evolve_population.yaml"
    if YOLOV5_POPULATION.is_file():
        shutil.copy(YOLOV5_POPULATION, target)
        return target, True
    space = SearchSpace.default()
    individuals = {}
    for i, fraction in enumerate(np.linspace(0.2, 0.7, WRITTEN_INDIVIDUALS)):
        values = space.lowers + fraction * (space.uppers - space.lowers)
        individuals[f"gen1number{i}"] = {name: float(value) for name, value in zip(space.names, values)}
    target.write_text(yaml.dump(individuals, default_flow_style=False))
    return target, False


def read_individuals(path: Path) -> list[dict[str, float]]:
    """The file's individuals in its order, as plain YAML reads them."""
    return list(yaml.safe_load(path.read_text()).values())
