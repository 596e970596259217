"""The optimiser and learning-rate schedule of YOLOv5 training.

Three parameter groups, because weight decay should shrink convolution weights only: decaying
BatchNorm scales or biases just fights the normalisation. Biases get their own group so warmup can
start them at a high learning rate (`warmup_bias_lr`) while the weights start at zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from yolo.hyp import Hyperparameters

NOMINAL_BATCH = 64  # gradients are accumulated until this many images have been seen

BIAS_GROUP, DECAY_GROUP, NO_DECAY_GROUP = 0, 1, 2


def accumulation_steps(batch_size: int, nominal_batch: int = NOMINAL_BATCH) -> int:
    return max(round(nominal_batch / batch_size), 1)


def build_optimizer(
    model: nn.Module, hyp: Hyperparameters, batch_size: int, nominal_batch: int = NOMINAL_BATCH
) -> torch.optim.SGD:
    """SGD with Nesterov momentum; weight decay scaled to the effective batch as YOLOv5 does."""
    biases, decayed, undecayed = [], [], []
    for module in model.modules():
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter) and bias.requires_grad:
            biases.append(bias)
        weight = getattr(module, "weight", None)
        if not isinstance(weight, nn.Parameter) or not weight.requires_grad:
            continue
        if isinstance(module, nn.modules.batchnorm._NormBase):
            undecayed.append(weight)
        else:
            decayed.append(weight)
    effective = batch_size * accumulation_steps(batch_size, nominal_batch)
    weight_decay = hyp.weight_decay * effective / nominal_batch
    optimizer = torch.optim.SGD(biases, lr=hyp.lr0, momentum=hyp.momentum, nesterov=True)
    optimizer.add_param_group({"params": decayed, "weight_decay": weight_decay})
    optimizer.add_param_group({"params": undecayed, "weight_decay": 0.0})
    for group in optimizer.param_groups:
        group["initial_lr"] = hyp.lr0
    return optimizer


def lr_factor(cosine: bool, lrf: float, epochs: int) -> Callable[[float], float]:
    """Epoch -> multiple of lr0, decaying from 1 to `lrf` linearly or along a half cosine."""
    if cosine:
        return lambda epoch: ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (lrf - 1) + 1
    return lambda epoch: (1 - epoch / epochs) * (1.0 - lrf) + lrf


@dataclass(frozen=True)
class Schedule:
    """Per-iteration learning rate and momentum: linear warmup, then a per-epoch decay."""

    hyp: Hyperparameters
    epochs: int
    batches_per_epoch: int
    cosine: bool = False

    @property
    def warmup_iterations(self) -> int:
        # At least 100 iterations: tiny datasets would otherwise get almost no warmup.
        return max(round(self.hyp.warmup_epochs * self.batches_per_epoch), 100)

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int, iteration: int) -> None:
        """Set lr / momentum for global `iteration` (batches since the start) in `epoch`."""
        decay = lr_factor(self.cosine, self.hyp.lrf, self.epochs)(epoch)
        warmup = self.warmup_iterations
        for index, group in enumerate(optimizer.param_groups):
            target = group["initial_lr"] * decay
            if iteration < warmup:
                start = self.hyp.warmup_bias_lr if index == BIAS_GROUP else 0.0
                group["lr"] = float(np.interp(iteration, [0, warmup], [start, target]))
                if "momentum" in group:
                    group["momentum"] = float(
                        np.interp(iteration, [0, warmup], [self.hyp.warmup_momentum, self.hyp.momentum])
                    )
            else:
                group["lr"] = target
                if "momentum" in group:
                    group["momentum"] = self.hyp.momentum
