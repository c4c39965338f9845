"""Final test accuracy of each version's default recipe on the full data, over several seeds.

    .venv/bin/python benchmarks/accuracy.py v3:1,2,3 v4:1,2,3 v1:1,2 v2:1,2
    .venv/bin/python benchmarks/accuracy.py v3:1,2 --precision fp32      # the fp32 check
    .venv/bin/python benchmarks/accuracy.py --table                      # redraw the table only

Each argument is VERSION:SEEDS. Every run trains the version with its registry recipe on all
60,000 training images and evaluates the 10,000 test images after every epoch; the number
reported is the LAST epoch's test accuracy, never the best. Nothing here looks at the test
set to choose anything. Each finished run is appended to `benchmarks/results/accuracy.csv`
at once (so an interrupted benchmark keeps what it finished, and a rerun skips pairs already
there unless --again; the CSV keeps every run, the table each seed's newest), and the
markdown table `accuracy.md` is rebuilt from that CSV: one row per version and numeric
mode, every seed listed, mean ± sample std, wall time per run. Each version's figures (its
accuracies in the default mode, its seconds per epoch in the mode run) are then written to
mnist_tui/core/measured.json, which the registry and the app read.
The runs themselves are saved in --runs (default runs/) so the TUI's Runs screen shows them.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
FIELDS = (
    "version",
    "params",
    "mult_adds",
    "epochs",
    "precision",
    "seed",
    "final_test_acc",
    "wall_s",
    "train_img_s",
    "device",
    "threads",
    "torch",
    "commit",
    "run_id",
    "date",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        # The results this script writes itself do not make the code "dirty".
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_jobs(specs: list[str]) -> list[tuple[str, int]]:
    from mnist_tui.core.versions import VERSIONS

    jobs = []
    for spec in specs:
        name, _, seeds = spec.partition(":")
        if name not in VERSIONS:
            raise SystemExit(f"accuracy.py: unknown version {name!r} (choose from {', '.join(VERSIONS)})")
        try:
            jobs += [(name, int(s)) for s in (seeds or "1").split(",")]
        except ValueError:
            raise SystemExit(f"accuracy.py: seeds must be whole numbers, got {seeds!r}") from None
    return jobs


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def train_one(name: str, seed: int, precision: str, runs: str | None, epochs: int | None, limit: int | None) -> dict:
    import torch

    from mnist_tui.core.events import EpochFinished, RunFailed, RunFinished, RunStarted
    from mnist_tui.core.layers import breakdown
    from mnist_tui.core.train import train
    from mnist_tui.core.versions import get_version

    overrides = {"epochs": epochs} if epochs else {}
    config = get_version(name).config(seed=seed, precision=precision, runs_dir=runs, limit=limit, **overrides)
    started = time.perf_counter()
    info, last, speeds = None, None, []
    for ev in train(config, threading.Event()):
        if isinstance(ev, RunStarted):
            info = ev
            print(f"  {name} seed {seed}: {ev.run_id} on {ev.device_name}, {ev.precision}", flush=True)
        elif isinstance(ev, EpochFinished):
            last = ev
            speeds.append(ev.images_per_s)
            print(f"    epoch {ev.epoch:2d}/{ev.epochs}  test acc {ev.test_acc:.2f}%  {ev.seconds:.1f}s", flush=True)
        elif isinstance(ev, RunFailed):
            raise SystemExit(f"accuracy.py: {name} seed {seed} failed: {ev.reason}")
        elif isinstance(ev, RunFinished) and ev.status != "finished":
            raise SystemExit(f"accuracy.py: {name} seed {seed} ended {ev.status}")
    facts = breakdown(name)
    return {
        "version": name,
        "params": facts.total_params,
        "mult_adds": facts.mult_adds,
        "epochs": last.epochs,
        "precision": info.precision,
        "seed": seed,
        "final_test_acc": f"{last.test_acc:.2f}",
        "wall_s": f"{time.perf_counter() - started:.1f}",
        "train_img_s": f"{statistics.median(speeds):.0f}",
        "device": f"{cpu_model()}, {torch.get_num_threads()} threads" if info.device == "cpu" else info.device_name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "commit": git_commit(),
        "run_id": info.run_id,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    }


def table(rows: list[dict]) -> str:
    """Markdown: one line per (version, precision, epochs, device), every seed shown."""
    from mnist_tui.core.versions import VERSIONS

    newest: dict[tuple, dict] = {}  # a seed trained again (--again) shows its newest result
    for row in rows:
        newest[(row["version"], row["precision"], row["epochs"], row["device"], row["seed"])] = row
    rows = list(newest.values())
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["version"], row["precision"], row["epochs"], row["device"]), []).append(row)
    order = list(VERSIONS)
    lines = [
        "| version | params | mult-adds | epochs | mode | final test acc per seed | mean ± std | wall per run | device |",
        "|---|---:|---:|---:|---|---|---|---:|---|",
    ]
    for (version, precision, epochs, device), group in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]) if kv[0][0] in order else 99, kv[0][1])):
        group.sort(key=lambda r: int(r["seed"]))
        accs = [float(r["final_test_acc"]) for r in group]
        per_seed = ", ".join(f"{a:.2f} (s{r['seed']})" for a, r in zip(accs, group))
        spread = f"{statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else f"{accs[0]:.2f}"
        wall = statistics.mean(float(r["wall_s"]) for r in group)
        lines.append(
            f"| {version} | {int(group[0]['params']):,} | {int(group[0]['mult_adds']) / 1e6:.2f} M | {epochs} | {precision} | "
            f"{per_seed} | {spread} | {wall / 60:.1f} min | {device} |"
        )
    commits = sorted({r["commit"] for r in rows})
    lines.append("")
    lines.append(f"torch {', '.join(sorted({r['torch'] for r in rows}))}; commits {', '.join(commits)}; final-epoch test accuracy, %.")
    return "\n".join(lines) + "\n"


def record_measured(rows: list[dict], names: list[str], mode: str, default_mode: bool, target: Path | None = None) -> None:
    """Each trained version's figures into mnist_tui/core/measured.json, which the registry
    reads: seconds per epoch in `mode` (wall per run / epochs, each seed's newest full run),
    and the accuracies per seed when `mode` is the app's default (--precision auto)."""
    from mnist_tui.core import measured
    from mnist_tui.core.versions import get_version

    for name in dict.fromkeys(names):
        epochs = get_version(name).recipe.epochs
        newest = {r["seed"]: r for r in rows if r["version"] == name and r["precision"] == mode and int(r["epochs"]) == epochs}
        picked = [newest[seed] for seed in sorted(newest, key=int)]
        if not picked:
            continue
        seconds = statistics.mean(float(r["wall_s"]) / epochs for r in picked)
        accuracy = [float(r["final_test_acc"]) for r in picked] if default_mode else None
        note = f"benchmarks/accuracy.py, seeds {', '.join(newest)}, {picked[-1]['device']}, {datetime.date.today()}"
        where = measured.record("versions", name, accuracy=accuracy, seconds={mode: seconds}, note=note, target=target)
        print(f"  {name}: {mode} {seconds:.1f} s/epoch{' and its accuracies' if accuracy else ''} written to {where}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="*", metavar="VERSION:SEEDS", help="e.g. v3:1,2,3 (seeds default to 1)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="numeric mode (default: the app's default, auto)")
    parser.add_argument("--runs", help="runs folder (default: the app's runs/)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for accuracy.csv and accuracy.md")
    parser.add_argument("--again", action="store_true", help="train pairs already in the CSV again (the table then shows the newest)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs (smoke tests only)")
    parser.add_argument("--limit", type=int, help="train on N images (smoke tests only)")
    parser.add_argument("--table", action="store_true", help="only rebuild the markdown table from the CSV")
    args = parser.parse_args()

    args.results.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = args.results / "accuracy.csv", args.results / "accuracy.md"
    if not args.table:
        print(f"# {cpu_model()} · {platform.python_version()} · commit {git_commit()}", flush=True)
        from mnist_tui.core.device import resolve_device, resolve_precision

        for name, seed in parse_jobs(args.jobs):
            mode = resolve_precision(args.precision, resolve_device("auto"), name)  # auto: by measured speed per version
            done = {(r["version"], r["seed"], r["precision"]) for r in read_rows(csv_path)}
            if (name, str(seed), mode) in done and not args.again:
                print(f"  {name} seed {seed} ({mode}) is already in {csv_path.name}; skipped", flush=True)
                continue
            append_row(csv_path, train_one(name, seed, args.precision, args.runs, args.epochs, args.limit))
            md_path.write_text(table(read_rows(csv_path)))
        if not (args.epochs or args.limit):  # smoke runs measure nothing the registry should show
            record_measured(read_rows(csv_path), [name for name, _ in parse_jobs(args.jobs)], mode, args.precision == "auto")
    rows = read_rows(csv_path)
    if rows:
        md_path.write_text(table(rows))
        print(md_path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
