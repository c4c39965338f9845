"""fp32 against bf16 autocast, per version, on this CPU: the table `--precision auto` reads.

Per version, the engine's training step (core/train/session.build_session builds the model,
layout, fused kernels, optimizer and step exactly as a run does; each step is the loop's
`step(x, y)` then `optimizer.step()`), at the recipe's batch size on real training images,
without augmentation (it costs the same in both modes), in fp32 and in bf16 autocast,
alternated: after WARMUP steps in each, ROUNDS rounds of --steps steps per mode, the mode
going first alternating; the median round gives the milliseconds per step. Prints a markdown
table headed by the CPU (model, family and model number, vector flags, threads); with
--record, writes each version's figures into measured.json's precision table
(core/measured.py) under this CPU's key (core/hardware.cpu_key), where core/device.py reads
them. OpenMP waits as in a trainer alone on the CPU (hardware.trainer_environment: libgomp's
default; figures recorded before 2026-12-07's evening were taken waiting passively); on a CPU
shared with other work the figures are that work's as much as the modes'.

    .venv/bin/python benchmarks/precision.py [--versions v1 v2 v3 v4 v5] [--steps N] [--rounds N] [--threads N] [--record] [--note TEXT]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.isa import SWITCHES  # noqa: E402  # the environment variables that cap the CPU

MODES = ("fp32", "bf16")
WARMUP = 3  # steps per mode before timing: oneDNN picks and caches its primitives on the first
BATCHES = 8  # distinct training batches cycled through (real images, as a run sees them)
SHOWN_FLAGS = ("avx2", "fma", "avx512", "amx")  # the flag prefixes that decide the kernels' speed


def engine_step(name: str, mode: str, runs: str) -> Callable[[int], None]:
    """A function running the engine's training step of version `name` in `mode` on its i-th
    batch, built as build_session builds a run."""
    from mnist_tui.core.train.session import build_session
    from mnist_tui.core.versions import get_version

    version = get_version(name)
    batch = version.recipe.batch_size
    config = version.config(device="cpu", precision=mode, limit=batch * BATCHES, test_limit=batch, runs_dir=runs, rotate=0.0, translate=0.0, scale=0.0)
    s = build_session(config)
    batches = list(s.train_data.batches(batch, s.order))
    s.model.train()

    def step(i: int) -> None:
        x, y = batches[i % len(batches)]
        s.step(x, y)
        s.optimizer.step()

    return step


def timed(name: str, steps: int, rounds: int, runs: str) -> dict[str, list[float]]:
    """Each round's milliseconds per training step of version `name` in each mode, alternated."""
    run = {mode: engine_step(name, mode, runs) for mode in MODES}
    for mode in MODES:
        for i in range(WARMUP):
            run[mode](i)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for r in range(rounds):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            start = time.perf_counter()
            for i in range(steps):
                run[mode](i)
            times[mode].append((time.perf_counter() - start) / steps * 1e3)
    return times


def machine() -> str:
    """The CPU as the table's header names it: model, key, vector flags, threads, torch."""
    import torch

    from mnist_tui.core import fused, hardware

    flags = [f for f in hardware.cpu_info().get("flags", "").split() if f.startswith(SHOWN_FLAGS)]
    return (
        f"CPU: {hardware.cpu_info().get('model', platform.processor())} (key `{hardware.cpu_key()}`); "
        f"flags: {' '.join(flags) or 'none of ' + '/'.join(SHOWN_FLAGS)}; {torch.get_num_threads()} threads; "
        f"torch {torch.__version__}; fp32 kernels: {fused.status()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=["v1", "v2", "v3", "v4", "v5"])
    parser.add_argument("--steps", type=int, default=8, help="steps per round and mode (default 8)")
    parser.add_argument("--rounds", type=int, default=7, help="alternated rounds (default 7)")
    parser.add_argument("--record", action="store_true", help="write the figures into measured.json's precision table")
    parser.add_argument("--threads", type=int, help="torch's threads (default: as many as a lone trainer takes, every core)")
    parser.add_argument("--note", default="", help="what to record about the conditions (e.g. 'shared machine')")
    args = parser.parse_args()
    capped = [name for name in SWITCHES if os.environ.get(name)]
    if args.record and capped:
        parser.error(f"--record files the figures under this CPU's own key; {', '.join(capped)} cap the CPU, so they would not be its figures")

    from mnist_tui.core.hardware import trainer_environment

    os.environ.update(trainer_environment(args.threads, passive=False))  # as a trainer alone on the CPU runs
    import torch

    from mnist_tui.core import fused, hardware, measured
    from mnist_tui.core.versions import get_version

    print(machine())
    print(f"\ntraining step, the recipe's batch, median of {args.rounds} alternated rounds of {args.steps} steps:\n")
    print("| version | batch | fp32 ms/step (rounds' range) | bf16 ms/step (rounds' range) | bf16 / fp32 | faster |")
    print("|---|---:|---:|---:|---:|---|")
    command = shlex.join(["benchmarks/precision.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory() as runs:
        for name in args.versions:
            rounds = timed(name, args.steps, args.rounds, runs)
            ms = {mode: statistics.median(rounds[mode]) for mode in MODES}
            cells = [f"{ms[mode]:.1f} ({min(rounds[mode]):.1f}-{max(rounds[mode]):.1f})" for mode in MODES]
            batch = get_version(name).recipe.batch_size
            faster = "fp32" if ms["fp32"] < ms["bf16"] else "bf16"
            print(f"| {name} | {batch} | {cells[0]} | {cells[1]} | {ms['bf16'] / ms['fp32']:.2f} | {faster} |", flush=True)
            if args.record:
                about = {
                    "fused": fused.status(),
                    "batch": batch,
                    "threads": torch.get_num_threads(),
                    "date": str(datetime.date.today()),
                    "command": command,
                    "note": args.note,
                }
                measured.record_step_ms(hardware.cpu_key(), name, ms, about=about)
    if args.record:
        print(f"\nrecorded in {measured.path()} under {hardware.cpu_key()!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
