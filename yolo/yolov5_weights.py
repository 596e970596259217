"""YOLOv5 checkpoints (`yolov5s.pt`, a run's `best.pt` / `last.pt` / `epochN.pt`) as our `Checkpoint`.

The file is read by `yolo.safe_unpickle` (nothing in it runs); its module objects come back as
inert records, from which we take what YOLOv5's own `attempt_load` takes: the `ema` model when
present, else `model`, as float32 (converted only once names and shapes are checked against our
detector, so a refused file never has anything converted). Our detector has YOLOv5 v6+'s state-dict names and shapes, so
the tensors load as they are; nc, names, anchors (Detect's buffer, AutoAnchor'ed or not) and the
stride come along. What we do not build is refused with a message saying what is supported:
YOLOv5 < 6.0 (Focus stem), P6 models (yolov5s6 ..., four output levels), custom architectures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from yolo.checkpoint import Checkpoint, save_checkpoint
from yolo.model import BACKBONE, HEAD, SCALES, Detector, ModelConfig, _round_channels
from yolo.safe_unpickle import PickledObject, UnsafeCheckpointError, load_restricted

SUPPORTED = ("YOLOv5 v6.0+ detection checkpoints of yolov5n/s/m/l/x (P5, strides 8/16/32) "
             "built from YOLOv5's own model yamls")
_MODEL_CLASSES = ("DetectionModel", "Model")
_MAX_MODULE_DEPTH = 16  # YOLOv5's deepest tensor is 6 modules down (model.2.m.0.cv1.conv.weight)
_MAX_MODULES = 20_000  # visits, shared modules counted each time; yolov5x has about 1,000
_MAX_ANCHORS_PER_LEVEL = 64  # YOLOv5 uses 3; read with tolist(), so bounded before
_MAX_LEVELS_READ = 8  # of a stored stride: 3 expected, a few more to name a P6 model


class UnsupportedCheckpointError(ValueError):
    """A well-formed YOLOv5 file of a kind our detector does not build."""


def read_yolov5_checkpoint(path: str | Path) -> Checkpoint:
    """Read a YOLOv5 `.pt` safely into a `Checkpoint` (weights float32, architecture checked)."""
    payload = load_restricted(path)
    try:
        return checkpoint_from_payload(payload, str(path))
    except (AttributeError, TypeError, KeyError, IndexError, RuntimeError) as err:  # a state of the wrong shape
        raise UnsafeCheckpointError(f"{path}: not a well-formed YOLOv5 checkpoint ({type(err).__name__}: {err})") from None


def checkpoint_from_payload(payload: Any, path: str) -> Checkpoint:
    """The `Checkpoint` in an unpickled YOLOv5 checkpoint dict (`path` names it in errors)."""
    if not isinstance(payload, dict):
        raise UnsafeCheckpointError(f"{path}: a YOLOv5 checkpoint is a dict, this file holds a {type(payload).__name__}")
    record = payload.get("ema")  # as YOLOv5 loads it: the EMA when present, else the model
    if not isinstance(record, PickledObject):
        record = payload.get("model")
    if not isinstance(record, PickledObject) or record.kind not in _MODEL_CLASSES:
        raise UnsupportedCheckpointError(f"{path}: no YOLOv5 detection model under 'ema' or 'model'; supported: {SUPPORTED}")
    state = _state_dict(record, path)
    detect = _detect_record(record, path)
    stride = _as_floats(record.state.get("stride"))
    if len(stride) != 3 or detect.state.get("nl") not in (None, 3):
        raise UnsupportedCheckpointError(
            f"{path}: {len(stride) or detect.state.get('nl')} output levels (strides {stride}): P6 models such as "
            f"yolov5s6 are not supported; supported: {SUPPORTED}")
    if stride != [8.0, 16.0, 32.0]:
        raise UnsupportedCheckpointError(f"{path}: strides {stride}, expected 8, 16, 32; supported: {SUPPORTED}")
    anchors = state.get("model.24.anchors")
    if anchors is None:
        raise UnsupportedCheckpointError(f"{path}: no Detect anchors at model.24.anchors; supported: {SUPPORTED}")
    if anchors.dim() != 3 or anchors.shape[0] != 3 or anchors.shape[2] != 2 or not (
            1 <= anchors.shape[1] <= _MAX_ANCHORS_PER_LEVEL):
        raise UnsupportedCheckpointError(f"{path}: Detect anchors of shape {list(anchors.shape)}, expected 3 levels "
                                         f"of 1 to {_MAX_ANCHORS_PER_LEVEL} (w, h) pairs; supported: {SUPPORTED}")
    yaml = record.state.get("yaml") if isinstance(record.state.get("yaml"), dict) else {}
    if yaml:
        _check_yaml_rows(yaml, path)
    nc = detect.state.get("nc")
    if not isinstance(nc, int) or nc < 1:
        raise UnsupportedCheckpointError(f"{path}: its Detect head has no valid class count ({nc!r})")
    pixel_anchors = (anchors.float() * torch.tensor(stride).view(-1, 1, 1)).tolist()
    config = ModelConfig.for_scale(_scale_key(yaml, state, path), nc=nc, anchors=pixel_anchors)
    _check_architecture(config, state, path)
    epoch = payload.get("epoch")  # -1 in a finished run's best.pt / last.pt (YOLOv5 strips it)
    return Checkpoint(
        model_state={k: v.float() if v.is_floating_point() else v.clone() for k, v in state.items()},
        model_config=config.to_dict(),
        names=_names(record.state.get("names"), nc),
        epoch=epoch if isinstance(epoch, int) else -1,
        best_fitness=_float_or_zero(payload.get("best_fitness")),
        origin="yolov5",
    )


def _state_dict(record: PickledObject, path: str) -> dict[str, torch.Tensor]:
    """The `state_dict()` the module would give: parameters, persistent buffers, then children.
    The file's own tensors (views of its storages, release files' half precision): converting
    them waits for the architecture check. Modules may be shared (YOLOv5's Conv shares one SiLU),
    so a loop or an exponential fan-out is stopped by bounds on depth and on modules visited."""
    out: dict[str, torch.Tensor] = {}
    stack: list[tuple[PickledObject, str]] = [(record, "")]
    visited = 0
    while stack:
        module, prefix = stack.pop()
        visited += 1
        if visited > _MAX_MODULES or prefix.count(".") > _MAX_MODULE_DEPTH:
            raise UnsafeCheckpointError(
                f"{path}: module {prefix.rstrip('.')[:200]!r}: over {_MAX_MODULES} modules or nested deeper than "
                f"{_MAX_MODULE_DEPTH} levels (a loop?); a YOLOv5 model's modules form a small, shallow tree")
        s = module.state
        skip = s.get("_non_persistent_buffers_set") or set()
        tensors = [*(s.get("_parameters") or {}).items(),
                   *((k, v) for k, v in (s.get("_buffers") or {}).items() if k not in skip)]
        for name, tensor in tensors:
            if tensor is None:
                continue
            if not isinstance(tensor, torch.Tensor):
                raise UnsafeCheckpointError(f"{module.qualname}.{name} is not a tensor")
            out[prefix + name] = tensor.detach()
        children = []
        for name, child in (s.get("_modules") or {}).items():
            if child is None:
                continue
            if not isinstance(child, PickledObject):
                raise UnsafeCheckpointError(f"{module.qualname}.{name} is not a module")
            children.append((child, f"{prefix}{name}."))
        stack.extend(reversed(children))  # depth first, in order: state_dict()'s order
    return out


def _detect_record(model: PickledObject, path: str) -> PickledObject:
    layers = (model.state.get("_modules") or {}).get("model")
    children = list(((layers.state.get("_modules") or {}) if isinstance(layers, PickledObject) else {}).values())
    if not children or not isinstance(children[-1], PickledObject) or children[-1].kind != "Detect":
        raise UnsupportedCheckpointError(f"{path}: the last layer is not a Detect head; supported: {SUPPORTED}")
    return children[-1]


def _scale_key(yaml: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: str) -> str:
    """n/s/m/l/x from the stored yaml's multiples, cross-checked with the stem's width."""
    from_yaml = next((k for k, (d, w) in SCALES.items()
                      if yaml.get("depth_multiple") == d and yaml.get("width_multiple") == w), None)
    stem = state.get("model.0.conv.weight")
    widths = {_round_channels(BACKBONE[0][3][0] * w): k for k, (_, w) in SCALES.items()}
    from_tensors = widths.get(int(stem.shape[0])) if stem is not None and stem.dim() == 4 else None
    if yaml and from_yaml is None:
        raise UnsupportedCheckpointError(
            f"{path}: depth/width multiples {yaml.get('depth_multiple')}/{yaml.get('width_multiple')} are not those "
            f"of yolov5n/s/m/l/x; supported: {SUPPORTED}")
    key = from_yaml or from_tensors
    if key is None or (from_tensors is not None and from_tensors != key):
        raise UnsupportedCheckpointError(f"{path}: cannot tell the model size from the file; supported: {SUPPORTED}")
    return key


def _check_architecture(config: ModelConfig, state: Mapping[str, torch.Tensor], path: str) -> None:
    """The file's layers must be ours: same yaml rows when stored, same tensor names and shapes."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Detector(config).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        reshaped = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        detail = "; ".join(f"{what}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
                           for what, keys in (("missing", missing), ("unexpected", extra), ("other shape", reshaped))
                           if keys)
        raise UnsupportedCheckpointError(f"{path}: not a standard {config.name} ({detail}); "
                                         f"custom architectures are not supported; supported: {SUPPORTED}")


def _check_yaml_rows(yaml: Mapping[str, Any], path: str) -> None:
    """A stored model yaml must list our rows (same layers, sources, repeats and arguments)."""
    rows = [*(yaml.get("backbone") or []), *(yaml.get("head") or [])]
    ours = [*BACKBONE, *HEAD]
    if len(rows) != len(ours):
        raise UnsupportedCheckpointError(f"{path}: its model yaml has {len(rows)} layers, ours {len(ours)}; "
                                         f"supported: {SUPPORTED}")
    for index, (row, mine) in enumerate(zip(rows, ours)):
        if not _same_row(row, mine):
            raise UnsupportedCheckpointError(f"{path}: layer {index} of its model yaml is {row!r}, ours is "
                                             f"{list(mine)!r}; supported: {SUPPORTED}")


def _same_row(row: Any, mine: tuple[Any, int, str, tuple[Any, ...]]) -> bool:
    if not isinstance(row, (list, tuple)) or len(row) != 4:
        return False
    source, number, module, args = row
    source = tuple(source) if isinstance(source, (list, tuple)) else source
    if str(module).removeprefix("nn.") != mine[2] or source != mine[0] or number != mine[1]:
        return False
    if mine[2] == "Detect":
        return True  # its args are the yaml's nc / anchors, checked through the tensors
    args = [None if a == "None" else a for a in args]  # YOLOv5's yamls spell Upsample's size 'None'
    return args == list(mine[3])


def _as_floats(value: Any) -> list[float]:
    """A stored stride as numbers: its first _MAX_LEVELS_READ values at most (enough to refuse it)."""
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value.flatten()[:_MAX_LEVELS_READ].tolist()]
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value[:_MAX_LEVELS_READ]]
    return []


def _names(names: Any, nc: int) -> list[str]:
    """YOLOv5 stores a list (older) or an {index: name} dict (v7+); a wrong length falls back to numbers."""
    if isinstance(names, dict):
        names = [names.get(i, str(i)) for i in range(nc)]
    if isinstance(names, (list, tuple)) and len(names) == nc:
        return [str(n) for n in names]
    return [str(i) for i in range(nc)]


def _float_or_zero(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number == number else 0.0


def convert_yolov5_checkpoint(source: str | Path, out: str | Path) -> tuple[Path, Checkpoint]:
    """Write a YOLOv5 checkpoint once in our safe format (what campaign workers should load)."""
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the YOLOv5 file itself; choose another path")
    checkpoint = read_yolov5_checkpoint(source)
    return save_checkpoint(out, checkpoint), checkpoint
