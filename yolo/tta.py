"""Test-time augmentation (TTA): several views of each image, merged before NMS.

YOLOv5's recipe: three passes at scales 1, 0.83 and 0.67 of the input, the middle one mirrored
left-right. Each view is resized, padded on the right / bottom to a multiple of the model's
largest stride (so the grid still tiles it), run through the model, and its decoded boxes are
mapped back to the input frame (divide by the scale, mirror x back), so that NMS sees one pool
of candidates in one coordinate system. The extra views are where the gain comes from: large
objects fit the receptive fields of the downscaled passes better, each view's errors are partly
independent, and the mirror averages out left-right bias.

Like YOLOv5, by default each end of the scale range gives up the object sizes it sees worst:
the full-size pass drops its coarsest level (the largest boxes, which the downscaled passes
cover), the smallest pass drops its finest level (the tiny boxes that shrank below what that
level resolves).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TTA_SCALES = (1.0, 0.83, 0.67)
TTA_FLIPS = (False, True, False)  # mirror left-right in this pass
PAD_VALUE = 114 / 255  # the letterbox grey, as the network saw it in training


def scale_image(img: Tensor, ratio: float, stride: int) -> tuple[Tensor, tuple[float, float]]:
    """Resize a [B, 3, H, W] batch by `ratio`, pad right/bottom to a multiple of `stride`.

    Returns the image and the exact per-axis scale (h_new / H, w_new / W) after rounding the
    size to whole pixels: dividing by these puts a box back on the input exactly.
    """
    h, w = img.shape[2], img.shape[3]
    new_h, new_w = max(1, int(h * ratio)), max(1, int(w * ratio))
    if (new_h, new_w) != (h, w):
        img = F.interpolate(img, size=(new_h, new_w), mode="bilinear", align_corners=False)
    pad_h, pad_w = math.ceil(new_h / stride) * stride - new_h, math.ceil(new_w / stride) * stride - new_w
    if pad_h or pad_w:
        img = F.pad(img, [0, pad_w, 0, pad_h], value=PAD_VALUE)
    return img, (new_h / h, new_w / w)


def map_to_input(decoded: Tensor, scale_hw: tuple[float, float], mirrored_width: float | None) -> Tensor:
    """Decoded [B, N, 5+nc] (xywh in the augmented view's pixels) -> xywh in the input's pixels.

    `mirrored_width`: the input width W if the view was mirrored (centre x -> W - x), else None.
    Returns a new tensor; scores are untouched.
    """
    sy, sx = scale_hw
    boxes = decoded[..., :4] / decoded.new_tensor([sx, sy, sx, sy])
    if mirrored_width is not None:
        boxes[..., 0] = mirrored_width - boxes[..., 0]
    return torch.cat((boxes, decoded[..., 4:]), -1)


def level_sizes(raw: Sequence[Tensor]) -> list[int]:
    """How many decoded rows each output level contributed (na * ny * nx), in decoded order."""
    return [r.shape[1] * r.shape[2] * r.shape[3] for r in raw]


class TestTimeAugmentation(nn.Module):
    """Wraps a detector so that its eval forward returns the merged TTA predictions.

    Same contract as the detector in eval mode: (decoded [B, N', 5+nc] in input pixels, raw),
    where raw is the plain (scale 1, unmirrored) pass's raw output when there is one, so a loss
    can still be computed on it. Inference only.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(
        self,
        model: nn.Module,
        scales: Sequence[float] = TTA_SCALES,
        flips: Sequence[bool] = TTA_FLIPS,
        drop_scale_edges: bool = True,
    ) -> None:
        super().__init__()
        if len(scales) != len(flips) or not scales:
            raise ValueError(f"TTA needs one flip per scale, got scales {scales} and flips {flips}")
        self.model = model
        self.scales = tuple(float(s) for s in scales)
        self.flips = tuple(bool(f) for f in flips)
        self.drop_scale_edges = drop_scale_edges

    @property
    def stride(self) -> Tensor:
        return self.model.stride

    @property
    def nc(self) -> int:
        return self.model.nc

    def fuse(self) -> TestTimeAugmentation:
        if hasattr(self.model, "fuse"):
            self.model.fuse()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        if self.training:
            raise RuntimeError("test-time augmentation is for inference: call .eval() first")
        stride = int(self.model.stride.max())
        width = float(x.shape[3])
        views: list[Tensor] = []
        plain_raw: list[Tensor] | None = None
        last = len(self.scales) - 1
        for i, (scale, flip) in enumerate(zip(self.scales, self.flips)):
            img, scale_hw = scale_image(x.flip(3) if flip else x, scale, stride)
            decoded, raw = self.model(img)
            if plain_raw is None and scale == 1.0 and not flip:
                plain_raw = raw
            decoded = map_to_input(decoded, scale_hw, width if flip else None)
            if self.drop_scale_edges and last > 0:
                sizes = level_sizes(raw)
                if i == 0:
                    decoded = decoded[:, : decoded.shape[1] - sizes[-1]]
                elif i == last:
                    decoded = decoded[:, sizes[0] :]
            views.append(decoded)
        return torch.cat(views, 1), plain_raw if plain_raw is not None else raw
