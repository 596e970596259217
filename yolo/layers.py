"""Building blocks of the YOLOv5 v6+ network.

Each block mirrors one YOLOv5 module (same structure, hence the same parameter count and the same
`conv` / `bn` / `cv1` / `m` attribute names, so parameter names read like YOLOv5's). The Detect
head is written for export: it builds its grid from the live feature size on every call and
assembles outputs with split/cat only, because a cached grid would be frozen into an ONNX graph
and in-place slice writes export as ScatterND.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

BN_EPS = 1e-3  # YOLOv5's BatchNorm settings (its weight init overrides torch's 1e-5 / 0.1)
BN_MOMENTUM = 0.03


def autopad(kernel: int, padding: int | None = None) -> int:
    """'Same' padding for odd kernels, so a stride-s conv divides the feature size by exactly s."""
    return kernel // 2 if padding is None else padding


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU; `fuse()` folds the BN into the conv for inference."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p), groups=g, bias=False)
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

    @torch.no_grad()
    def fuse(self) -> "Conv":
        """Replace conv+BN by one biased conv computing the same eval-mode function."""
        if self.bn is None:
            return self
        conv, bn = self.conv, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, conv.dilation, conv.groups, bias=True,
                          device=conv.weight.device, dtype=conv.weight.dtype)
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_(bn.bias + (conv_bias - bn.running_mean) * scale)
        self.conv, self.bn = fused, None
        return self


class Bottleneck(nn.Module):
    """1x1 then 3x3 conv, with a residual add when shapes allow and `shortcut` is asked for."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block: a bottleneck stack on half the channels, concatenated with a plain 1x1 branch."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1,
                 e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(c1, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained k x k max-pools equal pools of k, 2k-1, 3k-2."""

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Concat(nn.Module):
    """Concatenate a list of feature maps along `dimension` (channels by default)."""

    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, xs: list[Tensor]) -> Tensor:
        return torch.cat(xs, self.d)


class Detect(nn.Module):
    """Per-level 1x1 prediction convs plus the YOLOv5 box decoding.

    `anchors` is a buffer [nl, na, 2] in grid units (pixels / stride) and `stride` a buffer [nl];
    the Detector fills `stride` once it knows the architecture's downsampling.
    """

    def __init__(self, nc: int, anchors: Tensor, ch: Sequence[int]):
        super().__init__()
        if anchors.dim() != 3 or anchors.shape[-1] != 2 or anchors.shape[0] != len(ch):
            raise ValueError(f"anchors must be [nl={len(ch)}, na, 2], got {tuple(anchors.shape)}")
        self.nc = nc
        self.no = nc + 5
        self.nl, self.na = int(anchors.shape[0]), int(anchors.shape[1])
        self.register_buffer("anchors", anchors.detach().clone().float())
        self.register_buffer("stride", torch.ones(self.nl), persistent=False)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def forward(self, xs: list[Tensor]) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        raw: list[Tensor] = []
        for level, conv in enumerate(self.m):
            p = conv(xs[level])
            b, _, ny, nx = p.shape
            raw.append(p.view(b, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        if self.training:
            return raw
        return torch.cat([self._decode(p, level) for level, p in enumerate(raw)], 1), raw

    def _decode(self, p: Tensor, level: int) -> Tensor:
        """Raw [B, na, ny, nx, no] -> [B, na*ny*nx, no] with xywh in input pixels, sigmoid scores."""
        b, _, ny, nx, _ = p.shape
        stride = self.stride[level]
        ys = torch.arange(ny, device=p.device, dtype=p.dtype)
        xs = torch.arange(nx, device=p.device, dtype=p.dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = (torch.stack((gx, gy), -1) - 0.5).view(1, 1, ny, nx, 2)
        anchor_px = (self.anchors[level] * stride).view(1, self.na, 1, 1, 2).to(p.dtype)
        xy, wh, scores = p.sigmoid().split((2, 2, self.no - 4), -1)
        xy = (xy * 2 + grid) * stride
        wh = (wh * 2) ** 2 * anchor_px
        return torch.cat((xy, wh, scores), -1).view(b, self.na * ny * nx, self.no)

    @torch.no_grad()
    def initialize_biases(self, strides: Sequence[float], class_frequency_prior: float = 0.6) -> None:
        """YOLOv5's prior: ~8 objects per 640x640 image and near-uniform classes, so the first
        steps are not swamped by confident false positives. `strides` as plain numbers."""
        for conv, s in zip(self.m, strides):
            bias = conv.bias.view(self.na, self.no)
            bias[:, 4] += math.log(8 / (640 / s) ** 2)
            bias[:, 5:] += math.log(class_frequency_prior / (self.nc - 0.99))
