"""The search space: which hyperparameters the GA may change, how strongly, and within what limits.

Each of the 29 YOLOv5 hyperparameters is a `Gene` with a gain (how strongly mutation moves it;
0 keeps it fixed) and hard limits. The defaults are DESIGN.md's table, which mirrors YOLOv5's
evolution metadata; a campaign overrides single fields (`{"lr0": {"upper": 0.05}}`) rather than
restating the table, so a typo in a name or field must be an error that names it instead of a
silently ignored setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

# (name, gain, lower, upper) in DESIGN.md table order, which is also `yolo.hyp.Hyperparameters` order.
_DEFAULT_TABLE: tuple[tuple[str, float, float, float], ...] = (
    ("lr0", 1.0, 1e-5, 0.1),
    ("lrf", 1.0, 0.01, 1.0),
    ("momentum", 0.3, 0.6, 0.98),
    ("weight_decay", 1.0, 0.0, 0.001),
    ("warmup_epochs", 1.0, 0.0, 5.0),
    ("warmup_momentum", 1.0, 0.0, 0.95),
    ("warmup_bias_lr", 1.0, 0.0, 0.2),
    ("box", 1.0, 0.02, 0.2),
    ("cls", 1.0, 0.2, 4.0),
    ("cls_pw", 1.0, 0.5, 2.0),
    ("obj", 1.0, 0.2, 4.0),
    ("obj_pw", 1.0, 0.5, 2.0),
    ("iou_t", 0.0, 0.1, 0.7),
    ("anchor_t", 1.0, 2.0, 8.0),
    ("anchors", 2.0, 2.0, 10.0),
    ("fl_gamma", 0.0, 0.0, 2.0),
    ("hsv_h", 1.0, 0.0, 0.1),
    ("hsv_s", 1.0, 0.0, 0.9),
    ("hsv_v", 1.0, 0.0, 0.9),
    ("degrees", 1.0, 0.0, 45.0),
    ("translate", 1.0, 0.0, 0.9),
    ("scale", 1.0, 0.0, 0.9),
    ("shear", 1.0, 0.0, 10.0),
    ("perspective", 0.0, 0.0, 0.001),
    ("flipud", 1.0, 0.0, 1.0),
    ("fliplr", 0.0, 0.0, 1.0),
    ("mosaic", 1.0, 0.0, 1.0),
    ("mixup", 1.0, 0.0, 1.0),
    ("copy_paste", 1.0, 0.0, 1.0),
)

_OVERRIDABLE_FIELDS = ("gain", "lower", "upper")
# The genes YOLOv5 master's population GA evolves by default (its metadata marks them True): the
# augmentation ones, hsv_h .. copy_paste, perspective and fliplr included.
AUGMENTATION_GENES = ("hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective", "flipud",
                      "fliplr", "mosaic", "mixup", "copy_paste")


@dataclass(frozen=True)
class Gene:
    """One hyperparameter as the GA sees it; validated on creation so a bad space never runs."""

    name: str
    gain: float
    lower: float
    upper: float

    def __post_init__(self) -> None:
        for field_name in _OVERRIDABLE_FIELDS:
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{self.name}: {field_name} must be a finite number, got {value!r}")
        if self.gain < 0:
            raise ValueError(f"{self.name}: gain must be >= 0, got {self.gain}")
        if self.lower > self.upper:
            raise ValueError(f"{self.name}: lower {self.lower} > upper {self.upper}")

    @property
    def free(self) -> bool:
        """Whether a search may change it (gain > 0 and room between its limits)."""
        return self.gain > 0 and self.upper > self.lower

    @property
    def log_scale(self) -> bool:
        """Searchers that sample within the limits (random, TPE, CMA-ES) sample this gene's
        logarithm when its range spans two decades or more (lr0: 1e-5..0.1, lrf: 0.01..1)."""
        return self.lower > 0 and self.upper / self.lower >= 100


@dataclass(frozen=True)
class SearchSpace:
    """An ordered tuple of genes; vectors passed to the GA follow this order."""

    genes: tuple[Gene, ...]

    def __post_init__(self) -> None:
        names = [gene.name for gene in self.genes]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"search space names a gene twice: {', '.join(duplicates)}")

    @classmethod
    def default(cls) -> SearchSpace:
        return cls(tuple(Gene(name, gain, lower, upper) for name, gain, lower, upper in _DEFAULT_TABLE))

    @classmethod
    def augmentation_only(cls) -> SearchSpace:
        """YOLOv5 master's population GA's default: the augmentation genes evolve (gain 1, the
        table's limits), learning rate, loss gains and the rest are fixed (gain 0). A campaign
        widens it with `search_space: {lr0: {gain: 1}}`."""
        return cls(tuple(Gene(name, 1.0 if name in AUGMENTATION_GENES else 0.0, lower, upper)
                         for name, _, lower, upper in _DEFAULT_TABLE))

    def with_overrides(self, overrides: Mapping[str, Mapping[str, float]]) -> SearchSpace:
        """A copy with some fields of some genes replaced; every mistake names the key at fault."""
        by_name = {gene.name: gene for gene in self.genes}
        for name, changes in overrides.items():
            if name not in by_name:
                raise ValueError(f"search space override names unknown hyperparameter {name!r}")
            # ValueError, not TypeError: campaign validation reports ValueErrors as bad input.
            if not isinstance(changes, Mapping):
                raise ValueError(  # noqa: TRY004
                    f"search space override for {name!r} must be a mapping of gain/lower/upper"
                )
            unknown = sorted(set(changes) - set(_OVERRIDABLE_FIELDS))
            if unknown:
                raise ValueError(
                    f"search space override for {name!r} has unknown field(s) {', '.join(map(repr, unknown))}"
                    f" (allowed: {', '.join(_OVERRIDABLE_FIELDS)})"
                )
            for field_name, value in changes.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{name}: {field_name} must be a number, got {value!r}")  # noqa: TRY004
            by_name[name] = replace(by_name[name], **{key: float(value) for key, value in changes.items()})
        return SearchSpace(tuple(by_name[gene.name] for gene in self.genes))

    # Computed once per (immutable) space: the GA reads them for every child it breeds. The
    # arrays are read-only, so no caller can change the space through them.
    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(gene.name for gene in self.genes)

    @cached_property
    def gains(self) -> np.ndarray:
        return _read_only([gene.gain for gene in self.genes])

    @cached_property
    def lowers(self) -> np.ndarray:
        return _read_only([gene.lower for gene in self.genes])

    @cached_property
    def uppers(self) -> np.ndarray:
        return _read_only([gene.upper for gene in self.genes])

    @cached_property
    def free(self) -> np.ndarray:
        """Per gene, whether a search may change it (`Gene.free`), in gene order."""
        mask = np.array([gene.free for gene in self.genes], dtype=bool)
        mask.flags.writeable = False
        return mask

    def require_free_gene(self) -> None:
        """A searcher that can only move free genes refuses a space without one."""
        if not self.free.any():
            raise ValueError("search space has no gene with gain > 0 and room between its limits")

    def vector(self, hyp: Mapping[str, float]) -> np.ndarray:
        """The values of `hyp` in gene order (KeyError naming a missing gene)."""
        missing = [name for name in self.names if name not in hyp]
        if missing:
            raise KeyError(f"hyperparameters lack gene(s): {', '.join(missing)}")
        return np.array([float(hyp[name]) for name in self.names], dtype=float)

    def vector_over(self, base: Mapping[str, float], hyp: Mapping[str, float], owner: str) -> np.ndarray:
        """`hyp` in gene order, keys it lacks taking `base`'s value (an imported YOLOv5 row may lack
        newer keys such as anchors); a key that is no gene is a ValueError naming `owner`."""
        unknown = sorted(set(hyp) - set(self.names))
        if unknown:
            raise ValueError(f"{owner}: unknown hyperparameter(s) {', '.join(unknown)}")
        return self.vector({**base, **hyp})

    def to_hyp(self, vector: np.ndarray) -> dict[str, float]:
        """Plain Python floats keyed by gene name: what travels to SQL, YAML and workers."""
        values = np.asarray(vector, dtype=float)
        if values.shape != (len(self.genes),):
            raise ValueError(f"expected a vector of {len(self.genes)} values, got shape {values.shape}")
        return dict(zip(self.names, values.tolist()))  # tolist: Python floats


def _read_only(values: list[float]) -> np.ndarray:
    array = np.array(values, dtype=float)
    array.flags.writeable = False
    return array
