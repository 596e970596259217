"""Turning a user's `--device` string into a torch device."""

from __future__ import annotations

import torch


def select_device(device: str | int | None = None) -> torch.device:
    """'cpu', '' (first GPU if any, else CPU), '0', 'cuda:1', or 0 -> torch.device.

    Several devices ('0,1') are a multi-process (DDP) job: the launcher gives each process its
    own local rank, and inside one process this function is called with that one index.
    """
    text = "" if device is None else str(device).strip().lower()
    if text in ("", "auto"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text.startswith("cuda"):
        text = text.partition(":")[2] or "0"
    if "," in text:
        raise ValueError(f"device {device!r} names several GPUs; launch one process per device")
    if not text.isdigit():
        raise ValueError(f"device {device!r} is not 'cpu', a GPU index like '0', or 'cuda:N'")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asks for a GPU but CUDA is not available here (use --device cpu)")
    index = int(text)
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s) are visible")
    return torch.device(f"cuda:{index}")
