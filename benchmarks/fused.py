"""The fused CPU kernels (core/fused.py) against PyTorch's operations, and what building them costs.

Prints, per version, the engine's fp32 training step on the CPU (batch 128, channels_last,
the engine's layout rules, the recipe's optimizer) with the fused kernels and without them,
alternated in one process (medians of ROUNDS rounds of STEPS steps); then the seconds a fresh
process takes to make the kernels ready, with an empty cache (compile, load, check) and with
the cache a first run left (load, check).

With --against OLD.c, it compares instead the fused step built from kernels/bn_pool.c with
the one built from OLD.c (say, `git show HEAD~1:mnist_tui/core/kernels/bn_pool.c > old.c`):
each version's fused step in fresh processes, PAIRS pairs alternated (this source first in
odd pairs, OLD.c first in even ones), each the median of ROUNDS rounds of STEPS steps.

With --isa avx2, all of it runs with the CPU capped at AVX2 and FMA (benchmarks/isa.py:
PyTorch's kernels, oneDNN's convolutions and the kernels' -march), as an AVX2-only CPU would.

    python benchmarks/fused.py [--versions v1 v2 v3 v4] [--rounds 8] [--against OLD.c [--pairs 3]] [--isa avx2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 128
STEPS = 10
READY = "import time, torch; from mnist_tui.core import fused; t = time.perf_counter(); s = fused.status(); print(f'{time.perf_counter() - t:.2f} s ({s})')"


def steps(name: str, rounds: int) -> tuple[float, float]:
    """(median step ms with the kernels, without) for version `name`, alternated."""
    import torch
    import torch.nn.functional as F

    from mnist_tui.core import fused, memory_format, nets
    from mnist_tui.core.device import keep_freed_memory
    from mnist_tui.core.optim import make_optimizer
    from mnist_tui.core.versions import get_version

    keep_freed_memory()
    cpu = torch.device("cpu")
    x = torch.randn(BATCH, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    runs = {}
    for kernels in (True, False):
        torch.manual_seed(0)
        version = get_version(name)
        model = version.build().to(memory_format=torch.channels_last).train()
        # As the engine builds a run: the fused layers need no NCHW detour, the others may.
        memory_format.nchw_batch_norms(model, cpu, "fp32", nets.fused_batch_norms(model) if kernels else [])
        runs[kernels] = (model, make_optimizer(version.config(), model.parameters()))
    real = fused.applies

    def step(kernels: bool) -> None:
        fused.applies = real if kernels else (lambda *args: False)  # type: ignore[assignment]
        model, optimizer = runs[kernels]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(3):
        step(True)
        step(False)
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for kernels in (True, False):
            start = time.perf_counter()
            for _ in range(STEPS):
                step(kernels)
            times[kernels].append((time.perf_counter() - start) / STEPS * 1e3)
    fused.applies = real
    return statistics.median(times[True]), statistics.median(times[False])


def fused_step_ms(name: str, rounds: int) -> float:
    """The median step ms of version `name` through the fused kernels, in this process."""
    import torch
    import torch.nn.functional as F

    from mnist_tui.core import memory_format, nets
    from mnist_tui.core.device import keep_freed_memory
    from mnist_tui.core.optim import make_optimizer
    from mnist_tui.core.versions import get_version

    keep_freed_memory()
    torch.manual_seed(0)
    x = torch.randn(BATCH, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    version = get_version(name)
    model = version.build().to(memory_format=torch.channels_last).train()
    memory_format.nchw_batch_norms(model, torch.device("cpu"), "fp32", nets.fused_batch_norms(model))
    optimizer = make_optimizer(version.config(), model.parameters())
    times = []
    for i in range(rounds + 1):  # the first round warms up
        start = time.perf_counter()
        for _ in range(STEPS):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        if i:
            times.append((time.perf_counter() - start) / STEPS * 1e3)
    return statistics.median(times)


ONE_SOURCE = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from mnist_tui.core import fused
fused.SOURCE = Path({source!r})
assert fused.status() == "fused", fused.status()
from benchmarks.fused import fused_step_ms
print(fused_step_ms({name!r}, {rounds}))
"""


def compare_sources(against: Path, versions: list[str], rounds: int, pairs: int) -> None:
    """The fused step with kernels/bn_pool.c and with `against`, alternated in fresh processes."""
    from mnist_tui.core import fused

    sources = {"this": fused.SOURCE, "against": against.resolve()}
    print(f"\nfused fp32 training step, batch {BATCH}, {pairs} alternated pairs of fresh processes (median of {rounds} x {STEPS} steps each):\n")
    print(f"| version | {fused.SOURCE.name} (ms) | {against.name} (ms) | median ratio |")
    print("|---|---|---|---:|")
    for name in versions:
        got: dict[str, list[float]] = {"this": [], "against": []}
        for pair in range(pairs):
            for which in ("this", "against") if pair % 2 == 0 else ("against", "this"):
                code = ONE_SOURCE.format(root=str(ROOT), source=str(sources[which]), name=name, rounds=rounds)
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
                got[which].append(float(out.strip().splitlines()[-1]))
        ratio = statistics.median(got["this"]) / statistics.median(got["against"])
        cells = [", ".join(f"{t:.1f}" for t in got[k]) for k in ("this", "against")]
        print(f"| {name} | {cells[0]} | {cells[1]} | {ratio:.3f} |", flush=True)


def ready_seconds() -> tuple[str, str]:
    """fused.status()'s seconds in a fresh process: with an empty cache, then with its result."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "MNIST_TUI_CACHE": cache, "PYTHONPATH": str(ROOT)}
        cold = subprocess.run([sys.executable, "-c", READY], capture_output=True, text=True, env=env, check=True).stdout.strip()
        warm = subprocess.run([sys.executable, "-c", READY], capture_output=True, text=True, env=env, check=True).stdout.strip()
    return cold, warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=["v1", "v2", "v3", "v4"])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--against", type=Path, help="another bn_pool.c to compare the fused step with")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--isa", choices=("native", "avx2"), default="native", help="cap the vector instructions (avx2: as an AVX2-only CPU)")
    args = parser.parse_args()
    from benchmarks import isa

    isa.ensure(args.isa)  # read when the libraries load: before torch is imported

    import torch

    from benchmarks.accuracy import cpu_model
    from benchmarks.isa import cpu_flags, describe
    from mnist_tui.core import fused
    from mnist_tui.core.hardware import cpu_bf16_native

    print(
        f"machine: {cpu_model()} ({cpu_flags()}; native bf16: {'yes' if cpu_bf16_native() else 'no'}), {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, python {platform.python_version()}; kernels: {fused.status()}\n"
        f"instruction set: {describe(args.isa)}; ATen capability {torch.backends.cpu.get_cpu_capability()}"
    )
    if not fused.available():
        return 1
    if args.against is not None:
        compare_sources(args.against, args.versions, args.rounds, args.pairs)
        return 0
    print(f"\nfp32 training step, batch {BATCH}, medians of {args.rounds} rounds of {STEPS} steps, alternated:\n")
    print("| version | fused kernels | PyTorch's operations | PyTorch / fused |")
    print("|---|---:|---:|---:|")
    for name in args.versions:
        with_kernels, without = steps(name, args.rounds)
        print(f"| {name} | {with_kernels:.1f} ms | {without:.1f} ms | {without / with_kernels:.2f}x |", flush=True)
    cold, warm = ready_seconds()
    print(f"\nmaking the kernels ready in a fresh process (fused.status()): empty cache {cold}; cached {warm}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
