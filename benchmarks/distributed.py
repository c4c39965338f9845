"""One run on 1 process and on N processes (torch.distributed DDP through `--nproc`), side by
side: wall time, training speed and final test accuracy, all from the runs themselves.

    .venv/bin/python benchmarks/distributed.py                      # v4, 1 epoch, 1 and 2 processes
    .venv/bin/python benchmarks/distributed.py --model v2 --epochs 2 --nproc 1 2 4

Each configuration trains `mnist-tui train --precision fp32 --device cpu` on all 60,000
images and evaluates all 10,000 test images; the table goes to stdout and is appended to
`benchmarks/results/distributed.md` with the machine named. On a 2-core CPU no speed-up is
expected (the point of the N-process path there is that it trains the same run; see the
README's "Scaling out").
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "distributed.md"


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor()
    )
    flags = Path("/proc/cpuinfo").read_text()
    import os

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="v4")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
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
