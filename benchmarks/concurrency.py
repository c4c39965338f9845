"""Several runs on one machine (issue 34): one run alone, two started at once, two queued.

    .venv/bin/python benchmarks/concurrency.py                    # the issue's measurement
    .venv/bin/python benchmarks/concurrency.py --limit 1280 --test-limit 100 --modes alone,now
    OMP_WAIT_POLICY=ACTIVE .venv/bin/python benchmarks/concurrency.py --modes now   # spinning

Each mode trains v2 for 1 epoch on the first --limit training images (default 12,800), tested
on the first --test-limit test images (500), in fp32 on the CPU, as the issue measured it, each
in a fresh runs folder, through the `mnist-tui` command as a user would start it:

  alone     `train` in the foreground, one run
  now       two `train --now` started together: the second takes its share of the cores
            (threads = cores / live trainers, decided as each starts) and waits passively
  unshared  two `train` started together in two runs folders, so that neither sees the other:
            each takes every core, as every run did before the queue (the issue's 51.8 s)
  queued    two `train --queue` started together: the first starts at once, the second when
            the first ends (its trainer starts it)

A mode's wall time runs from starting its commands to the end of its last run (for `queued`,
the last run's status.json); each run's own figures are its epoch's seconds and images per
second (metrics.jsonl) and its threads (config.json). The targets compare each two-run mode
with the two runs one after the other, taken as twice `alone`'s wall time: `now` within 1.15x,
`queued` within 1.05x. The table, the machine (lscpu's model and flags), the load average and
the command are appended to benchmarks/results/concurrency.md. With --repeat N the modes are
measured N times in turn and each mode's median try is kept (the machine's load varies).
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "concurrency.md"
MODES = ("alone", "now", "unshared", "queued")
TARGETS = {"now": 1.15, "unshared": 1.15, "queued": 1.05}  # x the two runs one after the other

from mnist_tui.core.store import FINAL, read_run  # noqa: E402


@dataclass
class Measured:
    mode: str
    wall: float
    runs: list[dict]


def _train(args: argparse.Namespace, runs: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mnist_tui", "train", "--model", "v2", "--epochs", "1", "--limit", str(args.limit),
        "--test-limit", str(args.test_limit), "--precision", "fp32", "--device", "cpu", "--runs", str(runs), *extra,
    ]  # fmt: skip


def _run_figures(run_dir: Path) -> dict:
    record = read_run(run_dir)
    epoch = record.metrics[-1] if record.metrics else None
    return {
        "run": run_dir.name,
        "status": record.status,
        "threads": (record.config.get("config") or {}).get("threads"),
        "seconds": epoch.seconds if epoch else None,
        "images_per_s": epoch.images_per_s if epoch else None,
    }


def _runs_in(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders if folder.is_dir() for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _together(commands: list[list[str]]) -> float:
    """Start the commands at once; the seconds until the last has ended."""
    started = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    for proc in procs:
        _out, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"{' '.join(proc.args)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return time.perf_counter() - started


def _until_ended(runs: Path, count: int, started: float, timeout: float = 3600) -> float:
    """Seconds from `started` until `count` runs in `runs` have ended (polled)."""
    while time.perf_counter() - started < timeout:
        folders = _runs_in(runs)
        if len(folders) >= count and all(read_run(p).status in FINAL for p in folders):
            return time.perf_counter() - started
        time.sleep(0.1)
    raise SystemExit(f"the runs in {runs} did not end within {timeout:.0f} s")


def measure(mode: str, args: argparse.Namespace, base: Path) -> Measured:
    runs = base / mode
    if mode == "alone":
        wall = _together([_train(args, runs)])
        folders = _runs_in(runs)
    elif mode == "now":
        wall = _together([_train(args, runs, "--now"), _train(args, runs, "--now")])
        folders = _runs_in(runs)
    elif mode == "unshared":
        wall = _together([_train(args, runs / "a"), _train(args, runs / "b")])
        folders = _runs_in(runs / "a", runs / "b")
    else:
        started = time.perf_counter()
        _together([_train(args, runs, "--queue"), _train(args, runs, "--queue")])
        wall = _until_ended(runs, 2, started)
        folders = _runs_in(runs)
    return Measured(mode, wall, [_run_figures(p) for p in folders])


def _row(m: Measured, sequential: float | None) -> list[str]:
    ratio = f"{m.wall / sequential:.2f}x" if sequential and m.mode != "alone" else "-"
    target = TARGETS.get(m.mode)
    verdict = "" if target is None or not sequential else (" ok" if m.wall / sequential <= target else f" (target {target}x)")
    lines = []
    for i, r in enumerate(m.runs):
        seconds = f"{r['seconds']:.1f}" if r["seconds"] is not None else "-"
        rate = f"{r['images_per_s']:,.0f}" if r["images_per_s"] is not None else "-"
        first = i == 0
        lines.append(
            f"| {m.mode if first else ''} | {f'{m.wall:.1f}' if first else ''} | {ratio + verdict if first else ''} | {r['run'][-6:]} | {r['threads']} | {seconds} | {rate} | {r['status']} |"
        )
    return lines


HEADER = "| mode | wall s | vs one after the other | run | threads | epoch s | img/s | status |\n|---|---:|---:|---|---:|---:|---:|---|"


def lscpu() -> tuple[str, str]:
    """(model name, flags) as lscpu prints them."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "?", "(lscpu not available)"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return fields.get("Model name", "?").strip(), fields.get("Flags", "").strip()


def write(measured: list[Measured], args: argparse.Namespace, load_before: tuple[float, float, float], argv: list[str] | None) -> str:
    import torch

    alone = next((m for m in measured if m.mode == "alone"), None)
    sequential = 2 * alone.wall if alone else None
    name, flags = lscpu()
    command = " ".join(["benchmarks/concurrency.py", *(sys.argv[1:] if argv is None else argv)])
    wait = os.environ.get(
        "OMP_WAIT_POLICY", "libgomp's default for a trainer that starts alone, PASSIVE for one that starts beside another (mnist-tui's choice)"
    )
    load_after = os.getloadavg()
    text = "\n".join(
        [
            f"### Several runs at once: {name}, {os.cpu_count()} CPUs, torch {torch.__version__}, Python {platform.python_version()}",
            "",
            f"{datetime.date.today().isoformat()}; `.venv/bin/python {command}`",
            "",
            HEADER,
            *[line for m in measured for line in _row(m, sequential)],
            "",
            f"v2, 1 epoch, {args.limit:,} training images, {args.test_limit:,} test images, fp32 on the CPU; OMP_WAIT_POLICY {wait}; "
            f"each mode's median of {args.repeat} tr{'y' if args.repeat == 1 else 'ies'}. "
            f"Wall time from starting the commands to the end of the mode's last run (torch's import and MNIST's load included); "
            f"one after the other = twice alone's wall time{f' = {sequential:.1f} s' if sequential else ''}. "
            f"Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (this process at niceness {os.nice(0)}): "
            f"above the machine's own work, other processes shared the cores.",
            "",
            f"CPU flags: {flags}",
            "",
        ]
    )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=12_800, help="training images (default: 12,800, as the issue measured)")
    parser.add_argument("--test-limit", type=int, default=500, help="test images (default: 500)")
    parser.add_argument("--modes", default="alone,now,queued", help=f"comma-separated, of {', '.join(MODES)} (default: alone,now,queued)")
    parser.add_argument("--repeat", type=int, default=1, help="measure the modes this many times, in turn, and keep each mode's median wall time")
    parser.add_argument("--no-record", action="store_true", help="print the table only; do not append it to benchmarks/results/concurrency.md")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown modes {', '.join(unknown)}")
    load_before = os.getloadavg()
    tries: dict[str, list[Measured]] = {mode: [] for mode in modes}
    for attempt in range(args.repeat):  # in turn, so that a change in the load falls on every mode
        for mode in modes:
            with tempfile.TemporaryDirectory(prefix="concurrency-") as base:
                tries[mode].append(measure(mode, args, Path(base)))
            print(f"{mode} #{attempt + 1}: {tries[mode][-1].wall:.1f} s; " + json.dumps(tries[mode][-1].runs), flush=True)
    measured = [sorted(found, key=lambda m: m.wall)[len(found) // 2] for found in tries.values()]  # each mode's median try
    text = write(measured, args, load_before, argv)
    print("\n" + text)
    if not args.no_record:
        with open(RESULTS, "a") as fh:
            fh.write(("\n" if RESULTS.exists() and RESULTS.stat().st_size else "") + text)


if __name__ == "__main__":
    main()
