"""The YOLOv5 v6+ detector: architecture as data, scaled by depth/width multiples.

The architecture is the rows of YOLOv5 v6's yolov5*.yaml, `[from, number, module, args]`, kept
as Python data and turned into modules through an explicit name -> class table (never eval), so a
row cannot name arbitrary code. Layers 0-9 are the backbone, 10-23 the PAN head, 24 Detect;
parameters are named `model.{layer}.…` so "freeze the backbone" is a prefix test.
"""

from __future__ import annotations

import copy
import math
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from yolo.layers import C3, SPPF, Bottleneck, Concat, Conv, Detect

AnchorLevels = tuple[tuple[tuple[float, float], ...], ...]

DEFAULT_ANCHORS: AnchorLevels = (
    ((10.0, 13.0), (16.0, 30.0), (33.0, 23.0)),  # P3/8
    ((30.0, 61.0), (62.0, 45.0), (59.0, 119.0)),  # P4/16
    ((116.0, 90.0), (156.0, 198.0), (373.0, 326.0)),  # P5/32
)

SCALES: dict[str, tuple[float, float]] = {  # name -> (depth_multiple, width_multiple)
    "n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25),
}

BACKBONE: tuple[tuple[Any, int, str, tuple[Any, ...]], ...] = (
    (-1, 1, "Conv", (64, 6, 2, 2)),  # 0  P1/2
    (-1, 1, "Conv", (128, 3, 2)),  # 1  P2/4
    (-1, 3, "C3", (128,)),  # 2
    (-1, 1, "Conv", (256, 3, 2)),  # 3  P3/8
    (-1, 6, "C3", (256,)),  # 4
    (-1, 1, "Conv", (512, 3, 2)),  # 5  P4/16
    (-1, 9, "C3", (512,)),  # 6
    (-1, 1, "Conv", (1024, 3, 2)),  # 7  P5/32
    (-1, 3, "C3", (1024,)),  # 8
    (-1, 1, "SPPF", (1024, 5)),  # 9
)
HEAD: tuple[tuple[Any, int, str, tuple[Any, ...]], ...] = (
    (-1, 1, "Conv", (512, 1, 1)),  # 10
    (-1, 1, "Upsample", (None, 2, "nearest")),  # 11
    ((-1, 6), 1, "Concat", (1,)),  # 12 cat backbone P4
    (-1, 3, "C3", (512, False)),  # 13
    (-1, 1, "Conv", (256, 1, 1)),  # 14
    (-1, 1, "Upsample", (None, 2, "nearest")),  # 15
    ((-1, 4), 1, "Concat", (1,)),  # 16 cat backbone P3
    (-1, 3, "C3", (256, False)),  # 17 P3/8 out
    (-1, 1, "Conv", (256, 3, 2)),  # 18
    ((-1, 14), 1, "Concat", (1,)),  # 19 cat head P4
    (-1, 3, "C3", (512, False)),  # 20 P4/16 out
    (-1, 1, "Conv", (512, 3, 2)),  # 21
    ((-1, 10), 1, "Concat", (1,)),  # 22 cat head P5
    (-1, 3, "C3", (1024, False)),  # 23 P5/32 out
    ((17, 20, 23), 1, "Detect", ()),  # 24 nc and anchors come from the ModelConfig
)
LEVEL_STRIDES = (8.0, 16.0, 32.0)  # input pixels per cell of layers 17, 20, 23 (Detect's inputs)
BACKBONE_LAYERS = len(BACKBONE)  # layers 0..9: the prefixes `model.0.` .. `model.9.`

MODULES: dict[str, type[nn.Module]] = {
    "Conv": Conv, "Bottleneck": Bottleneck, "C3": C3, "SPPF": SPPF,
    "Concat": Concat, "Upsample": nn.Upsample, "Detect": Detect,
}
_CHANNEL_BLOCKS = (Conv, Bottleneck, C3, SPPF)  # args[0] is output channels, scaled by width


def _flat_numbers(value: Any) -> list[float]:
    if hasattr(value, "tolist"):  # tensors and numpy arrays
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [number for item in value for number in _flat_numbers(item)]
    return [float(value)]


def normalize_anchors(anchors: Any) -> AnchorLevels:
    """Pixel anchors as nested float tuples; accepts YAML-style flat rows, pairs, or [nl, na, 2].

    Plain Python on purpose: it must also work while a `torch.device('meta')` context is active."""
    levels = []
    for row in anchors.tolist() if hasattr(anchors, "tolist") else anchors:
        flat = _flat_numbers(row)
        if not flat or len(flat) % 2:
            raise ValueError(f"an anchor level needs (w, h) pairs, got {row!r}")
        levels.append(tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2)))
    if len(levels) != 3 or len({len(level) for level in levels}) != 1:
        raise ValueError("anchors need 3 levels (P3, P4, P5) with the same count on each")
    if any(v <= 0 or not math.isfinite(v) for level in levels for pair in level for v in pair):
        raise ValueError("anchor sizes must be positive and finite")
    return tuple(levels)


def default_anchors(per_level: int = 3) -> AnchorLevels:
    """YOLOv5's anchors; for another count, log-spaced resamples of the same size range.

    A placeholder good enough to train from: AutoAnchor (k-means on the data) refines it."""
    if per_level == 3:
        return DEFAULT_ANCHORS
    if per_level < 1:
        raise ValueError("need at least one anchor per level")
    logs = sorted(((math.log(w), math.log(h)) for level in DEFAULT_ANCHORS for w, h in level),
                  key=sum)  # by area
    count, last = 3 * per_level, len(logs) - 1
    pairs = []
    for k in range(count):
        position = k * last / (count - 1) if count > 1 else last / 2
        low = min(int(position), last - 1)
        t = position - low
        pairs.append(tuple(round(math.exp(a * (1 - t) + b * t), 1)
                           for a, b in zip(logs[low], logs[low + 1])))
    return tuple(tuple(pairs[i * per_level:(i + 1) * per_level]) for i in range(3))


def resolve_anchors(anchors: Any) -> AnchorLevels:
    """None -> YOLOv5's defaults; an int -> that many default-range anchors per level; else pixels."""
    if anchors is None:
        return DEFAULT_ANCHORS
    if isinstance(anchors, int):
        return default_anchors(anchors)
    return normalize_anchors(anchors)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a Detector's architecture (stored in checkpoints)."""

    name: str = "yolov5s"
    depth_multiple: float = 0.33
    width_multiple: float = 0.50
    nc: int = 80
    anchors: AnchorLevels = field(default=DEFAULT_ANCHORS)

    def __post_init__(self) -> None:
        if self.nc < 1 or self.depth_multiple <= 0 or self.width_multiple <= 0:
            raise ValueError(f"invalid model config: {self}")
        object.__setattr__(self, "anchors", normalize_anchors(self.anchors))

    @classmethod
    def for_scale(cls, name: str, nc: int = 80, anchors: Any = None) -> "ModelConfig":
        """'yolov5n' / 'n' / 'yolov5s' ... -> config; anchors None = defaults, int = count/level."""
        key = name.strip().lower().removesuffix(".yaml").removeprefix("yolov5")
        if key not in SCALES:
            valid = ", ".join(f"yolov5{k}" for k in SCALES)
            raise ValueError(f"unknown model {name!r}; valid: {valid} (or just {', '.join(SCALES)})")
        depth, width = SCALES[key]
        return cls(f"yolov5{key}", depth, width, nc, resolve_anchors(anchors))

    @property
    def anchors_per_level(self) -> int:
        return len(self.anchors[0])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "depth_multiple": self.depth_multiple,
                "width_multiple": self.width_multiple, "nc": self.nc,
                "anchors": [[list(pair) for pair in level] for level in self.anchors]}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown model config key(s): {', '.join(unknown)}")
        return cls(**values)


def _round_channels(channels: float, divisor: int = 8) -> int:
    return int(math.ceil(channels / divisor) * divisor)


def _scaled_repeats(number: int, depth_multiple: float) -> int:
    return max(round(number * depth_multiple), 1) if number > 1 else number


def _build_layer(config: ModelConfig, name: str, number: int, args: Sequence[Any],
                 in_channels: list[int]) -> tuple[nn.Module, int]:
    """One row -> (module, output channels)."""
    cls = MODULES[name]
    if cls in _CHANNEL_BLOCKS:
        c1, c2 = in_channels[0], _round_channels(args[0] * config.width_multiple)
        repeats = _scaled_repeats(number, config.depth_multiple)
        if cls is C3:
            return C3(c1, c2, repeats, *args[1:]), c2
        blocks = [cls(c1 if i == 0 else c2, c2, *args[1:]) for i in range(repeats)]
        return (blocks[0] if repeats == 1 else nn.Sequential(*blocks)), c2
    if cls is Concat:
        return Concat(*args), sum(in_channels)
    if cls is Detect:
        anchors = torch.tensor(config.anchors, dtype=torch.float32)
        return Detect(config.nc, anchors, in_channels), 0
    return cls(*args), in_channels[0]


class Detector(nn.Module):
    """The YOLOv5 network; `forward` follows the Detect contract (train: raw list; eval: tuple)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        channels: list[int] = []  # output channels per layer
        layers: list[nn.Module] = []
        for index, (source, number, name, args) in enumerate(BACKBONE + HEAD):
            sources = (source,) if isinstance(source, int) else tuple(source)
            absolute = tuple(s if s >= 0 else index + s for s in sources)  # -1 for layer 0: image
            in_channels = [3 if s < 0 else channels[s] for s in absolute]
            layer, out = _build_layer(config, name, number, args, in_channels)
            layer.index, layer.from_indices = index, absolute
            layers.append(layer)
            channels.append(out)
        self.model = nn.ModuleList(layers)
        needed = {s for layer in layers for s in layer.from_indices if s != layer.index - 1}
        self._saved_layers = frozenset(needed)
        self._init_detect()

    @property
    def detect(self) -> Detect:
        return self.model[-1]

    @property
    def stride(self) -> Tensor:
        return self.detect.stride

    @property
    def nc(self) -> int:
        return self.detect.nc

    @property
    def is_fused(self) -> bool:
        return not any(isinstance(m, nn.BatchNorm2d) for m in self.modules())

    def forward(self, x: Tensor) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        return self.detect(self._detect_inputs(x))

    def _detect_inputs(self, x: Tensor) -> list[Tensor]:
        """Run layers 0..23, keeping only outputs a later layer reads; return Detect's inputs."""
        saved: dict[int, Tensor] = {}
        for i in range(len(self.model) - 1):
            layer = self.model[i]
            sources = layer.from_indices
            if len(sources) > 1:
                x = [x if s == layer.index - 1 else saved[s] for s in sources]
            elif sources[0] != layer.index - 1:
                x = saved[sources[0]]
            x = layer(x)
            if layer.index in self._saved_layers:
                saved[layer.index] = x
        return [x if s == len(self.model) - 2 else saved[s] for s in self.detect.from_indices]

    @torch.no_grad()
    def _init_detect(self) -> None:
        """Set the strides, rescale anchors to grid units, prior biases.

        The rows are fixed, so the strides are known (P3/8, P4/16, P5/32): no dummy forward pass
        to measure them (tests check the feature maps agree), which keeps building cheap."""
        strides = list(LEVEL_STRIDES)
        detect = self.detect
        detect.stride.copy_(torch.tensor(strides))
        detect.anchors.div_(detect.stride.view(-1, 1, 1))
        detect.initialize_biases(strides)

    @torch.no_grad()
    def set_anchors(self, pixel_anchors: Tensor | Sequence[Any]) -> None:
        """Install new anchors given in pixels, [nl, na, 2] (e.g. from AutoAnchor)."""
        detect = self.detect
        new = torch.as_tensor(pixel_anchors, dtype=torch.float32).view(detect.nl, -1, 2)
        if new.shape != detect.anchors.shape:
            raise ValueError(f"anchors must be {tuple(detect.anchors.shape)}, got {tuple(new.shape)}")
        detect.anchors.copy_(new.to(detect.anchors.device) / detect.stride.view(-1, 1, 1))
        self.config = dataclasses.replace(self.config, anchors=normalize_anchors(new))

    def fuse(self) -> "Detector":
        """Fold every BatchNorm into its conv (inference only; training a fused model lacks BN)."""
        for module in list(self.modules()):
            if isinstance(module, Conv):
                module.fuse()
        return self


def build_model(cfg: str | ModelConfig, nc: int | None = None, anchors: Any = None) -> Detector:
    """Build a Detector from a scale name ('yolov5n', 'n', ...) or a full ModelConfig.

    For a name, `nc` defaults to 80 and `anchors` (pixels, or an int count per level) to YOLOv5's.
    For a ModelConfig, `nc` / `anchors` given here override the config's own."""
    if not isinstance(cfg, ModelConfig):
        return Detector(ModelConfig.for_scale(cfg, 80 if nc is None else nc, anchors))
    config = cfg
    if nc is not None:
        config = dataclasses.replace(config, nc=nc)
    if anchors is not None:
        config = dataclasses.replace(config, anchors=resolve_anchors(anchors))
    return Detector(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gflops(model: nn.Module, img_size: int | tuple[int, int]) -> float:
    """Fused eval-mode FLOPs (not MACs) / 1e9 for one image; counted on meta tensors, so cheap."""
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    probe_model = copy.deepcopy(model).to("meta").eval()
    if hasattr(probe_model, "fuse"):
        probe_model.fuse()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        probe_model(torch.zeros(1, 3, height, width, device="meta"))
    return counter.get_total_flops() / 1e9


def backbone_prefixes(layers: Iterable[int] = range(BACKBONE_LAYERS)) -> tuple[str, ...]:
    """Parameter-name prefixes of the given layers (default: the backbone, `model.0.`..`model.9.`)."""
    return tuple(f"model.{i}." for i in layers)
