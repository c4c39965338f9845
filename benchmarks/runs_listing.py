"""How long a long history takes to list: `mnist-tui runs` and the Runs screen, N runs each.

    .venv/bin/python benchmarks/runs_listing.py [--counts 1000 2000 3000] [--repeats 3] [--write]

For each N it builds N run folders in the documented format (tests/ui_helpers.write_run,
in a child process so that this one never imports torch: v1-v4, finished and stopped, 1 to
3 epochs, three learning rates), waits until the newest file is older than the index's
racy window (a run listed within 2 s of its last write is read again each time), then:

1. `mnist-tui runs`: the wall time of `python -m mnist_tui runs --runs DIR` (a child
   process, stdout a pipe, so 160 columns), python's start and imports included. Once
   with no index file (the first listing, which writes it), then the median of --repeats
   with it.
2. The Runs screen: a fresh process creates the app on the Runs screen (App.run_test,
   160x50, headless) and times, from creating it, until the table shows its first
   screenful with the summary counting all N runs, and until the table holds all N rows
   (the rest are added a chunk after each refresh). Median of --repeats, index present.

Each figure says how much of the CPUs other processes used meanwhile (from /proc/stat),
so that one measured on a busy machine shows as one. The index lives in a temporary
$MNIST_TUI_CACHE, never the user's. Run it from a checkout of an older commit to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RACY_S = 2.0  # mnist_tui.core.store.index.RACY_NS, in seconds
SIZE = (160, 50)

BUILD = """
import sys
from pathlib import Path
from tests.ui_helpers import write_run

runs, start, stop = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(start, stop):
    stamp = f"{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}"
    write_run(
        runs,
        f"20260101T{stamp}Z-v{i % 4 + 1}-{i:06x}",
        f"v{i % 4 + 1}",
        "stopped" if i % 5 == 0 else "finished",
        [98.0, 99.0, 99.3][: 1 + i % 3],
        created=f"2026-01-01T{stamp[:2]}:{stamp[2:4]}:{stamp[4:]}+00:00",
        lr=(0.01, 0.02, 0.1)[i % 3],
        seed=i % 7,
    )
"""


def build_store(runs: Path, count: int) -> None:
    """`count` run folders under runs (added to those already there, by index)."""
    have = sum(1 for p in runs.iterdir() if p.is_dir()) if runs.exists() else 0
    if have < count:
        subprocess.run([sys.executable, "-c", BUILD, str(runs), str(have), str(count)], cwd=ROOT, check=True)
    time.sleep(RACY_S + 0.1)


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, all) clock ticks of every CPU since boot, from /proc/stat (Linux only)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(values) - values[3] - values[4], sum(values)  # idle and iowait are not busy


def timed_child(args: list[str], env: dict[str, str]) -> tuple[float, float | None, str]:
    """(wall seconds, the share of all CPUs other processes used meanwhile, stdout) of a child."""
    before, children, start = _cpu_jiffies(), os.times(), time.perf_counter()
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    wall = time.perf_counter() - start
    after, children_after = _cpu_jiffies(), os.times()
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    others = None
    if before and after and after[1] > before[1]:
        ours = children_after.children_user + children_after.children_system - children.children_user - children.children_system
        others = max(0.0, ((after[0] - before[0]) - ours * os.sysconf("SC_CLK_TCK")) / (after[1] - before[1]))
    return wall, others, out.stdout


def cli_seconds(runs: Path, env: dict[str, str], count: int) -> tuple[float, float | None]:
    wall, others, out = timed_child(["-m", "mnist_tui", "runs", "--runs", str(runs)], env)
    listed = sum(1 for line in out.splitlines() if line.startswith(" 2026"))
    if listed != count:
        raise SystemExit(f"mnist-tui runs listed {listed} runs of {count}")
    return wall, others


async def runs_screen(runs: Path, count: int) -> dict[str, float]:
    """Seconds from creating the app on the Runs screen to its first screenful (the summary
    counting all runs) and to all rows in the table."""
    from textual.widgets import DataTable, Static

    from mnist_tui.ui.app import MnistTuiApp

    start = time.perf_counter()
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    first = None
    async with app.run_test(size=SIZE):
        visible = SIZE[1] - 8  # the header, filter, table header, summary and footer take the rest
        while True:
            tables = app.screen.query("#runs-table")
            rows = tables.first(DataTable).row_count if tables else 0
            if first is None and rows >= min(count, visible):
                summary = str(app.screen.query_one("#runs-summary", Static).render())
                if f"{count} of {count} runs" in summary:
                    first = time.perf_counter() - start
            if rows >= count and first is not None:
                break
            await asyncio.sleep(0.002)
        done = time.perf_counter() - start
    return {"first": first, "all": done}


def screen_seconds(runs: Path, env: dict[str, str], count: int) -> dict[str, float | None]:
    _wall, others, out = timed_child([__file__, "--screen", str(runs), str(count)], env)
    return {**json.loads(out.strip().splitlines()[-1]), "others": others}


def _busy(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{100 * max(known):.0f}%" if known else "?"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 2000, 3000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="also write the table to benchmarks/results/runs_listing.md")
    parser.add_argument("--screen", nargs=2, help=argparse.SUPPRESS)  # in a child: one Runs screen measure
    args = parser.parse_args()
    if args.screen:
        print(json.dumps(asyncio.run(runs_screen(Path(args.screen[0]), int(args.screen[1])))))
        return

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip() or "?"
    lines = [
        f"Listing N runs (`{' '.join(['benchmarks/runs_listing.py', *sys.argv[1:]])}`), {ROOT.name} at {commit}, "
        f"{cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "| runs | `mnist-tui runs`, first (no index) | `mnist-tui runs` (median) | Runs screen: first screenful (median) | Runs screen: all rows (median) | others' CPU use, at most |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        env = {**os.environ, "MNIST_TUI_CACHE": str(cache)}
        runs = Path(tmp) / "runs"
        for count in sorted(args.counts):
            build_store(runs, count)
            shutil.rmtree(cache, ignore_errors=True)  # the first listing finds no index
            first, first_others = cli_seconds(runs, env, count)
            cli = [cli_seconds(runs, env, count) for _ in range(args.repeats)]
            screen = [screen_seconds(runs, env, count) for _ in range(args.repeats)]
            others = [first_others, *(o for _, o in cli), *(s["others"] for s in screen)]
            line = (
                f"| {count:,} | {first:.2f} s | {statistics.median(w for w, _ in cli):.2f} s | "
                f"{statistics.median(s['first'] for s in screen):.2f} s | {statistics.median(s['all'] for s in screen):.2f} s | {_busy(others)} |"
            )
            lines.append(line)
            print(line, flush=True)
    if args.write:
        out = ROOT / "benchmarks" / "results" / "runs_listing.md"
        out.write_text("# Listing many runs\n\n" + "\n".join(lines) + "\n")
        print(f"written to {out}")


if __name__ == "__main__":
    main()
