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
3. The same in a terminal: `python -m mnist_tui --runs DIR --open runs` launched in a 160x50
   pseudo-terminal, timed until the screen's summary counting all N runs reaches it (python's
   start and imports included). Median of --repeats, index present.

Each figure says how much of the CPUs other processes used meanwhile (from /proc/stat),
so that one measured on a busy machine shows as one. The index lives in a temporary
$MNIST_TUI_CACHE, never the user's. With --baseline REV the code of that revision is measured
too (exported with git archive; python imports mnist_tui from where it is started), each N
the baseline's line, then this tree's.
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


def timed_child(args: list[str], env: dict[str, str], source: Path) -> tuple[float, float | None, str]:
    """(wall seconds, the share of all CPUs other processes used meanwhile, stdout) of a child
    started in `source` (so that `-m mnist_tui` and `-c` import the mnist_tui found there)."""
    before, children, start = _cpu_jiffies(), os.times(), time.perf_counter()
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=source, env=env, check=False)
    wall = time.perf_counter() - start
    after, children_after = _cpu_jiffies(), os.times()
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    others = None
    if before and after and after[1] > before[1]:
        ours = children_after.children_user + children_after.children_system - children.children_user - children.children_system
        others = max(0.0, ((after[0] - before[0]) - ours * os.sysconf("SC_CLK_TCK")) / (after[1] - before[1]))
    return wall, others, out.stdout


def cli_seconds(runs: Path, env: dict[str, str], count: int, source: Path) -> tuple[float, float | None]:
    wall, others, out = timed_child(["-m", "mnist_tui", "runs", "--runs", str(runs)], env, source)
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


def screen_seconds(runs: Path, env: dict[str, str], count: int, source: Path) -> dict[str, float | None]:
    _wall, others, out = timed_child([__file__, "--screen", str(runs), str(count), str(source)], env, source)
    return {**json.loads(out.strip().splitlines()[-1]), "others": others}


TERMINAL = """
import os, pty, re, select, signal, struct, sys, time, fcntl, termios

runs, count = sys.argv[1], sys.argv[2]
wanted = re.compile(rb"%s of %s runs" % (count.encode(), count.encode()))
escapes = re.compile(rb"\\x1b\\[[0-9;?]*[A-Za-z]")
start = time.perf_counter()
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "mnist_tui", "--runs", runs, "--open", "runs"])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
seen, shown = b"", None
while shown is None and time.perf_counter() - start < 120:
    if select.select([fd], [], [], 0.05)[0]:
        try:
            seen += os.read(fd, 1 << 16)
        except OSError:
            break
        if wanted.search(escapes.sub(b"", seen[-100000:])):
            shown = time.perf_counter() - start
os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
print(shown)
"""


def terminal_seconds(runs: Path, env: dict[str, str], count: int, source: Path) -> tuple[float, float | None]:
    """From launching `mnist-tui --open runs` in a 160x50 pseudo-terminal to the summary
    counting all runs on it (python's start, imports and drawing included)."""
    _wall, others, out = timed_child(["-c", TERMINAL, str(runs), str(count)], env, source)
    shown = out.strip().splitlines()[-1]
    if shown == "None":
        raise SystemExit("the Runs screen never showed its count")
    return float(shown), others


def measure(runs: Path, env: dict[str, str], count: int, source: Path, repeats: int) -> str:
    """One line's figures for the code in `source` (the table's cells after the code's)."""
    shutil.rmtree(env["MNIST_TUI_CACHE"], ignore_errors=True)  # the first listing finds no index
    first, first_others = cli_seconds(runs, env, count, source)
    cli = [cli_seconds(runs, env, count, source) for _ in range(repeats)]
    screen = [screen_seconds(runs, env, count, source) for _ in range(repeats)]
    terminal = [terminal_seconds(runs, env, count, source) for _ in range(repeats)]
    others = [first_others, *(o for _, o in cli), *(s["others"] for s in screen), *(o for _, o in terminal)]
    return (
        f"{first:.2f} s | {statistics.median(w for w, _ in cli):.2f} s | "
        f"{statistics.median(s['first'] for s in screen):.2f} s | {statistics.median(s['all'] for s in screen):.2f} s | "
        f"{statistics.median(t for t, _ in terminal):.2f} s | {_busy(others)} |"
    )


def _revision(root: Path) -> str:
    """This tree's commit, marked when mnist_tui has changes not committed."""
    git = ["git", "-C", str(root)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip() or "?"
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "mnist_tui"], capture_output=True, text=True, check=False).stdout.strip()
    return f"{commit}{' + changes' if dirty else ''}"


def _export(revision: str, folder: Path) -> Path:
    """The tree of a git revision, exported into folder (no checkout, no change to this one)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


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
    parser.add_argument(
        "--baseline", metavar="REV", help="also measure the code of this git revision (exported with git archive), alternating with this tree's"
    )
    parser.add_argument("--screen", nargs=3, help=argparse.SUPPRESS)  # in a child: one Runs screen measure
    args = parser.parse_args()
    if args.screen:
        sys.path.insert(0, args.screen[2])  # the mnist_tui measured: this tree's or the baseline's
        print(json.dumps(asyncio.run(runs_screen(Path(args.screen[0]), int(args.screen[1])))))
        return

    lines = [
        f"Listing N runs (`{' '.join(['benchmarks/runs_listing.py', *sys.argv[1:]])}`), "
        f"{cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "| runs | code | `mnist-tui runs`, first (no index) | `mnist-tui runs` | Runs screen: first screenful | Runs screen: all rows "
        "| `mnist-tui --open runs` in a terminal, to the count shown | others' CPU use, at most |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sources = [(_revision(ROOT), ROOT)]
        if args.baseline:
            sources.insert(0, (f"{args.baseline} (baseline)", _export(args.baseline, Path(tmp) / "baseline")))
        cache = Path(tmp) / "cache"
        env = {**os.environ, "MNIST_TUI_CACHE": str(cache)}
        runs = Path(tmp) / "runs"
        for count in sorted(args.counts):
            build_store(runs, count)
            for label, source in sources:  # one after the other for each N: drift hits both
                line = f"| {count:,} | {label} | {measure(runs, env, count, source, args.repeats)}"
                lines.append(line)
                print(line, flush=True)
    if args.write:
        out = ROOT / "benchmarks" / "results" / "runs_listing.md"
        out.write_text("# Listing many runs\n\n" + "\n".join(lines) + "\n")
        print(f"written to {out}")


if __name__ == "__main__":
    main()
