"""The CPU's vector instruction set, capped for a benchmark: `--isa avx2` times on an AVX-512
machine what an AVX2-only CPU (AVX2 and FMA, the x86-64-v3 class) would run.

Four libraries pick their instructions at run time, each with its own switch, read when it
starts (so set before torch is imported, and inherited by every process a benchmark starts):
PyTorch's vectorised kernels (ATEN_CPU_CAPABILITY), oneDNN's convolutions (ONEDNN_MAX_CPU_ISA),
MKL's matrix products (MKL_ENABLE_INSTRUCTIONS: the linear layers, and conv_bound.py's peak)
and the fused batch-norm kernels, compiled for a -march target (MNIST_TUI_FUSED_MARCH,
core/fused.py). Each side of a benchmark records torch.backends.cpu.get_cpu_capability(),
which proves the first took effect.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CAPS = {
    "native": {},
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "MNIST_TUI_FUSED_MARCH": "x86-64-v3",
    },
}
SWITCHES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MNIST_TUI_FUSED_MARCH")
CAPABILITY = "import torch; print(torch.backends.cpu.get_cpu_capability())"


def environment(isa: str) -> dict[str, str]:
    """os.environ with the switches of `isa` set, and those it does not set removed."""
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    return {**env, **CAPS[isa]}


def ensure(isa: str) -> None:
    """Re-execute this program under `isa`'s switches unless they are already in force (the
    switches are read once, when the libraries load)."""
    wanted = environment(isa)
    if any(os.environ.get(k) != wanted.get(k) for k in SWITCHES):
        os.execve(sys.executable, [sys.executable, *sys.argv], wanted)


def cpu_flags() -> str:
    """The vector extensions /proc/cpuinfo lists, of those that matter here."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "flags unknown"
    return " ".join(f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16", "amx_tile") if f in flags)


def describe(isa: str) -> str:
    """The cap in words, with the switches that make it."""
    if isa == "native":
        return "native (no cap: every extension the CPU has)"
    return f"{isa} ({', '.join(f'{k}={v}' for k, v in CAPS[isa].items())})"
