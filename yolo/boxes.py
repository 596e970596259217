"""Box formats, IoU and non-maximum suppression (ours: torchvision is not used)."""

from __future__ import annotations

import numpy as np
import torch

Array = torch.Tensor | np.ndarray


def _empty_like(x: Array) -> Array:
    return x.clone() if isinstance(x, torch.Tensor) else np.copy(x)


def xywh2xyxy(x: Array) -> Array:
    """[cx, cy, w, h] -> [x1, y1, x2, y2]."""
    y = _empty_like(x)
    y[..., 0] = x[..., 0] - x[..., 2] / 2
    y[..., 1] = x[..., 1] - x[..., 3] / 2
    y[..., 2] = x[..., 0] + x[..., 2] / 2
    y[..., 3] = x[..., 1] + x[..., 3] / 2
    return y


def xyxy2xywh(x: Array) -> Array:
    """[x1, y1, x2, y2] -> [cx, cy, w, h]."""
    y = _empty_like(x)
    y[..., 0] = (x[..., 0] + x[..., 2]) / 2
    y[..., 1] = (x[..., 1] + x[..., 3]) / 2
    y[..., 2] = x[..., 2] - x[..., 0]
    y[..., 3] = x[..., 3] - x[..., 1]
    return y


def xywhn2xyxy(x: Array, w: float, h: float, padw: float = 0.0, padh: float = 0.0) -> Array:
    """Normalised [cx, cy, w, h] -> pixel [x1, y1, x2, y2], shifted by a padding offset."""
    y = _empty_like(x)
    y[..., 0] = w * (x[..., 0] - x[..., 2] / 2) + padw
    y[..., 1] = h * (x[..., 1] - x[..., 3] / 2) + padh
    y[..., 2] = w * (x[..., 0] + x[..., 2] / 2) + padw
    y[..., 3] = h * (x[..., 1] + x[..., 3] / 2) + padh
    return y


def xyxy2xywhn(x: Array, w: float, h: float) -> Array:
    """Pixel [x1, y1, x2, y2] -> normalised [cx, cy, w, h]."""
    y = _empty_like(x)
    y[..., 0] = (x[..., 0] + x[..., 2]) / 2 / w
    y[..., 1] = (x[..., 1] + x[..., 3]) / 2 / h
    y[..., 2] = (x[..., 2] - x[..., 0]) / w
    y[..., 3] = (x[..., 3] - x[..., 1]) / h
    return y


def clip_boxes(boxes: Array, shape: tuple[int, int]) -> Array:
    """Clip xyxy boxes in place to an image of shape (height, width)."""
    h, w = shape[:2]
    if isinstance(boxes, torch.Tensor):
        boxes[..., 0].clamp_(0, w)
        boxes[..., 1].clamp_(0, h)
        boxes[..., 2].clamp_(0, w)
        boxes[..., 3].clamp_(0, h)
    else:
        boxes[..., [0, 2]] = boxes[..., [0, 2]].clip(0, w)
        boxes[..., [1, 3]] = boxes[..., [1, 3]].clip(0, h)
    return boxes


def scale_boxes(
    from_shape: tuple[int, int],
    boxes: Array,
    to_shape: tuple[int, int],
    ratio_pad: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> Array:
    """Map xyxy boxes from a letterboxed image (from_shape) back to the original (to_shape).

    `ratio_pad` = ((gain_h, gain_w), (pad_w, pad_h)) as recorded by the letterbox; without it
    the letterbox is recomputed from the two shapes.
    """
    if ratio_pad is None:
        gain = min(from_shape[0] / to_shape[0], from_shape[1] / to_shape[1])
        pad_w = (from_shape[1] - to_shape[1] * gain) / 2
        pad_h = (from_shape[0] - to_shape[0] * gain) / 2
    else:
        gain = ratio_pad[0][0]
        pad_w, pad_h = ratio_pad[1]
    boxes[..., [0, 2]] -= pad_w
    boxes[..., [1, 3]] -= pad_h
    boxes[..., :4] /= gain
    return clip_boxes(boxes, to_shape)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes: [N, 4] x [M, 4] -> [N, M]."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter + eps)


def nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    max_keep: int | None = None,
    block: int = 512,
) -> torch.Tensor:
    """Greedy NMS on xyxy boxes; returns kept indices sorted by descending score.

    Same result as the textbook loop, computed in score-ordered blocks: a block's candidates are
    first tested against every box kept so far (one matrix op), then the survivors are resolved
    among themselves with a small boolean matrix. Stops once `max_keep` boxes are kept.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    # Stable: equal scores keep their input order, so ties resolve the same way every time
    # (an unstable sort may keep either of two tied, overlapping boxes, and with it change what
    # else survives).
    order = scores.argsort(descending=True, stable=True)
    sorted_boxes = boxes[order]
    limit = max_keep if max_keep is not None else sorted_boxes.shape[0]
    kept_idx: list[torch.Tensor] = []
    kept_boxes = sorted_boxes[:0]
    n_kept = 0
    for start in range(0, sorted_boxes.shape[0], block):
        cand = sorted_boxes[start : start + block]
        alive = torch.ones(cand.shape[0], dtype=torch.bool, device=boxes.device)
        if n_kept:
            alive &= (box_iou(cand, kept_boxes) <= iou_threshold).all(1)
        idx = alive.nonzero().view(-1)
        if not idx.numel():
            continue
        cand = cand[idx]
        over = torch.triu(box_iou(cand, cand) > iou_threshold, diagonal=1).cpu().numpy()
        keep = np.ones(cand.shape[0], dtype=bool)
        for i in range(cand.shape[0]):
            if keep[i]:
                keep[i + 1 :] &= ~over[i, i + 1 :]
        sel = torch.from_numpy(np.flatnonzero(keep)).to(boxes.device)
        kept_idx.append(idx[sel] + start)
        kept_boxes = torch.cat((kept_boxes, cand[sel]))
        n_kept += sel.numel()
        if n_kept >= limit:
            break
    return order[torch.cat(kept_idx)[:limit]]


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor,
    iou_threshold: float,
    max_keep: int | None = None,
) -> torch.Tensor:
    """Per-class NMS in one pass: boxes of different classes are offset so they never overlap."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    offset = classes.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return nms(boxes + offset, scores, iou_threshold, max_keep)


def non_max_suppression(
    prediction: torch.Tensor,
    conf_threshold: float = 0.001,
    iou_threshold: float = 0.6,
    max_det: int = 300,
    max_candidates: int = 30000,
    multi_label: bool = True,
) -> list[torch.Tensor]:
    """Per-image, per-class NMS over decoded predictions.

    prediction: [B, N, 5 + nc] with xywh (pixels), objectness, class probabilities.
    Returns one [n, 6] tensor per image: x1, y1, x2, y2, confidence, class.
    With `multi_label`, a box may be kept for every class whose obj*cls exceeds the threshold
    (YOLOv5's validation setting).
    """
    out: list[torch.Tensor] = []
    nc = prediction.shape[2] - 5
    for x in prediction:
        x = x[x[:, 4] > conf_threshold]
        if not x.shape[0]:
            out.append(torch.zeros((0, 6), device=prediction.device))
            continue
        scores = x[:, 5:] * x[:, 4:5] if nc > 0 else x[:, 4:5]
        box = xywh2xyxy(x[:, :4])
        if multi_label and nc > 1:
            i, j = (scores > conf_threshold).nonzero(as_tuple=True)
            det = torch.cat((box[i], scores[i, j, None], j[:, None].float()), 1)
        else:
            conf, j = scores.max(1, keepdim=True)
            det = torch.cat((box, conf, j.float()), 1)[conf.view(-1) > conf_threshold]
        if not det.shape[0]:
            out.append(torch.zeros((0, 6), device=prediction.device))
            continue
        if det.shape[0] > max_candidates:
            det = det[det[:, 4].argsort(descending=True, stable=True)[:max_candidates]]
        keep = batched_nms(det[:, :4], det[:, 4], det[:, 5], iou_threshold, max_det)
        out.append(det[keep])
    return out
