"""Device and precision: which device trains, whether it computes bf16 natively, its name."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import cast

import torch

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


# On the CPU a test pass runs fastest in chunks small enough for their activations to stay in
# the caches; the recipes' test batch of 2000 is kept as the most on other devices. Measured
# per version and chunk size in benchmarks/results/whole_epoch.md ("Evaluation in chunks").
CPU_TEST_CHUNK = 256


def test_chunk(batch_size: int, device: torch.device) -> int:
    """How many test images to evaluate at once: the recipe's test batch size, capped on the CPU."""
    return min(batch_size, CPU_TEST_CHUNK) if device.type == "cpu" else batch_size


class DeviceError(RuntimeError):
    """The requested device is not available on this machine."""


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU; a named device must exist."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("the device cuda was asked for, but this machine has no usable CUDA GPU; choose cpu or auto")
    if name == "mps" and not has_mps:
        raise DeviceError("the device mps was asked for, but Apple MPS is not available here; choose cpu or auto")
    return torch.device(name)


def bf16_native(device: torch.device) -> bool:
    """Whether the device computes bf16 natively (CPU: AVX512-BF16 or AMX; CUDA: Ampere on)."""
    if device.type == "cuda":
        return cast(bool, torch.cuda.is_bf16_supported(including_emulation=False))  # torch leaves its return type out
    if device.type == "cpu":
        probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        try:
            return any(probe() for probe in probes if probe is not None)
        except RuntimeError:
            return False
    return False


def resolve_precision(requested: str, device: torch.device, version: str | None = None) -> str:
    """The numeric mode a run of `version` trains in on `device` (see choose_precision)."""
    return choose_precision(requested, device, version)[0]


def choose_precision(requested: str, device: torch.device, version: str | None = None) -> tuple[str, str]:
    """(the numeric mode, why: "" unless measured speed chose it). `auto` means bf16 autocast
    where the hardware has it natively, fp32 elsewhere; except on a CPU with native bf16 whose
    class the measured table (hardware.measured_faster) has timed `version` on: there the
    faster of the two, and fp32 only where the fused CPU kernels it was timed with are
    available here. An explicit bf16 is honoured wherever autocast supports it (slowly where
    emulated); MPS always trains in fp32.
    """
    if device.type == "mps":
        return "fp32", ""
    if requested != "auto":
        return requested, ""
    native = bf16_native(device)
    if device.type == "cpu" and native and version is not None:
        from mnist_tui.core import fused, hardware

        faster = hardware.measured_faster(version)
        if faster is not None and (faster[0] == "bf16" or fused.available()):
            return faster[0], f"faster than {faster[1]} for {version} on this CPU, measured"
    return ("bf16" if native else "fp32"), ""


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    threads = torch.get_num_threads()
    return f"CPU, {threads} thread{'s' if threads != 1 else ''}"


def memory_in_use_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return None


def keep_freed_memory() -> bool:
    """Stop glibc's malloc from handing memory back to the system between training steps.

    A step frees and reallocates activations of a few MB to a few tens of MB. By default
    glibc serves blocks over its (adaptive) mmap threshold from fresh mappings and trims the
    heap once 2x that threshold is free, so early in a process every step pays page faults to
    get zeroed memory back: a first fp32 epoch of v2 ran at 1,276 img/s against 1,741 with
    the thresholds fixed, its second at 1,650 against 1,896 (benchmarks/results/whole_epoch.md).
    Fixed here: blocks up to 32 MB (glibc's largest mmap threshold) come from the heap, and up
    to 1 GiB of free heap is kept. False where there is no glibc mallopt (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, 1 << 30)) and bool(mallopt(M_MMAP_THRESHOLD, 32 << 20))
