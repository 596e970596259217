"""A trial's GPU memory, as its worker sees it: the peak it used, and why it failed when it ran out.

Several workers may share one GPU (`trials_per_gpu`), each a process of its own with its own CUDA
context and caching allocator. What one trial needs is then the figure that decides how many fit:
the worker resets the allocator's peak counters before each trial and reads them after, and the
result carries them as two metrics (MiB, summed over the devices the process sees: one, as Ray
narrows CUDA_VISIBLE_DEVICES to the worker's GPU). A process that never touched CUDA (a CPU
worker, a fake GPU) reports neither: no figure, rather than a zero that was never measured.

Neither counter includes the CUDA context itself (a few hundred MiB per process, as nvidia-smi
shows), which every trial sharing a GPU pays once more.
"""

from __future__ import annotations

import gc

import torch

PEAK_ALLOCATED = "gpu_peak_allocated_mib"  # the most memory the trial's tensors held at once
PEAK_RESERVED = "gpu_peak_reserved_mib"  # the most the caching allocator held (what neighbours could not use)
GPU_MEMORY_KEYS = (PEAK_ALLOCATED, PEAK_RESERVED)
MIB = 2**20


def reset_peak_gpu_memory() -> None:
    """Start a trial's measurement: zero the peak counters of every device this process uses.
    Creates no CUDA context: a process that has none yet starts from zero anyway."""
    if torch.cuda.is_initialized():
        for device in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(device)


def peak_gpu_memory() -> dict[str, float]:
    """The peaks since `reset_peak_gpu_memory`, in MiB; {} when this process has not used CUDA."""
    if not torch.cuda.is_initialized():
        return {}
    devices = range(torch.cuda.device_count())
    return {PEAK_ALLOCATED: sum(torch.cuda.max_memory_allocated(d) for d in devices) / MIB,
            PEAK_RESERVED: sum(torch.cuda.max_memory_reserved(d) for d in devices) / MIB}


def release_cached_gpu_memory() -> None:
    """After a trial ran out of memory: free what its dead tensors and the allocator's cache still
    hold, so the worker's next trial (and its neighbours on the GPU) start with that memory."""
    gc.collect()  # tensors in reference cycles (frames of the failed trial) go now, not later
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def out_of_memory_reason(campaign_id: int, gpu_id: str | None, trials_per_gpu: int) -> str:
    """The first line of a trial that ran out of GPU memory: where, how many trials shared the GPU,
    and what to do about it."""
    where = f"GPU {gpu_id}" if gpu_id else "this worker's GPU"
    if trials_per_gpu > 1:
        fewer = max(1, trials_per_gpu // 2)
        return (f"out of GPU memory on {where} with {trials_per_gpu} trials per GPU: `evolver cancel {campaign_id}` "
                f"and `evolver resume {campaign_id} --trials-per-gpu {fewer}` (fewer trials sharing each GPU), "
                "or a smaller batch_size / img_size")
    return (f"out of GPU memory on {where} with 1 trial per GPU: the trial needs a smaller batch_size or img_size "
            "(or a GPU with more memory)")
