"""Freezing layers for fine-tuning: which layers, and switching their parameters off.

A frozen parameter gets `requires_grad = False`, so autograd computes no gradient for it and
`build_optimizer` leaves it out (no momentum buffer, no weight decay moving it). BatchNorm running
statistics of frozen layers still follow the data in training mode, as in YOLOv5.

Spelling, as YOLOv5's `--freeze`: one number N means the first N layers (`--freeze 10` is the
backbone, layers 0-9); two or more numbers are the layer indices themselves (`--freeze 0 1 2`
or `--freeze 0,1,2`); `--freeze 0` freezes nothing. A single layer other than 0 is written
`--freeze 5,` (a trailing comma makes it a list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from torch import nn


@dataclass(frozen=True)
class FreezeSummary:
    trainable: int  # parameter elements that train
    frozen: int  # parameter elements left as they are

    def __str__(self) -> str:
        return f"trainable {self.trainable:,} / frozen {self.frozen:,} parameters"


def parse_freeze(values: Sequence[str | int]) -> tuple[int, ...]:
    """CLI values (`['10']`, `['0', '1', '2']`, `['0,1,2']`, `['5,']`) -> sorted layer indices."""
    tokens: list[str] = []
    listed = len(values) > 1
    for value in values:
        text = str(value)
        listed = listed or "," in text
        tokens.extend(part.strip() for part in text.split(",") if part.strip())
    if not all(token.isdigit() for token in tokens):
        raise ValueError(f"--freeze takes layer counts or indices (non-negative integers), got {list(values)}")
    numbers = [int(token) for token in tokens]
    if not listed and len(numbers) == 1:
        return tuple(range(numbers[0]))
    return tuple(sorted(set(numbers)))


def layer_prefixes(layers: Iterable[int]) -> tuple[str, ...]:
    """Parameter-name prefixes of layers (`model.{i}.`, the Detector's naming)."""
    return tuple(f"model.{i}." for i in sorted(set(layers)))


def freeze_layers(model: nn.Module, layers: Iterable[int]) -> FreezeSummary:
    """Set requires_grad False on the parameters of `layers`, True on every other one.

    Raises ValueError for an index the model does not have (a typo must not silently train all).
    """
    layers = tuple(layers)
    count = len(getattr(model, "model", ()))
    bad = [i for i in layers if not 0 <= i < count]
    if bad:
        raise ValueError(f"cannot freeze layer(s) {bad}: the model has layers 0-{count - 1}")
    prefixes = layer_prefixes(layers)
    trainable = frozen = 0
    for name, parameter in model.named_parameters():
        is_frozen = bool(prefixes) and name.startswith(prefixes)
        parameter.requires_grad_(not is_frozen)
        if is_frozen:
            frozen += parameter.numel()
        else:
            trainable += parameter.numel()
    return FreezeSummary(trainable=trainable, frozen=frozen)
