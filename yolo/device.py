"""Turning a user's `--device` string into the devices a training uses, exactly as asked.

YOLOv5's `--device 2,3` long ignored the list or silently used GPU 0. Here the string is parsed
by a plain function into a typed `DeviceRequest`, checked against `torch.cuda.device_count()`
with an error that names the GPUs that do exist, and mapped to one `torch.device` per process:

- one device (`0`, `cuda:1`): that GPU by index in this process; a library call in a long-lived
  process (a Ray worker, a test) must not rewrite the process's environment, and indexing a GPU
  is exact without it.
- several devices (`2,3`): one process per device. The launcher sets `CUDA_VISIBLE_DEVICES=2,3`
  in each child's environment before the child starts (so before CUDA can initialise) and marks
  it in `VISIBILITY_MARK`; rank r then uses `cuda:r`. Under a plain `torchrun`, which sets no
  visibility, rank r uses the r-th listed GPU by its own index (`LOCAL_RANK` picks it).

Indices are relative to the GPUs this process can see: inside a process that already has
`CUDA_VISIBLE_DEVICES=4,5` (Ray does that), `--device 1` means physical GPU 5.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Mapping

import torch

# Set by our launcher beside CUDA_VISIBLE_DEVICES: "this visibility is the device list itself".
VISIBILITY_MARK = "EVOLVER_VISIBLE_DEVICES"

DeviceKind = Literal["cpu", "cuda", "auto"]


@dataclass(frozen=True)
class DeviceRequest:
    """What `--device` asked for. `indices` are GPU indices as written (empty for cpu / auto)."""

    text: str
    kind: DeviceKind
    indices: tuple[int, ...] = ()

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def processes(self) -> int:
        """Processes a training with this request runs: one per listed GPU, else one."""
        return max(1, len(self.indices))

    @property
    def is_multi_gpu(self) -> bool:
        return len(self.indices) > 1


def parse_device(device: str | int | None) -> DeviceRequest:
    """'cpu' | '' / 'auto' / None | '0' | 0 | '2,3' | 'cuda' | 'cuda:1' | 'cuda:0,1' -> DeviceRequest.

    Pure: no CUDA call, so it is safe before visibility is set. Raises ValueError on anything
    else, on negative or repeated indices, and on mixing 'cpu' with GPUs.
    """
    text = "" if device is None else str(device).strip()
    lowered = text.lower().replace(" ", "")
    if lowered in ("", "auto"):
        return DeviceRequest(text, "auto")
    if lowered == "cpu":
        return DeviceRequest(text, "cpu")
    body = lowered
    if body.startswith("cuda"):
        head, sep, body = body.partition(":")
        if head != "cuda" or (sep and not body):
            raise ValueError(f"device {text!r} is not 'cpu', GPU indices like '0' or '2,3', or 'cuda:N'")
        body = body or "0"
    parts = body.split(",")
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"device {text!r} is not 'cpu', GPU indices like '0' or '2,3', or 'cuda:N'")
    indices = tuple(int(part) for part in parts)
    if len(set(indices)) != len(indices):
        raise ValueError(f"device {text!r} lists a GPU twice")
    return DeviceRequest(text, "cuda", indices)


def describe_available(count: int, visible: str | None = None) -> str:
    """'GPUs 0, 1 exist' / 'no CUDA GPU exists', phrased for error messages."""
    where = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    if count <= 0:
        return f"torch.cuda.device_count() is 0: no CUDA GPU is visible here{where}"
    listed = ", ".join(str(i) for i in range(count))
    return f"torch.cuda.device_count() is {count}: GPU{'s' if count > 1 else ''} {listed}{where}"


def check_devices_exist(request: DeviceRequest, available: int, visible: str | None = None) -> None:
    """Raise ValueError naming the GPUs that exist when `request` lists one that does not."""
    if not request.is_cuda:
        return
    missing = [i for i in request.indices if i >= available]
    if missing:
        which = ", ".join(str(i) for i in missing)
        hint = "; use --device cpu" if available <= 0 else ""
        raise ValueError(f"--device {request.text}: GPU {which} does not exist; "
                         f"{describe_available(available, visible)}{hint}")


def visible_devices_for(request: DeviceRequest, inherited: str | None) -> str:
    """The CUDA_VISIBLE_DEVICES a child process gets so that it sees exactly `request`'s GPUs.

    `inherited` is this process's own CUDA_VISIBLE_DEVICES (None: all GPUs); the request's indices
    are positions in it, so a mask composes with the one around it instead of replacing it.
    """
    if not request.is_cuda:
        raise ValueError(f"device {request.text!r} names no GPU")
    if inherited is None or not inherited.strip():
        return ",".join(str(i) for i in request.indices)
    outer = [entry.strip() for entry in inherited.split(",") if entry.strip()]
    check_devices_exist(request, len(outer), inherited)
    return ",".join(outer[i] for i in request.indices)


def rank_cuda_index(request: DeviceRequest, local_rank: int, environ: Mapping[str, str]) -> int:
    """The `cuda:N` index local rank `local_rank` trains on.

    When our launcher set the visibility to the request's own list (`VISIBILITY_MARK` equals
    CUDA_VISIBLE_DEVICES), the GPUs are renumbered 0..n-1 and rank r takes r. Otherwise (plain
    torchrun, or one in-process device) the listed index itself is used.
    """
    if not request.is_cuda:
        raise ValueError(f"device {request.text!r} names no GPU")
    if local_rank >= len(request.indices):
        raise ValueError(
            f"local rank {local_rank} has no GPU: --device {request.text} lists {len(request.indices)} "
            f"GPU(s); start one process per listed GPU (torchrun --nproc_per_node {len(request.indices)})")
    mark = environ.get(VISIBILITY_MARK)
    if mark is not None and mark == environ.get("CUDA_VISIBLE_DEVICES"):
        return local_rank
    return request.indices[local_rank]


def resolve_device(request: DeviceRequest, local_rank: int = 0,
                   environ: Mapping[str, str] | None = None) -> torch.device:
    """The torch.device for `local_rank` (0 outside DDP), checked against the GPUs that exist."""
    environ = os.environ if environ is None else environ
    if request.kind == "cpu":
        return torch.device("cpu")
    if request.kind == "auto":
        # Under torchrun, auto means one visible GPU per local rank, if there are GPUs at all.
        if torch.cuda.is_available():
            request = DeviceRequest(request.text, "cuda", (local_rank,))
            local_rank = 0
        else:
            return torch.device("cpu")
    index = rank_cuda_index(request, local_rank, environ)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index >= count:
        asked = DeviceRequest(request.text, "cuda", (index,))
        check_devices_exist(asked, count, environ.get("CUDA_VISIBLE_DEVICES"))
    return torch.device("cuda", index)


def select_device(device: str | int | None = None) -> torch.device:
    """One process, one device: 'cpu', '' (first GPU if any, else CPU), '0', 'cuda:1', or 0.

    Several GPUs ('0,1') are a multi-process (DDP) job: `yolo.train.train` launches it, or each
    torchrun rank resolves its own with `resolve_device(request, local_rank)`.
    """
    request = parse_device(device)
    if request.is_multi_gpu:
        raise ValueError(f"device {request.text!r} names several GPUs; one process uses one device "
                         "(train launches one process per GPU)")
    return resolve_device(request)
