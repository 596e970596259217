"""Checkpoints in a safe format: tensors plus plain metadata, nothing to unpickle.

Everything saved is a dict of tensors, numbers, strings, lists and dicts, so
`torch.load(path, weights_only=True)` reads it without executing code from the file. The model
is rebuilt from its config rows (`model_config`) and then gets the saved tensors.

`load_checkpoint` also reads YOLOv5's own `.pt` files (`yolov5s.pt`, a run's `best.pt`), through
the restricted reader of `yolo.yolov5_weights`, so every command that takes weights takes those.
Either way the file's claims are checked against `yolo.checkpoint_limits`: record sizes before
anything is read, and here every loaded tensor's layout (torch.load builds a stride-0 view of 10^13
elements over 2 bytes without complaint; whatever converted it would not survive).
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yolo.checkpoint_limits import ElementTally, TensorLayout, UnsafeCheckpointError, check_declared_sizes
from yolo.safe_unpickle import objects_with_paths

FORMAT = "evolver-yolo-1"


@dataclass
class Checkpoint:
    model_state: dict[str, torch.Tensor]  # EMA weights: what validation and deployment use
    model_config: dict[str, Any]
    names: list[str]
    epoch: int = -1  # last completed epoch
    best_fitness: float = 0.0
    hyp: dict[str, float] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    # only in `last.pt`, for resuming:
    train_state: dict[str, torch.Tensor] | None = None  # raw (non-EMA) weights
    optimizer_state: dict[str, Any] | None = None
    ema_updates: int = 0
    torch_rng: torch.Tensor | None = None
    last_step: int = -1  # batch index of the last optimiser step
    pending_grads: dict[str, torch.Tensor] | None = None  # accumulated, not yet applied
    origin: str = "evolver"  # the file's format: "evolver", or "yolov5" (read by yolo.yolov5_weights)


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "model": {k: v.detach().cpu() for k, v in checkpoint.model_state.items()},
        "model_config": checkpoint.model_config,
        "names": list(checkpoint.names),
        "epoch": int(checkpoint.epoch),
        "best_fitness": float(checkpoint.best_fitness),
        "hyp": dict(checkpoint.hyp),
        "train_config": dict(checkpoint.train_config),
        "metrics": {k: float(v) for k, v in checkpoint.metrics.items()},
        "ema_updates": int(checkpoint.ema_updates),
        "last_step": int(checkpoint.last_step),
    }
    if checkpoint.train_state is not None:
        payload["train_model"] = {k: v.detach().cpu() for k, v in checkpoint.train_state.items()}
    if checkpoint.optimizer_state is not None:
        payload["optimizer"] = checkpoint.optimizer_state
    if checkpoint.torch_rng is not None:
        payload["torch_rng"] = checkpoint.torch_rng
    if checkpoint.pending_grads:
        payload["pending_grads"] = {k: v.detach().cpu() for k, v in checkpoint.pending_grads.items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a crash mid-write never leaves a truncated checkpoint
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    _check_record_sizes(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # It names classes: not ours. A YOLOv5 file is read by the allowlist reader, which refuses
        # (naming the global) whatever is neither YOLOv5's nor torch's.
        from yolo.yolov5_weights import read_yolov5_checkpoint

        return read_yolov5_checkpoint(path)
    except Exception as err:  # file damaged
        raise ValueError(f"{path} cannot be read as a checkpoint (damaged or truncated?): {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an evolver checkpoint (format {FORMAT!r} expected)")
    _check_tensor_layouts(payload, path)
    return Checkpoint(
        model_state=payload["model"],
        model_config=payload["model_config"],
        names=list(payload["names"]),
        epoch=payload.get("epoch", -1),
        best_fitness=payload.get("best_fitness", 0.0),
        hyp=payload.get("hyp", {}),
        train_config=payload.get("train_config", {}),
        metrics=payload.get("metrics", {}),
        train_state=payload.get("train_model"),
        optimizer_state=payload.get("optimizer"),
        ema_updates=payload.get("ema_updates", 0),
        torch_rng=payload.get("torch_rng"),
        last_step=payload.get("last_step", -1),
        pending_grads=payload.get("pending_grads"),
    )


def _check_record_sizes(path: Path) -> None:
    """The zip's declared record sizes, before torch.load allocates them."""
    try:
        with zipfile.ZipFile(path) as zf:
            check_declared_sizes(zf, str(path))
    except (zipfile.BadZipFile, OSError, EOFError) as err:  # torch.save writes zip archives only
        raise ValueError(f"{path} cannot be read as a checkpoint (damaged or truncated?): {err}") from None


def _check_tensor_layouts(payload: Any, path: Path) -> None:
    """Every tensor within its storage (stride > 0, extent, element bounds): refused before use."""
    tally = ElementTally()
    for where, value in objects_with_paths(payload):
        if not isinstance(value, torch.Tensor):
            continue
        if value.layout != torch.strided:
            raise UnsafeCheckpointError(f"{path}: tensor {where:.200} is {value.layout} (only dense tensors are read)")
        layout = TensorLayout.of(value)
        problem = layout.problem(value.untyped_storage().nbytes() // value.element_size()) or tally.add(layout.numel)
        if problem is not None:
            raise UnsafeCheckpointError(f"{path}: tensor {where:.200}: {problem}")


def build_model_from(checkpoint: Checkpoint) -> nn.Module:
    """The checkpoint's architecture (config rows, nc, anchors), freshly initialised."""
    from yolo.model import Detector, ModelConfig

    return Detector(ModelConfig.from_dict(checkpoint.model_config))


def load_model(path: str | Path, device: torch.device | str = "cpu", fuse: bool = False) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the detector of a checkpoint with its (EMA) weights, in eval mode."""
    checkpoint = load_checkpoint(path)
    model = build_model_from(checkpoint)
    model.load_state_dict(checkpoint.model_state)
    model.to(device).eval()
    if fuse:
        model.fuse()
    return model, checkpoint
