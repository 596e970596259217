"""Fitness: the one number a trial is ranked by, weights · [P, R, mAP@0.5, mAP@0.5:0.95].

YOLOv5 fixes the weights at [0, 0, 0.1, 0.9]; a campaign may choose its own (say, recall-heavy
for a safety detector), so they are an argument. One definition for everyone who scores: the
validator, the worker that reports each epoch (pruning ranks by it), the coordinator and the
`evolve.csv` importer. It takes plain metric dicts and imports nothing heavy, so the
coordinator's side can use it without torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

DEFAULT_FITNESS_WEIGHTS: tuple[float, float, float, float] = (0.0, 0.0, 0.1, 0.9)
FITNESS_METRICS: tuple[str, str, str, str] = ("precision", "recall", "map50", "map")


def fitness(metrics: Mapping[str, float], weights: Sequence[float] = DEFAULT_FITNESS_WEIGHTS) -> float:
    """weights · [precision, recall, map50, map]; a missing metric is an error naming it."""
    if len(weights) != len(FITNESS_METRICS):
        raise ValueError(f"fitness weights need {len(FITNESS_METRICS)} values (P, R, mAP@0.5, mAP), got {len(weights)}")
    missing = [key for key in FITNESS_METRICS if key not in metrics]
    if missing:
        raise ValueError(f"fitness needs metric(s) {', '.join(missing)}")
    return math.fsum(float(w) * float(metrics[key]) for w, key in zip(weights, FITNESS_METRICS))
