"""One run on 1 process and on N processes (torch.distributed DDP through `--nproc`), side by
side: wall time, training speed and final test accuracy, all from the runs themselves.

    .venv/bin/python benchmarks/distributed.py                      # v4, 1 epoch, 1 and 2 processes
    .venv/bin/python benchmarks/distributed.py --model v2 --epochs 2 --nproc 1 2 4

Each configuration trains `mnist-tui train --precision fp32 --device cpu` on all 60,000
images and evaluates all 10,000 test images; the table goes to stdout and is appended to
`benchmarks/results/distributed.md` with the machine named. On a 2-core CPU no speed-up is
expected (the point of the N-process path there is that it trains the same run; see the
README's "Scaling out").

    .venv/bin/python benchmarks/distributed.py --tolerance --seeds 0 1 2 3 4 5

`--tolerance` measures how far an N-process run may drift from the one-process run, and
why: v4 on --limit images (1,500) in batches of --batch-size (32), 2 epochs, fp32, per seed,
trained four ways that compute the same function and differ only in the rounding of float
sums: one process on all cores (the reference), one process on 1 thread, one process on
PyTorch's batch-norm operations instead of core/fused.py's kernels (MNIST_TUI_FUSED=0), and
--nproc processes. The table (each way's largest difference from the reference over the
epochs) goes to stdout and is appended to `benchmarks/results/distributed_tolerance.md`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "distributed.md"
TOLERANCE = ROOT / "benchmarks" / "results" / "distributed_tolerance.md"


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor()
    )
    flags = Path("/proc/cpuinfo").read_text()
    return f"{cpu}, {os.cpu_count()} cores, {'with' if 'avx512_bf16' in flags else 'without'} AVX512-BF16"


def one(model: str, epochs: int, nproc: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as runs:
        args = [
            "train",
            "--model",
            model,
            "--epochs",
            str(epochs),
            "--seed",
            str(seed),
            "--precision",
            "fp32",
            "--device",
            "cpu",
            "--nproc",
            str(nproc),
            "--runs",
            runs,
        ]
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "mnist_tui", *args], capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"{nproc} processes failed:\n{done.stderr[-2000:]}")
        [run] = [p for p in Path(runs).iterdir() if not p.name.startswith(".")]
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        config = json.loads((run / "config.json").read_text())
    return {
        "nproc": nproc,
        "backend": config.get("backend", "-"),
        "device": config["device_name"],
        "wall": wall,
        "epoch_s": sum(m["seconds"] for m in metrics) / len(metrics),
        "img_s": sum(m["images_per_s"] for m in metrics) / len(metrics),
        "acc": metrics[-1]["test_acc"],
        "loss": metrics[-1]["train_loss"],
    }


# The ways of training the same run that differ only in how float sums are rounded: the
# environment each is trained in, and its --nproc. The first is the reference.
WAYS = {
    "1 process, all cores": ({}, 1),
    "1 process, 1 thread": ({"OMP_NUM_THREADS": "1"}, 1),
    "1 process, PyTorch's batch norm": ({"MNIST_TUI_FUSED": "0"}, 1),
}


def epochs_of(args: list[str], env: dict[str, str], nproc: int) -> list[dict]:
    """The metrics of `mnist-tui train <args> --nproc <nproc>` run in `env` (added to ours)."""
    with tempfile.TemporaryDirectory() as runs:
        command = [sys.executable, "-m", "mnist_tui", "train", *args, "--nproc", str(nproc), "--runs", runs]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env})
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        [run] = [p for p in Path(runs).iterdir() if not p.name.startswith(".")]
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def drift(a: list[dict], b: list[dict]) -> tuple[float, float, float]:
    """b's largest difference from a over the epochs: train loss and test loss (relative, %)
    and test accuracy (points)."""
    return (
        max(abs(y["train_loss"] / x["train_loss"] - 1) * 100 for x, y in zip(a, b)),
        max(abs(y["test_loss"] / x["test_loss"] - 1) * 100 for x, y in zip(a, b)),
        max(abs(y["test_acc"] - x["test_acc"]) for x, y in zip(a, b)),
    )


def tolerance(seeds: list[int], nproc: int, limit: int, batch: int, epochs: int) -> str:
    """The tolerance table (markdown): per seed and way, the drift from the reference."""
    ways = {**WAYS, f"{nproc} processes": ({}, nproc)}
    common = ["--model", "v4", "--epochs", str(epochs), "--limit", str(limit), "--batch-size", str(batch), "--precision", "fp32", "--device", "cpu"]
    lines = [
        f"### v4, {limit:,} images, batch {batch}, {epochs} epochs, fp32, all 10,000 test images · {machine()} · {datetime.date.today()}",
        "",
        f"`.venv/bin/python benchmarks/distributed.py --tolerance --seeds {' '.join(map(str, seeds))} --nproc {nproc} --limit {limit} --batch-size {batch} --epochs {epochs}`",
        "",
        "Each row: that way's largest difference over the epochs from the one-process, all-cores run of the same seed.",
        "",
        "| seed | way | train loss Δ | test loss Δ | test acc Δ | final test acc |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    worst: dict[str, list[float]] = {}
    for seed in seeds:
        runs = {name: epochs_of([*common, "--seed", str(seed)], env, n) for name, (env, n) in ways.items()}
        reference = runs[next(iter(ways))]
        lines.append(f"| {seed} | 1 process, all cores (reference) | | | | {reference[-1]['test_acc']:.2f}% |")
        for name, metrics in list(runs.items())[1:]:
            d = drift(reference, metrics)
            worst[name] = [max(w, v) for w, v in zip(worst.get(name, [0.0] * 3), d)]
            lines.append(f"| {seed} | {name} | {d[0]:.2f}% | {d[1]:.2f}% | {d[2]:.2f} pt | {metrics[-1]['test_acc']:.2f}% |")
        print("\n".join(lines[-len(ways) :]), flush=True)
    lines += ["", "| way | largest train loss Δ | largest test loss Δ | largest test acc Δ |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {w[0]:.2f}% | {w[1]:.2f}% | {w[2]:.2f} pt |" for name, w in worst.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="v4")
    parser.add_argument("--epochs", type=int, default=None, help="1, or 2 with --tolerance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nproc", type=int, nargs="+", default=None, help="1 2, or 2 with --tolerance")
    parser.add_argument("--tolerance", action="store_true", help="measure the drift from the one-process run instead of the speed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--limit", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if args.tolerance:
        table = tolerance(args.seeds, (args.nproc or [2])[-1], args.limit, args.batch_size, args.epochs or 2)
        print(table)
        with TOLERANCE.open("a") as fh:
            fh.write(table + "\n\n")
        return
    args.epochs, args.nproc = args.epochs or 1, args.nproc or [1, 2]
    rows = [one(args.model, args.epochs, n, args.seed) for n in args.nproc]
    lines = [
        f"### {args.model}, {args.epochs} epoch(s), seed {args.seed}, fp32, all 60,000 / 10,000 images · {machine()} · {datetime.date.today()}",
        "",
        "| processes | backend | each process | wall s | s per epoch | train img/s | final test acc | final train loss |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['nproc']} | {r['backend']} | {r['device']} | {r['wall']:.1f} | {r['epoch_s']:.1f} | {r['img_s']:,.0f} | {r['acc']:.2f}% | {r['loss']:.4f} |"
        )
    table = "\n".join(lines)
    print(table)
    with RESULTS.open("a") as fh:
        fh.write(table + "\n\n")


if __name__ == "__main__":
    main()
