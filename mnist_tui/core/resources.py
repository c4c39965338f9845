"""What a run costs the machine: its trainer process's CPU use and memory (psutil), and on a
GPU the card's utilisation (NVML, through torch.cuda) and the memory torch holds on it.

In a distributed run each figure is rank 0's process: the others train the same shares.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import psutil
import torch

from mnist_tui.core.events import BatchProgress


@dataclass(frozen=True)
class Usage:
    """One look at the trainer: CPU use since the previous look, memory now."""

    cpu_percent: float  # of one core: 200 is two cores kept busy
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

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.process = psutil.Process()
        now, cpu = time.monotonic(), self._cpu()
        self._last = (now, cpu)
        self._epoch_start = (now, cpu)
        self._gpu_samples: list[float] = []

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def begin(self) -> None:
        """Training starts: the first epoch's figures count from now, not from the setup."""
        self._epoch_start = self._last = (time.monotonic(), self._cpu())
        self._gpu_samples = []

    def sample(self) -> Usage:
        """CPU use since the previous sample (or since the epoch began), memory now."""
        now, cpu = time.monotonic(), self._cpu()
        last_now, last_cpu = self._last
        self._last = (now, cpu)
        percent = 100.0 * (cpu - last_cpu) / (now - last_now) if now > last_now else 0.0
        gpu = _gpu_util(self.device)
        if gpu is not None:
            self._gpu_samples.append(gpu)
        memory = torch.cuda.memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else None
        return Usage(max(0.0, percent), self.process.memory_info().rss / 2**20, gpu, memory)

    def attach(self, event: BatchProgress) -> BatchProgress:
        """The progress event with the trainer's use of the machine now."""
        u = self.sample()
        return dataclasses.replace(event, cpu_percent=u.cpu_percent, rss_mb=u.rss_mb, gpu_util=u.gpu_util, gpu_memory_mb=u.gpu_memory_mb)

    def epoch(self) -> dict[str, float | None]:
        """The epoch's figures for metrics.jsonl (see the README's format section), and a new
        epoch begun: CPU seconds, mean CPU use, resident memory at its end, mean GPU use."""
        now, cpu = time.monotonic(), self._cpu()
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
