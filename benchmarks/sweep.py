"""A real sweep, end to end: search a version's recipe on held-out images, then check the best
recipe against the version's own on the test set, over several seeds.

    .venv/bin/python benchmarks/sweep.py [--model v4] [--trials 24] [--epochs 5] [--seeds 1 2 3] [--write]

1. `mnist-tui sweep --model M --trials T --epochs E --holdout 10000 --prune --precision fp32`
   in a runs folder of its own: every trial trains on the first 50,000 training images and is
   scored on the last 10,000 (the test set plays no part). Its first trial is the version's
   own recipe at E epochs, so the table shows whether the search beat it there. Wall time
   from the command's start to its exit.
2. For each seed: the best trial's settings and the version's recipe, each trained for E
   epochs on all 60,000 training images (`mnist-tui train ... --precision fp32`, which one
   goes first alternating), final-epoch test accuracy and wall time. Nothing is chosen on
   these numbers: they are reported, whichever way they fall.

Prints the tables (the machine, its CPU flags and the commands named); --write appends them
to benchmarks/results/sweep.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.concurrency import lscpu  # noqa: E402  # after the path is set

CLI = [sys.executable, "-m", "mnist_tui"]


def run_sweep(args: argparse.Namespace, runs: Path) -> tuple[list[str], float]:
    """The sweep command and its wall seconds (its output goes to this terminal)."""
    command = ["sweep", "--model", args.model, "--trials", str(args.trials), "--epochs", str(args.epochs), "--holdout", "10000"]
    command += ["--prune", "--precision", "fp32", "--seed", str(args.sampler_seed), *limit(args), "--study", args.study, "--runs", str(runs)]
    started = time.perf_counter()
    subprocess.run([*CLI, *command], cwd=ROOT, check=True)
    return command, time.perf_counter() - started


def limit(args: argparse.Namespace) -> list[str]:
    """--limit N --test-limit N for a smoke run of this script (the figures need neither)."""
    return ["--limit", str(args.limit), "--test-limit", "500"] if args.limit else []


def options(params: dict[str, object]) -> list[str]:
    """A trial's settings as `mnist-tui train` options."""
    out: list[str] = []
    for name, value in params.items():
        out += [f"--{name.replace('_', '-')}", str(value)]
    return out


def train(model: str, epochs: int, seed: int, extra: list[str], runs: Path) -> tuple[float, float]:
    """(final test accuracy %, wall seconds) of one fp32 run on all training images."""
    command = [*CLI, "train", "--model", model, "--epochs", str(epochs), "--seed", str(seed), "--precision", "fp32", "--runs", str(runs), "--now", *extra]
    started = time.perf_counter()
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - started
    finished = [line for line in out.splitlines() if line.startswith("finished:")]
    accuracy = float(finished[-1].split("final test acc ")[1].split("%")[0])
    return accuracy, wall


def trials_table(report) -> list[str]:
    from mnist_tui.present.sweeps import score_text, settings_text

    lines = ["| trial | state | held-out accuracy | time | settings |", "|---:|---|---:|---:|---|"]
    for row in report.trials:
        note = " (the recipe)" if row.number == 0 else ""
        lines.append(f"| {row.number}{note} | {row.state} | {score_text(row.value, report.metric)} | {row.seconds or 0:.0f} s | {settings_text(row.params)} |")
    return lines


def check_on_test(args: argparse.Namespace, best: dict[str, object], runs: Path) -> list[str]:
    """Best against the recipe, per seed, on the test set."""
    lines = ["| seed | best trial's settings: test acc | wall | the recipe: test acc | wall |", "|---:|---:|---:|---:|---:|"]
    swept, recipe = [], []
    for i, seed in enumerate(args.seeds):
        order = [("best", options(best)), ("recipe", [])]
        results = {}
        for which, extra in order if i % 2 == 0 else reversed(order):
            results[which] = train(args.model, args.epochs, seed, [*extra, *limit(args)], runs)
            print(f"seed {seed} {which}: {results[which][0]:.2f}% in {results[which][1]:.1f} s", flush=True)
        swept.append(results["best"][0])
        recipe.append(results["recipe"][0])
        lines.append(f"| {seed} | {results['best'][0]:.2f}% | {results['best'][1]:.1f} s | {results['recipe'][0]:.2f}% | {results['recipe'][1]:.1f} s |")
    lines.append(f"| mean | **{statistics.mean(swept):.3f}%** | | **{statistics.mean(recipe):.3f}%** | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="v4")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--sampler-seed", type=int, default=1)
    parser.add_argument("--study", default=None)
    parser.add_argument("--runs", type=Path, default=None, help="runs folder (default: a new temporary one)")
    parser.add_argument("--limit", type=int, help="train on this many images only: a smoke run of the script, not a figure")
    parser.add_argument("--write", action="store_true", help="append the tables to benchmarks/results/sweep.md")
    args = parser.parse_args()
    args.study = args.study or f"{args.model}-{args.epochs}ep-bench"
    runs = args.runs or Path(tempfile.mkdtemp(prefix="mnist-tui-sweep-"))
    from mnist_tui.core.sweep.report import read_sweep

    command, wall = run_sweep(args, runs)
    report = read_sweep(runs, args.study)
    assert report.best is not None, "no trial completed"
    recipe_row = next((r for r in report.trials if r.number == 0), None)
    check = check_on_test(args, dict(report.best.params), runs / "check")
    name, flags = lscpu()
    isa = " ".join(sorted({f for f in flags.split() if f == "avx2" or f.startswith("avx512")}))
    text = "\n".join(
        [
            f"### A {args.model} sweep, {args.trials} trials of {args.epochs} epochs: {name}, 2 threads, fp32 ({isa})",
            "",
            f"{datetime.date.today()}; `mnist-tui {' '.join(command[:-2])}`: {wall / 60:.1f} min wall, {report.counts()}.",
            f"The recipe (trial 0) scored {recipe_row.value if recipe_row else float('nan'):.2f}% on the held-out images; the best, trial "
            f"{report.best.number}, {report.best.value:.2f}%. Its test accuracy as the sweep measured it once, at the end: "
            f"{report.best_test.test_acc if report.best_test else float('nan'):.2f}%.",
            "",
            *trials_table(report),
            "",
            f"The best trial's settings against the recipe, {args.epochs} epochs on all 60,000 images, test set, fp32 "
            f"(`mnist-tui train --model {args.model} --epochs {args.epochs} --seed S --precision fp32 [settings]`):",
            "",
            *check,
            "",
            "best settings: " + json.dumps(report.best.params),
            "",
        ]
    )
    print(text)
    if args.write:
        with (ROOT / "benchmarks" / "results" / "sweep.md").open("a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
