"""The quick recipe: what a first run reaches, and how long it takes, start to finish.

    .venv/bin/python benchmarks/quick.py --tune            # candidates on held-out images
    .venv/bin/python benchmarks/quick.py --seeds 1,2,3     # the chosen recipe on the test set

--tune trains each candidate recipe on the first 50,000 training images and evaluates it
on the last 10,000 (`--holdout 10000`): the test set is never looked at to choose. --seeds
runs `mnist-tui train --quick` as a user would, one process per seed, and reports the
final epoch's test accuracy and the wall time from the command starting to its exit
(data check, set-up, training, every epoch's evaluation of all 10,000 test images, the
checkpoints). Both print a markdown table and append it to benchmarks/results/quick.md.
Precision defaults to fp32: what every CPU without native bf16 gets. --seeds in fp32 or bf16
also writes the quick preset's figures (mean seconds per run in that mode; the accuracies in
fp32) to mnist_tui/core/measured.json, which the registry and the app read.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "quick.md"

# Candidates tried on held-out images: (label, mnist-tui train arguments).
CANDIDATES = [
    ("v4 3 ep, b64, lr .05, aug", ["--model", "v4", "--epochs", "3"]),
    ("v4 3 ep, b64, lr .05, no aug", ["--model", "v4", "--epochs", "3", "--rotate", "0", "--translate", "0", "--scale", "0"]),
    (
        "v4 3 ep, b128, lr .1, no aug",
        ["--model", "v4", "--epochs", "3", "--batch-size", "128", "--lr", "0.1", "--rotate", "0", "--translate", "0", "--scale", "0"],
    ),
    ("v4 3 ep, b128, lr .05, no aug", ["--model", "v4", "--epochs", "3", "--batch-size", "128", "--rotate", "0", "--translate", "0", "--scale", "0"]),
    ("v4 2 ep, b64, lr .05, no aug", ["--model", "v4", "--epochs", "2", "--rotate", "0", "--translate", "0", "--scale", "0"]),
    ("v3 2 ep, b128, lr .05, no aug", ["--model", "v3", "--epochs", "2", "--batch-size", "128", "--rotate", "0", "--translate", "0", "--scale", "0"]),
]

EPOCH = re.compile(r"^epoch (\d+)/(\d+) .* test loss \S+ acc ([\d.]+)%")


def one_run(args: list[str], runs: Path, whole: bool = False) -> tuple[float, float, str]:
    """(final-epoch accuracy %, wall seconds, the run's start line, or with `whole` all it
    printed) of one process."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "mnist_tui", "train", *args, "--device", "cpu", "--runs", str(runs)], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"mnist-tui train {' '.join(args)} failed:\n{out.stderr}")
    lines = out.stdout.splitlines()
    epochs = [EPOCH.match(line) for line in lines]
    last = [m for m in epochs if m][-1]
    return float(last.group(3)), wall, out.stdout if whole else lines[0]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def record_measured(results: list[tuple[float, float]], precision: str, note: str) -> None:
    """The quick preset's figures into measured.json: mean wall seconds per run in `precision`,
    and the accuracies per seed when that is fp32 (what the registry shows for the preset)."""
    from mnist_tui.core import measured

    if precision not in measured.PRECISIONS:
        print(f"--precision {precision}: not written to measured.json (its figures are per numeric mode)")
        return
    accuracy = [acc for acc, _ in results] if precision == "fp32" else None
    seconds = {precision: sum(wall for _, wall in results) / len(results)}
    print(f"written to {measured.record('presets', 'quick', accuracy=accuracy, seconds=seconds, note=note)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "auto", "bf16"))
    args = parser.parse_args()

    import torch

    seeds = [int(s) for s in args.seeds.split(",")]
    machine = f"{cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {args.precision}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.tune:
            title = f"Quick-recipe candidates on 50,000 training images, evaluated on the held-out last 10,000 (seed 1; {machine})"
            header = "| candidate | held-out acc % (final epoch) | wall s |"
            for label, cand in CANDIDATES:
                acc, wall, _ = one_run([*cand, "--holdout", "10000", "--seed", "1", "--precision", args.precision], Path(tmp))
                rows.append(f"| {label} | {acc:.2f} | {wall:.1f} |")
                print(rows[-1], flush=True)
        else:
            title = f"`mnist-tui train --quick --precision {args.precision}`, all 60,000 training images, test set ({machine})"
            header = "| seed | final test acc % | wall s (process start to exit) |"
            results = []
            for seed in seeds:
                acc, wall, _ = one_run(["--quick", "--seed", str(seed), "--precision", args.precision], Path(tmp))
                results.append((acc, wall))
                rows.append(f"| {seed} | {acc:.2f} | {wall:.1f} |")
                print(rows[-1], flush=True)
            record_measured(results, args.precision, f"benchmarks/quick.py --seeds {args.seeds}, {machine}, {datetime.date.today()}")
    table = "\n".join([f"### {title}", "", f"{datetime.date.today()}", "", header, "|---|---:|---:|", *rows, ""])
    print("\n" + table)
    with open(RESULTS, "a") as fh:
        fh.write(table + "\n")


if __name__ == "__main__":
    main()
