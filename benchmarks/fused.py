"""The fused CPU kernels (core/fused.py) against PyTorch's operations, and what building them costs.

Prints, per version, the engine's fp32 training step on the CPU (batch 128, channels_last,
the engine's layout rules, the recipe's optimizer) with the fused kernels and without them,
alternated in one process (medians of ROUNDS rounds of STEPS steps); then the seconds a fresh
process takes to make the kernels ready, with an empty cache (compile, load, check) and with
the cache a first run left (load, check).

    python benchmarks/fused.py [--versions v1 v2 v3 v4] [--rounds 8]
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
    args = parser.parse_args()

    import torch

    from benchmarks.accuracy import cpu_model
    from mnist_tui.core import fused
    from mnist_tui.core.hardware import cpu_bf16_native

    print(
        f"machine: {cpu_model()} (native bf16: {'yes' if cpu_bf16_native() else 'no'}), {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, python {platform.python_version()}; kernels: {fused.status()}"
    )
    if not fused.available():
        return 1
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
