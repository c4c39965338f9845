"""What the CPU can do, read without importing torch (for estimates shown at startup)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

# /proc/cpuinfo's names for the fields cpu_info() keeps (x86, then ARM and s390 spellings).
_CPUINFO_KEYS = {"model name": "model", "Model": "model", "cpu model": "model", "vendor_id": "vendor", "cpu family": "family", "model": "number"}
_FLAG_KEYS = ("flags", "Features")
KEY_CAP = 200  # characters of a CPU key: a model name is short; /proc/cpuinfo is not trusted


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, str]:
    """The first processor's vendor, model name, family and model number, and flags, as
    Linux's /proc/cpuinfo gives them ({} elsewhere or when it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        field = "flags" if key in _FLAG_KEYS else _CPUINFO_KEYS.get(key)
        if field is not None and field not in info:
            info[field] = value.strip()
    return info


def isa_class(flags: str) -> str:
    """The vector class that decides fp32 against bf16 speed on a CPU: "amx" (AMX tiles with
    bf16), "avx512_bf16", "avx512", "avx2", or "other"."""
    have = set(flags.split())
    if {"amx_bf16", "amx_tile"} <= have:
        return "amx"
    for name, flag in (("avx512_bf16", "avx512_bf16"), ("avx512", "avx512f"), ("avx2", "avx2")):
        if flag in have:
            return name
    return "other"


def cpu_key(info: dict[str, str] | None = None) -> str:
    """A stable name for this CPU's class, which the measured precision table is keyed by:
    'Intel(R) Xeon(R) Processor · family 6 model 167 · amx' (the family and model number
    tell apart the generations that virtual machines all call by one model name)."""
    info = cpu_info() if info is None else info
    name = " ".join(info.get("model", "").split()) or "unknown CPU"
    number = f"family {info['family']} model {info['number']}" if info.get("family") and info.get("number") else ""
    return " · ".join(p for p in (name, number, isa_class(info.get("flags", ""))) if p)[:KEY_CAP]


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): what `--precision auto`
    picks bf16 for. Linux only; elsewhere False (the estimate then assumes fp32)."""
    flags = set(cpu_info().get("flags", "").split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})


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


def measured_faster(version: str, cpu: str | None = None) -> tuple[str, str] | None:
    """(the faster mode, the slower) of fp32 and bf16 for `version`'s training step on the CPU
    class `cpu` (this one's by default), as measured.json's precision table says
    (benchmarks/precision.py writes it); None where it has no whole entry for them."""
    from mnist_tui.core import measured

    ms = measured.step_ms(cpu_key() if cpu is None else cpu, version)
    if set(ms) != {"fp32", "bf16"} or ms["fp32"] == ms["bf16"]:
        return None
    return ("fp32", "bf16") if ms["fp32"] < ms["bf16"] else ("bf16", "fp32")


def auto_precision(requested: str, version: str | None = None) -> str:
    """The numeric mode a CPU run of `version` will use for a requested precision, for the
    estimates shown before a run (core/device.py decides the run's own, which also asks
    whether the fused kernels it measured fp32 with are there)."""
    if requested != "auto":
        return requested
    if not cpu_bf16_native():
        return "fp32"
    faster = measured_faster(version) if version is not None else None
    return faster[0] if faster is not None else "bf16"


def cpu_cores() -> int:
    """The cores this process may run on (its affinity where the system says, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_share(cores: int, live_trainers: int) -> int:
    """Threads for a trainer starting beside `live_trainers` others on one CPU: the cores split
    evenly between them all, at least one. Decided once, when it starts (a trainer already
    running keeps its own), so that no thread team is larger than the cores it may count on:
    two 2-thread OpenMP teams on 2 cores preempt each other, and two runs then did 43% of
    what one run does alone (issue 34)."""
    return max(1, cores // (max(0, live_trainers) + 1))


# OpenMP's wait policy for trainers that share the CPU: a thread that finishes its share of a
# parallel region sleeps instead of spinning for the next one (libgomp spins 300,000 iterations
# by default; torch's wheels here use libgomp). A spinning thread burns a core another trainer
# needs. A trainer alone keeps libgomp's default: waking its threads for each of a training
# step's many short parallel regions cost v4 a third of its speed (fp32, batch 128, 2-core
# Intel Xeon: 5,600 img/s passive, 7,600-7,800 with the default or ACTIVE).
PASSIVE_WAIT = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"}
# Set beside the passive wait mnist-tui chose, and inherited with it: a trainer that a shared
# trainer starts later (the queue's next run) tells mnist-tui's choice from the user's own.
OURS = "MNIST_TUI_PASSIVE_WAIT"


def trainer_environment(threads: int | None, passive: bool = True) -> dict[str, str | None]:
    """What a trainer's environment must say before torch loads (None: remove the variable):
    its thread count (None: as many as torch picks, every core) and, with `passive` (other
    trainers share the cores), OpenMP's passive wait, or without it the default wait, even
    where the process starting it inherited mnist-tui's passive one. A wait policy the user
    set (OMP_WAIT_POLICY, not mnist-tui's) is kept, e.g. to measure the difference."""
    users = bool(os.environ.get("OMP_WAIT_POLICY")) and not os.environ.get(OURS)
    env: dict[str, str | None] = {}
    if passive and not users:
        env.update(PASSIVE_WAIT, **{OURS: "1"})
    elif not passive and os.environ.get(OURS):
        env.update(dict.fromkeys([*PASSIVE_WAIT, OURS]))
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def applied(base: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """`base` (an environment) with `changes` made: a None value removes its variable."""
    out = {k: v for k, v in base.items() if k not in changes}
    out.update({k: v for k, v in changes.items() if v is not None})
    return out


def device_kind(device: str, gpus: int | None = None) -> str:
    """Which device a run of this `--device` trains on, judged without torch: cuda, mps or
    cpu (auto is cuda where the driver lists an NVIDIA GPU, else cpu)."""
    if device == "auto":
        return "cuda" if (gpu_count() if gpus is None else gpus) > 0 else "cpu"
    return device if device in ("cuda", "mps") else "cpu"


def visible_gpus(environ: dict[str, str] | None = None, gpus: int | None = None) -> list[str]:
    """The GPUs trainers may be given: those CUDA_VISIBLE_DEVICES lists where the user set it,
    else every one the driver lists ("0", "1", ...)."""
    env = os.environ if environ is None else environ
    given = env.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip()]
    return [str(i) for i in range(gpu_count() if gpus is None else gpus)]


def free_gpus(visible: list[str], busy: list[str], wanted: int) -> list[str] | None:
    """The first `wanted` visible GPUs no live trainer uses, or None if fewer are free: one
    run per GPU."""
    free = [g for g in visible if g not in set(busy)]
    return free[:wanted] if len(free) >= wanted and wanted > 0 else None


def least_used_gpus(visible: list[str], busy: list[str], wanted: int) -> list[str]:
    """The `wanted` visible GPUs with the fewest live trainers (a run started with --now on a
    box whose GPUs are all taken shares the least loaded ones)."""
    ranked = sorted(visible, key=lambda g: (busy.count(g), visible.index(g)))
    return ranked[: max(1, wanted)] if ranked else []


def redraw_seconds(base_s: float, live_trainers: int, cores: int | None = None) -> float:
    """How often the app should redraw what it redraws every `base_s` alone, given the
    trainers live on this machine: on a CPU with no core to spare for it (as many trainers as
    cores or more, or any trainer on 2 cores or fewer), the app's redraws are paid by the
    trainers (4% of a core cost a 2-core fp32 run 13%), so it redraws a third as often;
    otherwise as asked."""
    cores = cpu_cores() if cores is None else cores
    crowded = live_trainers > 0 and (cores <= 2 or live_trainers >= cores)
    return base_s * 3 if crowded else base_s
