"""DDP plumbing: which rank this process is, its process group, the few collectives training
needs, and a launcher that starts one process per device.

Nothing here is module state: the rank comes from torch.distributed (when a group exists) or from
the environment torchrun / our launcher sets (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT), so
`python -m torch.distributed.run --nproc_per_node 2 -m yolo.ddp_main ...` and `launch(...)` start
identical processes. NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist

# Rank 0 validates and saves while the others wait in the next collective: give it hours, not
# torch's default minutes, or a long validation on a big dataset times the other ranks out.
GROUP_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class RankInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, validates, saves and runs callbacks."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def rank_from_env(environ: Mapping[str, str] | None = None) -> RankInfo:
    """The rank torchrun (or our launcher) gave this process; a plain process is rank 0 of 1."""
    environ = os.environ if environ is None else environ
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ValueError(f"malformed torchrun environment (RANK/LOCAL_RANK/WORLD_SIZE): {err}") from None
    if not 0 <= rank < max(world, 1):
        raise ValueError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return RankInfo(rank=rank, local_rank=local, world_size=max(world, 1))


def current_rank(environ: Mapping[str, str] | None = None) -> RankInfo:
    """This process's rank: from an initialised process group if there is one, else the env."""
    from_env = rank_from_env(environ)
    if dist.is_available() and dist.is_initialized():
        return RankInfo(rank=dist.get_rank(), local_rank=from_env.local_rank, world_size=dist.get_world_size())
    return from_env


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def check_sync_bn(sync_bn: bool, backend: str) -> None:
    """SyncBatchNorm only trains on CUDA tensors: refuse it clearly anywhere else."""
    if sync_bn and backend != "nccl":
        raise ValueError("--sync-bn needs CUDA GPUs and the NCCL backend (PyTorch's SyncBatchNorm does "
                         f"not train on CPU; this run would use {backend}); drop --sync-bn or train on GPUs")


@contextmanager
def process_group(info: RankInfo, device: torch.device, timeout: timedelta = GROUP_TIMEOUT) -> Iterator[bool]:
    """Join the process group for `info` (env:// rendezvous) and leave it afterwards.

    Yields whether a group is active. A single process joins none; a group someone else already
    initialised (a library user's own torchrun script) is used and left to its owner.
    """
    if not info.is_distributed:
        yield False
        return
    if dist.is_initialized():
        yield True
        return
    backend = backend_for(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL starts: its communicator binds the current device
    dist.init_process_group(backend, init_method="env://", rank=info.rank, world_size=info.world_size,
                            timeout=timeout)
    try:
        yield True
    finally:
        dist.destroy_process_group()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any (a stop request must stop all ranks together)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_flag(flag: bool, device: torch.device, src: int = 0) -> bool:
    """Rank `src`'s flag on every rank (e.g. rank 0's callbacks asked to stop)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.broadcast(value, src=src)
    return bool(value.item())


def broadcast_json(value: Any, device: torch.device, src: int = 0) -> Any:
    """Rank `src`'s JSON-able `value` on every rank, sent as UTF-8 bytes (no pickling)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    is_src = dist.get_rank() == src
    payload = json.dumps(value).encode() if is_src else b""
    size = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(size, src=src)
    buffer = (torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device) if is_src
              else torch.empty(int(size.item()), dtype=torch.uint8, device=device))
    dist.broadcast(buffer, src=src)
    return json.loads(bytes(buffer.cpu().tolist()).decode())


def parameter_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's parameters (names and exact bytes) in registration order.

    Parameters only: BatchNorm running statistics are buffers that each rank updates from its own
    shard after DDP broadcasts rank 0's at the start of a forward, so they legitimately differ.
    """
    digest = hashlib.sha256()
    for name, parameter in module.named_parameters():
        digest.update(name.encode())
        digest.update(parameter.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def gather_digests(digest: str, device: torch.device) -> list[str]:
    """Every rank's hex digest (same length everywhere), in rank order; [digest] without a group."""
    if not (dist.is_available() and dist.is_initialized()):
        return [digest]
    mine = torch.frombuffer(bytearray(digest.encode()), dtype=torch.uint8).to(device)
    everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, mine)
    return [bytes(t.cpu().tolist()).decode() for t in everyone]


def check_replicas(module: torch.nn.Module, device: torch.device) -> str:
    """Raise RuntimeError unless every rank holds the same parameters; returns the digest.

    DDP keeps replicas equal by construction (same start, averaged gradients, same steps); a
    rank that drifted (a non-deterministic kernel, a skipped step) would otherwise go unnoticed
    because only rank 0 saves.
    """
    digests = gather_digests(parameter_digest(module), device)
    if len(set(digests)) > 1:
        listed = ", ".join(f"rank {r}: {d[:12]}" for r, d in enumerate(digests))
        raise RuntimeError(f"DDP replicas diverged: parameter digests differ ({listed})")
    return digests[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def free_port() -> int:
    """A TCP port free right now on loopback, for the rendezvous (MASTER_PORT)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rank_environments(nproc: int, base: Mapping[str, str], port: int) -> list[dict[str, str]]:
    """The environment of each of `nproc` local processes, as torchrun would set it (one node)."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    envs = []
    for rank in range(nproc):
        env = dict(base)
        env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
                   GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        # As torchrun: one intra-op thread pool per process must not oversubscribe the cores.
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        envs.append(env)
    return envs


def launch(module: str, args: Sequence[str], nproc: int, extra_env: Mapping[str, str] | None = None,
           poll_seconds: float = 0.2) -> None:
    """Run `python -m module *args` as `nproc` ranks on this machine and wait for all of them.

    When one rank fails, the others are terminated (they would otherwise wait for it in a
    collective until the group timeout) and RuntimeError names the failed rank and its exit code.
    Each rank's output goes to this process's stdout/stderr.
    """
    base = {**os.environ, **(extra_env or {})}
    command = [sys.executable, "-m", module, *args]
    processes = [subprocess.Popen(command, env=env) for env in rank_environments(nproc, base, free_port())]
    try:
        while True:
            codes = [p.poll() for p in processes]
            failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                rank, code = failed[0]
                raise RuntimeError(f"DDP rank {rank} of {nproc} exited with code {code} "
                                   f"(its error is in the output above); the other ranks were stopped")
            if all(code == 0 for code in codes):
                return
            time.sleep(poll_seconds)
    finally:
        _stop(processes)


def _stop(processes: Sequence[subprocess.Popen], grace_seconds: float = 10.0) -> None:
    for p in processes:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace_seconds
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
