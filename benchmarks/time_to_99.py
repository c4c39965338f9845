"""Time to 99% test accuracy on two CPU cores, whole process: command start to exit.

    .venv/bin/python benchmarks/time_to_99.py --tune              # candidates on held-out images
    .venv/bin/python benchmarks/time_to_99.py --tune --candidates "round 2" --tune-seeds 1,2,3
    .venv/bin/python benchmarks/time_to_99.py --seeds 1,2,3       # the chosen one, on the test set

--tune trains each candidate on the first 50,000 training images and scores it on the held-out
last 10,000 (`--holdout 10000`), for --tune-seeds (default 1,2): the test set is not looked at
to choose. --seeds runs the chosen recipe (RECIPE) as a user would, `mnist-tui train ...
--target 99` on all 60,000 images in fp32, one process per seed, and reports for each the
epoch that reached 99.0% (or none), the final test accuracy and the wall time from the command
starting to its exit (imports, data check, training, each epoch's test pass, the checkpoints).
`--isa avx2` runs everything as an AVX2-only CPU would (benchmarks/isa.py). Both print a
markdown table and append it to benchmarks/results/time_to_99.md.
"""

from __future__ import annotations

import argparse
import datetime
import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quick import cpu_model, one_run  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "time_to_99.md"
NO_AUG = ["--rotate", "0", "--translate", "0", "--scale", "0"]

# Two-epoch candidates: the quick recipe's (v4, one-cycle, batch 128, lr 0.1, no augmentation)
# takes three epochs, about 22 s here; two fit in 20 s if the second ends at 99%.
QUICK_V3 = ["--model", "v3", "--scheduler", "onecycle", "--optimizer", "sgd", "--batch-size", "128", "--lr", "0.1", "--dropout", "0"]
CANDIDATES = [
    ("v4 2 ep, b128, lr .1", ["--quick", "--epochs", "2"]),
    ("v4 2 ep, b64, lr .1", ["--quick", "--epochs", "2", "--batch-size", "64"]),
    ("v4 2 ep, b192, lr .15", ["--quick", "--epochs", "2", "--batch-size", "192", "--lr", "0.15"]),
    ("v4 2 ep, b256, lr .2", ["--quick", "--epochs", "2", "--batch-size", "256", "--lr", "0.2"]),
    ("v4 2 ep, b256, lr .3", ["--quick", "--epochs", "2", "--batch-size", "256", "--lr", "0.3"]),
    ("v3 2 ep, b128, lr .1", [*QUICK_V3, "--epochs", "2"]),
    # A second round around the chosen one, seeds 1-3 (--candidates "round 2"):
    ("round 2: v4 2 ep, b128, lr .1", ["--quick", "--epochs", "2"]),
    ("round 2: v4 2 ep, b128, lr .15", ["--quick", "--epochs", "2", "--lr", "0.15"]),
    ("round 2: v4 2 ep, b128, lr .2", ["--quick", "--epochs", "2", "--lr", "0.2"]),
    ("round 2: v4 2 ep, b128, lr .1, wd 5e-4", ["--quick", "--epochs", "2", "--weight-decay", "5e-4"]),
    ("round 2: v4 2 ep, b128, lr .1, momentum .95", ["--quick", "--epochs", "2", "--momentum", "0.95"]),
    ("round 2: v4 2 ep, b128, lr .1, momentum .85", ["--quick", "--epochs", "2", "--momentum", "0.85"]),
    ("round 2: v4 2 ep, b128, lr .15, wd 5e-4", ["--quick", "--epochs", "2", "--lr", "0.15", "--weight-decay", "5e-4"]),
]

# The chosen recipe: the most accurate candidate on the held-out images whose two epochs on
# 60,000 images can end within 20 s. First round (benchmarks/results/time_to_99.md, 2026-12-07,
# Intel Xeon, seeds 1-2): batch 128 at lr 0.1 (99.03%; batches of 64 scored 99.12% but took
# 20.7 s on 50,000 images, v3 23.4 s). Second round around it (seeds 1-3): lr 0.15 and 0.2 tie
# at 99.04% (lr 0.1: 98.98%), lr 0.15 with every seed at 99.00% or above, so lr 0.15.
RECIPE = ["--quick", "--epochs", "2", "--lr", "0.15"]
REACHED = re.compile(r"; reached \S+% at epoch (\d+)")  # the finished line's words (present.training.target_words)


def tune(seeds: list[int], tmp: Path, only: str = "") -> list[str]:
    """Each candidate whose label contains `only` (all of the first round by default)."""
    rows = []
    for label, args in CANDIDATES:
        if (only not in label) if only else label.startswith("round 2"):
            continue
        runs = [one_run([*args, *NO_AUG, "--holdout", "10000", "--seed", str(s), "--precision", "fp32"], tmp) for s in seeds]
        accs = " / ".join(f"{acc:.2f}" for acc, _, _ in runs)
        rows.append(f"| {label} | {accs} | {statistics.mean(a for a, _, _ in runs):.2f} | {statistics.median(w for _, w, _ in runs):.1f} |")
        print(rows[-1], flush=True)
    return rows


def seeds_on_test(seeds: list[int], tmp: Path) -> list[str]:
    rows = []
    for seed in seeds:
        acc, wall, out = one_run([*RECIPE, "--target", "99", "--seed", str(seed), "--precision", "fp32"], tmp, whole=True)
        reached = REACHED.search(out)
        at = f"epoch {reached.group(1)}" if reached else "not reached"
        rows.append(f"| {seed} | {at} | {acc:.2f} | {wall:.1f} | {'yes' if reached and wall <= 20 else 'no'} |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--tune-seeds", default="1,2")
    parser.add_argument("--candidates", default="", metavar="TEXT", help="with --tune: the candidates whose label holds TEXT (e.g. 'round 2')")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native", help="cap the vector instructions (avx2: as an AVX2-only CPU)")
    args = parser.parse_args()
    from benchmarks import isa

    isa.ensure(args.isa)
    import torch

    machine = f"{cpu_model()} ({isa.cpu_flags()}), instruction set {isa.describe(args.isa)}, {torch.get_num_threads()} threads, torch {torch.__version__}, fp32"
    with tempfile.TemporaryDirectory() as tmp:
        if args.tune:
            seeds = [int(s) for s in args.tune_seeds.split(",")]
            title = f"Two-epoch candidates on 50,000 training images, scored on the held-out last 10,000 (seeds {args.tune_seeds}; {machine})"
            header = ["| candidate | held-out acc % per seed (final epoch) | mean | median wall s |", "|---|---|---:|---:|"]
            rows = tune(seeds, Path(tmp), args.candidates)
        else:
            title = f"`mnist-tui train {' '.join(RECIPE)} --target 99 --precision fp32`, all 60,000 images, test set ({machine})"
            header = ["| seed | 99.0% reached at | final test acc % | wall s (command start to exit) | within 20 s |", "|---|---|---:|---:|---|"]
            rows = seeds_on_test([int(s) for s in args.seeds.split(",")], Path(tmp))
    table = "\n".join([f"### {title}", "", f"{datetime.date.today()}", "", *header, *rows, ""])
    print("\n" + table)
    with open(RESULTS, "a") as fh:
        fh.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
