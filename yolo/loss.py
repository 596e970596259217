"""YOLOv5's training loss: box (CIoU), objectness and class BCE over the three output levels.

The numbers it returns follow YOLOv5's conventions exactly (same target assignment, same gains,
same (box, obj, cls) order, loss multiplied by the batch size) so that a loss logged here can be
read against one logged by YOLOv5. Target building is vectorised: the only Python loop is over
the output levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from yolo.hyp import Hyperparameters

# Objectness weight per output level (P3 first): small objects are many, so their level counts more.
_BALANCE_3 = (4.0, 1.0, 0.4)
_BALANCE_OTHER = (4.0, 1.0, 0.25, 0.06, 0.02)
# A target is also assigned to the neighbour cell(s) whose centre is within half a cell of it.
_NEIGHBOUR_REACH = 0.5
# Cell offsets: own cell, then left, up, right, down (scaled by the reach).
_OFFSETS = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32)


def bbox_ciou(box1: Tensor, box2: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU (Zheng et al. 2020) of paired boxes in (cx, cy, w, h), shape [..., 4] -> [...].

    CIoU adds to IoU a penalty for centre distance (relative to the enclosing box) and for
    aspect-ratio mismatch, so it still gives a useful gradient when boxes do not overlap.
    """
    x1, y1, w1, h1 = box1.unbind(-1)
    x2, y2, w2, h2 = box2.unbind(-1)
    left1, right1, top1, bottom1 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
    left2, right2, top2, bottom2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2

    inter_w = (torch.minimum(right1, right2) - torch.maximum(left1, left2)).clamp(min=0)
    inter_h = (torch.minimum(bottom1, bottom2) - torch.maximum(top1, top2)).clamp(min=0)
    inter = inter_w * inter_h
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union

    enclose_w = torch.maximum(right1, right2) - torch.minimum(left1, left2)
    enclose_h = torch.maximum(bottom1, bottom2) - torch.minimum(top1, top2)
    diagonal_sq = enclose_w**2 + enclose_h**2 + eps
    centre_dist_sq = (x2 - x1) ** 2 + (y2 - y1) ** 2
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    with torch.no_grad():  # alpha is a trade-off weight, not something to optimise through
        alpha = v / (v - iou + (1 + eps))
    return iou - (centre_dist_sq / diagonal_sq + v * alpha)


@dataclass(frozen=True)
class BCEWithLogits:
    """Mean binary cross-entropy on logits, with a weight on the positive term (cls_pw / obj_pw)."""

    pos_weight: float = 1.0

    def elementwise(self, logits: Tensor, target: Tensor) -> Tensor:
        weight = logits.new_tensor(self.pos_weight)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight, reduction="none")

    def __call__(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.elementwise(logits, target).mean()


@dataclass(frozen=True)
class FocalLoss:
    """Focal loss (Lin et al. 2017) around a BCE: down-weights easy examples by (1 - p_t)^gamma.

    Used when hyp fl_gamma > 0; it matters for objectness, where most cells are easy negatives.
    """

    bce: BCEWithLogits
    gamma: float
    alpha: float = 0.25

    def __call__(self, logits: Tensor, target: Tensor) -> Tensor:
        loss = self.bce.elementwise(logits, target)
        prob = logits.sigmoid()
        p_t = target * prob + (1 - target) * (1 - prob)
        alpha_factor = target * self.alpha + (1 - target) * (1 - self.alpha)
        return (loss * alpha_factor * (1.0 - p_t) ** self.gamma).mean()


@dataclass(frozen=True)
class LossGains:
    """The three loss weights after YOLOv5's train.py rescaling, kept apart from the hyp value.

    hyp box/cls/obj are tuned for 3 levels, 80 classes and 640 px; the rescaling keeps their
    meaning when the number of levels, classes or the image size differ.
    """

    box: float
    obj: float
    cls: float

    @classmethod
    def from_hyp(cls, hyp: Hyperparameters, nc: int, nl: int, img_size: int) -> "LossGains":
        level_scale = 3 / nl
        return cls(
            box=hyp.box * level_scale,
            obj=hyp.obj * (img_size / 640) ** 2 * level_scale,
            cls=hyp.cls * nc / 80 * level_scale,
        )


@dataclass(frozen=True)
class LevelTargets:
    """Positive samples of one output level: where they are and what they should predict."""

    image: Tensor  # [n] image index in batch
    anchor: Tensor  # [n] anchor index
    grid_y: Tensor  # [n] cell row
    grid_x: Tensor  # [n] cell column
    box: Tensor  # [n, 4] (x, y offset from the cell corner, w, h), grid units
    cls: Tensor  # [n] class index
    anchor_wh: Tensor  # [n, 2] the matched anchor, grid units


class DetectionLoss:
    """Callable loss: (raw level outputs, targets [N, 6]) -> (loss * batch, items [box, obj, cls])."""

    def __init__(
        self,
        anchors: Tensor,
        strides: Sequence[float],
        nc: int,
        hyp: Hyperparameters,
        img_size: int,
    ) -> None:
        anchors = torch.as_tensor(anchors, dtype=torch.float32).detach().clone()
        if anchors.ndim != 3 or anchors.shape[-1] != 2:
            raise ValueError(f"anchors must be [nl, na, 2] in grid units, got {tuple(anchors.shape)}")
        if len(strides) != anchors.shape[0]:
            raise ValueError(f"{len(strides)} strides for {anchors.shape[0]} anchor levels")
        self.anchors = anchors
        self.strides = tuple(float(s) for s in strides)
        self.nl, self.na = int(anchors.shape[0]), int(anchors.shape[1])
        self.nc = int(nc)
        self.anchor_t = float(hyp.anchor_t)
        self.gains = LossGains.from_hyp(hyp, self.nc, self.nl, img_size)
        balance = _BALANCE_3 if self.nl == 3 else _BALANCE_OTHER
        if self.nl > len(balance):
            raise ValueError(f"no objectness balance defined for {self.nl} levels")
        self.balance = balance[: self.nl]
        cls_bce, obj_bce = BCEWithLogits(hyp.cls_pw), BCEWithLogits(hyp.obj_pw)
        if hyp.fl_gamma > 0:
            self.cls_loss: Any = FocalLoss(cls_bce, hyp.fl_gamma)
            self.obj_loss: Any = FocalLoss(obj_bce, hyp.fl_gamma)
        else:
            self.cls_loss, self.obj_loss = cls_bce, obj_bce
        # Label smoothing eps = 0, as YOLOv5 trains by default: positives 1, negatives 0.
        self.cls_positive, self.cls_negative = 1.0, 0.0

    @classmethod
    def from_model(cls, model: Any, hyp: Hyperparameters, img_size: int) -> "DetectionLoss":
        detect = model.detect
        return cls(detect.anchors, [float(s) for s in detect.stride], detect.nc, hyp, img_size)

    def __call__(self, preds: Sequence[Tensor], targets: Tensor) -> tuple[Tensor, Tensor]:
        if len(preds) != self.nl:
            raise ValueError(f"expected {self.nl} output levels, got {len(preds)}")
        device = preds[0].device
        targets = targets.to(device=device, dtype=torch.float32)
        zero = torch.zeros((), device=device)
        lbox, lobj, lcls = zero, zero, zero
        for level, pred in enumerate(preds):
            t = self.build_targets(level, pred.shape, targets)
            obj_target = torch.zeros(pred.shape[:4], device=device, dtype=pred.dtype)
            if t.image.numel():
                p = pred[t.image, t.anchor, t.grid_y, t.grid_x]  # [n, 5 + nc]
                pxy = p[:, :2].sigmoid() * 2 - 0.5
                pwh = (p[:, 2:4].sigmoid() * 2) ** 2 * t.anchor_wh
                iou = bbox_ciou(torch.cat((pxy, pwh), 1), t.box)
                lbox = lbox + (1.0 - iou).mean()
                # Objectness learns to predict the box quality (gr = 1: the IoU itself).
                obj_target[t.image, t.anchor, t.grid_y, t.grid_x] = iou.detach().clamp(0).to(pred.dtype)
                if self.nc > 1:
                    cls_target = torch.full_like(p[:, 5:], self.cls_negative)
                    cls_target[torch.arange(len(p), device=device), t.cls] = self.cls_positive
                    lcls = lcls + self.cls_loss(p[:, 5:], cls_target)
            lobj = lobj + self.obj_loss(pred[..., 4], obj_target) * self.balance[level]
        lbox, lobj, lcls = lbox * self.gains.box, lobj * self.gains.obj, lcls * self.gains.cls
        batch_size = preds[0].shape[0]
        return (lbox + lobj + lcls) * batch_size, torch.stack((lbox, lobj, lcls)).detach()

    def build_targets(self, level: int, shape: torch.Size, targets: Tensor) -> LevelTargets:
        """Assign targets to (anchor, cell) positives of one level.

        An anchor takes a target when neither side ratio exceeds anchor_t; the target then goes
        to its own cell plus the nearer horizontal and the nearer vertical neighbour, which is
        why box centres are decoded in (-0.5, 1.5) of a cell.
        """
        device = targets.device
        ny, nx = int(shape[2]), int(shape[3])
        anchors = self.anchors[level].to(device)
        grid_size = torch.tensor([nx, ny], device=device, dtype=torch.float32)
        xy = targets[:, 2:4] * grid_size
        wh = targets[:, 4:6] * grid_size

        ratio = wh[None] / anchors[:, None]  # [na, N, 2]
        match = torch.max(ratio, 1 / ratio).amax(2) < self.anchor_t  # [na, N]
        anchor_idx, target_idx = match.nonzero(as_tuple=True)
        xy, wh = xy[target_idx], wh[target_idx]

        inverse = grid_size - xy
        near_low = (xy % 1 < _NEIGHBOUR_REACH) & (xy > 1)  # left (x), top (y) neighbour
        near_high = (inverse % 1 < _NEIGHBOUR_REACH) & (inverse > 1)  # right, bottom
        own = torch.ones_like(near_low[:, 0])
        use = torch.stack((own, near_low[:, 0], near_low[:, 1], near_high[:, 0], near_high[:, 1]))
        offsets = (_OFFSETS.to(device) * _NEIGHBOUR_REACH)[:, None].expand(-1, len(xy), -1)[use]
        choose = use.nonzero(as_tuple=True)[1]  # which matched pair each positive comes from

        xy, wh = xy[choose], wh[choose]
        cell = (xy - offsets).long()
        grid_x = cell[:, 0].clamp(0, nx - 1)
        grid_y = cell[:, 1].clamp(0, ny - 1)
        pairs_target, pairs_anchor = target_idx[choose], anchor_idx[choose]
        cell_corner = torch.stack((grid_x, grid_y), 1).to(xy.dtype)
        return LevelTargets(
            image=targets[pairs_target, 0].long(),
            anchor=pairs_anchor,
            grid_y=grid_y,
            grid_x=grid_x,
            box=torch.cat((xy - cell_corner, wh), 1),
            cls=targets[pairs_target, 1].long(),
            anchor_wh=anchors[pairs_anchor],
        )
