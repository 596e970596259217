"""YOLOv5 checkpoints (`yolov5s.pt`, a run's `best.pt` / `last.pt` / `epochN.pt`) as our `Checkpoint`.

The file is read by `yolo.safe_unpickle` (nothing in it runs); its module objects come back as
inert records, from which we take what YOLOv5's own `attempt_load` takes: the `ema` model when
present, else `model`, as float32. Our detector has YOLOv5 v6+'s state-dict names and shapes, so
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


class UnsupportedCheckpointError(ValueError):
    """A well-formed YOLOv5 file of a kind our detector does not build."""


def read_yolov5_checkpoint(path: str | Path) -> Checkpoint:
    """Read a YOLOv5 `.pt` safely into a `Checkpoint` (weights float32, architecture checked)."""
    return checkpoint_from_payload(load_restricted(path), str(path))


def checkpoint_from_payload(payload: Any, path: str) -> Checkpoint:
    """The `Checkpoint` in an unpickled YOLOv5 checkpoint dict (`path` names it in errors)."""
    if not isinstance(payload, dict):
        raise UnsafeCheckpointError(f"{path}: a YOLOv5 checkpoint is a dict, this file holds a {type(payload).__name__}")
    record = payload.get("ema")  # as YOLOv5 loads it: the EMA when present, else the model
    if not isinstance(record, PickledObject):
        record = payload.get("model")
    if not isinstance(record, PickledObject) or record.kind not in _MODEL_CLASSES:
        raise UnsupportedCheckpointError(f"{path}: no YOLOv5 detection model under 'ema' or 'model'; supported: {SUPPORTED}")
    state = _state_dict(record)
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
    yaml = record.state.get("yaml") if isinstance(record.state.get("yaml"), dict) else {}
    if yaml:
        _check_yaml_rows(yaml, path)
    nc = detect.state.get("nc")
    if not isinstance(nc, int) or nc < 1:
        raise UnsupportedCheckpointError(f"{path}: its Detect head has no valid class count ({nc!r})")
    pixel_anchors = (anchors * torch.tensor(stride).view(-1, 1, 1)).tolist()
    config = ModelConfig.for_scale(_scale_key(yaml, state, path), nc=nc, anchors=pixel_anchors)
    _check_architecture(config, state, path)
    epoch = payload.get("epoch")  # -1 in a finished run's best.pt / last.pt (YOLOv5 strips it)
    return Checkpoint(
        model_state=state,
        model_config=config.to_dict(),
        names=_names(record.state.get("names"), nc),
        epoch=epoch if isinstance(epoch, int) else -1,
        best_fitness=_float_or_zero(payload.get("best_fitness")),
        origin="yolov5",
    )


def _state_dict(record: PickledObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """The `state_dict()` the module would give: parameters, persistent buffers, then children.
    Floating tensors as float32 (release files are half precision)."""
    s = record.state
    out: dict[str, torch.Tensor] = {}
    skip = s.get("_non_persistent_buffers_set") or set()
    tensors = [*(s.get("_parameters") or {}).items(),
               *((k, v) for k, v in (s.get("_buffers") or {}).items() if k not in skip)]
    for name, tensor in tensors:
        if tensor is None:
            continue
        if not isinstance(tensor, torch.Tensor):
            raise UnsafeCheckpointError(f"{record.qualname}.{name} is not a tensor")
        tensor = tensor.detach()
        out[prefix + name] = tensor.float() if tensor.is_floating_point() else tensor.clone()
    for name, child in (s.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PickledObject):
            raise UnsafeCheckpointError(f"{record.qualname}.{name} is not a module")
        out.update(_state_dict(child, f"{prefix}{name}."))
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
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value.flatten().tolist()]
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
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
