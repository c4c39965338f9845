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


MAX_HOURS = 10_000  # durations past this are shown as '>9999 h' (no run trains for a year)


def duration(seconds: float, compact: bool = False) -> str:
    """How long, at the precision people plan with: '40 s', '8 min', '1 h 05 min', or in a
    narrow column (compact) '40s', '8m', '1h05'; past 10,000 hours (a sum of schema-valid
    1e308s is infinite) '>9999 h', and '?' for what is not a time at all (NaN, negative)."""
    s, m, h = ("s", "m", "h") if compact else (" s", " min", " h ")
    if not seconds >= 0:  # NaN too
        return "?"
    if seconds < 90:
        return f"{seconds:.0f}{s}"
    if seconds < 3600:
        return f"{seconds / 60:.0f}{m}"
    if seconds >= MAX_HOURS * 3600:
        return f">{MAX_HOURS - 1}{h.rstrip()}"
    return f"{int(seconds // 3600)}{h}{int(seconds % 3600 // 60):02d}{'' if compact else ' min'}"
