"""Training hyperparameters as one immutable value.

The 29 keys are exactly those of YOLOv5's hyp yaml files (see DESIGN.md), so a YOLOv5
`hyp.scratch-low.yaml` loads unchanged. Keys missing from a file keep their defaults; keys we do
not know are an error that names them, because a typo silently ignored is a wasted campaign.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml


@dataclass(frozen=True)
class Hyperparameters:
    # optimiser and schedule
    lr0: float = 0.01  # initial learning rate
    lrf: float = 0.01  # final learning rate = lr0 * lrf
    momentum: float = 0.937  # SGD momentum (Nesterov)
    weight_decay: float = 0.0005  # applied to conv / linear weights only
    warmup_epochs: float = 3.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    # loss
    box: float = 0.05
    cls: float = 0.5
    cls_pw: float = 1.0
    obj: float = 1.0
    obj_pw: float = 1.0
    iou_t: float = 0.20  # unused by training (kept for YOLOv5 compatibility)
    anchor_t: float = 4.0
    anchors: float = 3  # anchors per output level
    fl_gamma: float = 0.0
    # augmentation
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    perspective: float = 0.0
    flipud: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0
    mixup: float = 0.0
    copy_paste: float = 0.0  # needs segments; with boxes only it has no effect

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Hyperparameters":
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise ValueError(f"unknown hyperparameter(s): {', '.join(unknown)}")
        clean: dict[str, float] = {}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"hyperparameter {key!r} must be a number, got {value!r}")
            clean[key] = float(value)
        return cls(**clean)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Hyperparameters":
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a hyp file must be a mapping of name: value")
        try:
            return cls.from_dict(values)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    def replace(self, **changes: float) -> "Hyperparameters":
        return self.from_dict({**self.to_dict(), **changes})

    @property
    def anchors_per_level(self) -> int:
        return max(1, int(round(self.anchors)))
