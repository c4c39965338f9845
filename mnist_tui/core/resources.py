"""What a run costs the machine: its trainer process's CPU use and memory (psutil), and on a
GPU the card's utilisation (NVML, through torch.cuda) and the memory torch holds on it.

In a distributed run each figure is rank 0's process: the others train the same shares.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import torch

from mnist_tui.core.events import BatchProgress

# The shortest window a CPU figure is taken over (see Meter.sample).
MIN_WINDOW_S = 0.5


@dataclass(frozen=True)
class Usage:
    """One look at the trainer: CPU use since the previous look, memory now."""

    cpu_percent: float | None  # of one core: 200 is two cores kept busy; None: no window long enough yet
    rss_mb: float  # the process's resident memory
    gpu_util: float | None = None  # percent of the last sample period NVML saw the GPU busy
    gpu_memory_mb: float | None = None  # what torch's allocator holds on the GPU


def _gpu_util(device: torch.device) -> float | None:
    """NVML's utilisation of the device, or None where there is no NVML (pynvml) or GPU."""
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # no pynvml, a driver without NVML, a MIG slice: no figure, not a failure
        return None


class Meter:
    """Samples this process's resource use; `epoch()` sums up one epoch's."""

    def __init__(self, device: torch.device, clock: Callable[[], float] = time.monotonic) -> None:
        self.device, self.clock = device, clock
        self.process = psutil.Process()
        now, cpu = clock(), self._cpu()
        self._last = (now, cpu)
        self._epoch_start = (now, cpu)
        self._gpu_samples: list[float] = []
        self._percent: float | None = None  # the last CPU figure over a long enough window
        self._ceiling = 100.0 * (psutil.cpu_count() or os.cpu_count() or 1)

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def begin(self) -> None:
        """Training starts: the first epoch's figures count from now, not from the setup."""
        self._epoch_start = self._last = (self.clock(), self._cpu())
        self._gpu_samples = []

    def sample(self) -> Usage:
        """CPU use since the previous sample (or since the epoch began), memory now.

        CPU time is counted in clock ticks per thread, so over a fraction of a second the
        figure can read well above what the cores allow (316% on 2 cores was seen, between
        a training and an evaluating event): a window shorter than MIN_WINDOW_S keeps the
        previous figure (None before the first), and no figure exceeds the CPU count."""
        now, cpu = self.clock(), self._cpu()
        last_now, last_cpu = self._last
        percent = self._percent
        if now - last_now >= MIN_WINDOW_S:
            self._last = (now, cpu)
            percent = self._percent = min(100.0 * (cpu - last_cpu) / (now - last_now), self._ceiling)
        gpu = _gpu_util(self.device)
        if gpu is not None:
            self._gpu_samples.append(gpu)
        memory = torch.cuda.memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else None
        return Usage(None if percent is None else max(0.0, percent), self.process.memory_info().rss / 2**20, gpu, memory)

    def attach(self, event: BatchProgress) -> BatchProgress:
        """The progress event with the trainer's use of the machine now."""
        u = self.sample()
        return dataclasses.replace(event, cpu_percent=u.cpu_percent, rss_mb=u.rss_mb, gpu_util=u.gpu_util, gpu_memory_mb=u.gpu_memory_mb)

    def epoch(self) -> dict[str, float | None]:
        """The epoch's figures for metrics.jsonl (see the README's format section), and a new
        epoch begun: CPU seconds, mean CPU use, resident memory at its end, mean GPU use."""
        now, cpu = self.clock(), self._cpu()
        start_now, start_cpu = self._epoch_start
        self._epoch_start = self._last = (now, cpu)
        self.sample()  # the GPU's figure at the epoch's end, too
        self._last = (now, cpu)
        gpu = sum(self._gpu_samples) / len(self._gpu_samples) if self._gpu_samples else None
        self._gpu_samples = []
        return {
            "cpu_seconds": cpu - start_cpu,
            "cpu_percent": 100.0 * (cpu - start_cpu) / (now - start_now) if now > start_now else 0.0,
            "rss_mb": self.process.memory_info().rss / 2**20,
            "gpu_util": gpu,
        }
