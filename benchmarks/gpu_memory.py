"""The device's own peak memory use, as the check reports it beside each process's torch peaks.

torch's counters (read the way workers read them: `workers.gpu_memory`) see one process's tensors
and its caching allocator, not the CUDA context (some hundreds of MiB per process) nor other
processes. When several trials share a GPU, what decides whether they fit is the device's total
use, which NVML reports (the `nvidia-ml-py` package, imported as `pynvml`); without it, the
device figure is left out and said so.
"""

from __future__ import annotations

import threading
from typing import Any

MIB = 1 << 20


class DeviceMemorySampler:
    """Samples NVML's used memory of one physical GPU every `interval` seconds in a thread, from
    `start()` to `stop()`; `peak_mib` is the largest reading (None when NVML is not at hand).

    Creates no CUDA context: NVML reads the driver's counters, so the sampling process does not
    add to what it measures."""

    def __init__(self, gpu_index: int, interval: float = 0.2) -> None:
        self.gpu_index = gpu_index
        self.interval = interval
        self.peak_mib: float | None = None
        self.unavailable: str | None = None  # why there is no reading
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: Any = None
        self._handle: Any = None

    def start(self) -> "DeviceMemorySampler":
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(self.gpu_index)
        except Exception as err:  # noqa: BLE001 -- no NVML (CPU machine, no package): report without it
            self.unavailable = f"NVML not available ({type(err).__name__}: {err})"
            return self
        self._read()
        self._thread = threading.Thread(target=self._run, name="nvml-memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> float | None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._read()
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 -- shutting down a reader that already failed
                pass
        return self.peak_mib

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._read()

    def _read(self) -> None:
        try:
            used = self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / MIB
        except Exception as err:  # noqa: BLE001 -- keep what was read so far
            self.unavailable = f"NVML stopped answering ({type(err).__name__}: {err})"
            return
        self.peak_mib = used if self.peak_mib is None else max(self.peak_mib, used)
