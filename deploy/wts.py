"""TensorRTx-style `.wts` text weights: what hand-written TensorRT network builders read.

Format: the first line is the number of tensors; then one line per tensor,
`name count hex hex ...`, each value a big-endian IEEE float32 written as 8 hex digits. We write
the *unfused* state dict (conv weights and BatchNorm parameters separately, anchors in grid units,
integer buffers as floats) because that is what those builders fold themselves; the parameter
names follow YOLOv5's (`model.0.conv.weight`, `model.24.m.0.bias`, ...). TensorRTx's yolov5
builder also needs two tensors its `gen_wts.py` adds right after `model.24.anchors`:
`model.24.anchor_grid` (the anchors in pixels, which its C++ reads for decoding) and
`model.24.strides` (which it asserts on); `tensorrtx_tensors` puts them there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch

_BIG_ENDIAN_F32 = np.dtype(">f4")


def tensorrtx_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The detector's state dict in order, with the Detect layer's `anchor_grid` (pixels) and
    `strides` inserted after its `anchors`, as TensorRTx's yolov5 builder expects them."""
    detect = model.detect
    prefix = next(name for name, module in model.named_modules() if module is detect)
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        tensors[name] = tensor
        if name == f"{prefix}.anchors":
            tensors[f"{prefix}.anchor_grid"] = tensor * detect.stride.view(-1, 1, 1)
            tensors[f"{prefix}.strides"] = detect.stride
    return tensors


def write_wts(state: Mapping[str, torch.Tensor | np.ndarray], path: str | Path) -> Path:
    """Write every tensor of `state`, flattened, in its iteration order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="ascii") as out:
        out.write(f"{len(state)}\n")
        for name, tensor in state.items():
            if any(c.isspace() for c in name) or not name:
                raise ValueError(f"tensor name {name!r} cannot be written to a .wts (whitespace separates fields)")
            values = _flat_float32(tensor)
            hexed = values.astype(_BIG_ENDIAN_F32).tobytes().hex()
            words = [hexed[i : i + 8] for i in range(0, len(hexed), 8)]
            out.write(" ".join([name, str(values.size), *words]) + "\n")
    tmp.replace(path)  # never leave half a file where a builder will look for weights
    return path


def read_wts(path: str | Path) -> dict[str, np.ndarray]:
    """Parse a `.wts` into name -> flat float32 array; checks the count line and each element count."""
    path = Path(path)
    with path.open(encoding="ascii") as src:
        header = src.readline().strip()
        if not header.isdigit():
            raise ValueError(f"{path}: first line must be the tensor count, got {header[:40]!r}")
        expected = int(header)
        weights: dict[str, np.ndarray] = {}
        for line_number, line in enumerate(src, start=2):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2 or not fields[1].isdigit():
                raise ValueError(f"{path}:{line_number}: expected 'name count values...'")
            name, count, words = fields[0], int(fields[1]), fields[2:]
            if len(words) != count:
                raise ValueError(f"{path}:{line_number}: {name} declares {count} values, has {len(words)}")
            if any(len(w) != 8 for w in words):
                raise ValueError(f"{path}:{line_number}: {name} has a value that is not 8 hex digits")
            weights[name] = np.frombuffer(bytes.fromhex("".join(words)), dtype=_BIG_ENDIAN_F32).astype(np.float32)
    if len(weights) != expected:
        raise ValueError(f"{path}: header says {expected} tensors, found {len(weights)}")
    return weights


def _flat_float32(tensor: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(tensor, torch.Tensor):
        tensor = tensor.detach().cpu().float().numpy()
    return np.asarray(tensor, dtype=np.float32).reshape(-1)
