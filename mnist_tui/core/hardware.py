"""What the CPU can do, read without importing torch (for estimates shown at startup)."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.lru_cache(maxsize=1)
def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): what `--precision auto`
    picks bf16 for. Linux only; elsewhere False (the estimate then assumes fp32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags or "amx_tile" in flags


def gpu_count() -> int:
    """NVIDIA GPUs the driver lists (Linux), counted without importing torch."""
    try:
        return sum(1 for _ in Path("/proc/driver/nvidia/gpus").iterdir())
    except OSError:
        return 0


def several_processes_pay() -> bool:
    """Whether training one run on several processes can be faster here: more than two
    cores, or more than one GPU (the Train form hides its Processes field otherwise)."""
    return (os.cpu_count() or 1) > 2 or gpu_count() > 1


def auto_precision(requested: str) -> str:
    """The numeric mode a CPU run will use for a requested precision."""
    return ("bf16" if cpu_bf16_native() else "fp32") if requested == "auto" else requested
