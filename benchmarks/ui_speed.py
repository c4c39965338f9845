"""How fast the TUI is: training overhead, time to the first screen, and the Runs screen.

    .venv/bin/python benchmarks/ui_speed.py [--limit 12800] [--repeats 3]

1. TUI overhead: the same recipe (v2, --limit images, 2 epochs, seed 0) trained headless
   (the engine alone) and inside the app (started from the keyboard in run_test's headless
   driver: the app composes and renders every update, but writes to no terminal). Each run
   is a fresh process, as a user's would be, and the two sides alternate so that drift on a
   noisy machine hits both; the second epoch's training images/s are compared.
2. Startup: from launching `python -m mnist_tui` to the Train screen being ready
   (Textual's Ready event), median of several launches; also whether torch was imported.
3. Runs screen: time to list 1,000 runs, from pressing F4 (two seconds after launch) to
   all rows shown.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROBE = """
import sys
from mnist_tui.ui.app import MnistTuiApp

class Probe(MnistTuiApp):
    def on_ready(self):
        self.exit(return_code=0, message="torch imported: %s" % ("torch" in sys.modules))

Probe(runs_dir=sys.argv[1]).run(headless=True)
"""


def headless_ips(config) -> float:
    from mnist_tui.core.engine import train
    from mnist_tui.core.events import EpochFinished

    epochs = [ev for ev in train(config) if isinstance(ev, EpochFinished)]
    return epochs[-1].images_per_s


async def tui_ips(config, runs: Path) -> tuple[float, float]:
    """Images/s of the last epoch trained from the app, and the share of the run's wall
    time that the UI thread spent on the CPU (rendering, handling progress messages)."""
    from textual.widgets import Input

    from mnist_tui.ui.app import MnistTuiApp
    from mnist_tui.ui.widgets.epoch_table import EpochTable

    from textual.widgets import OptionList

    from mnist_tui.core.versions import VERSIONS

    app = MnistTuiApp(runs_dir=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#versions", OptionList).highlighted = list(VERSIONS).index(config.model)
        await pilot.pause()  # the form now holds this version's recipe
        for field, value in (
            ("epochs", config.recipe.epochs),
            ("batch_size", config.recipe.batch_size),
            ("rotate", config.recipe.rotate),
            ("translate", config.recipe.translate),
            ("scale", config.recipe.scale),
            ("limit", config.limit),
            ("seed", config.seed),
        ):
            app.screen.query_one(f"#field-{field}", Input).value = str(value)
        await pilot.pause()
        cpu0, wall0 = time.thread_time(), time.perf_counter()  # this is the UI thread
        await pilot.press("ctrl+s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        ui_share = (time.thread_time() - cpu0) / (time.perf_counter() - wall0)
        return app.screen.query_one(EpochTable).epochs[-1]["images_per_s"], ui_share


def startup_seconds(runs: Path, repeats: int) -> tuple[list[float], str]:
    probe = runs.parent / "startup_probe.py"
    probe.write_text(PROBE)  # Textual reads its app's source file, so not `python -c`
    times, note = [], ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, str(probe), str(runs)], capture_output=True, text=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
        note = (out.stdout + out.stderr).strip().splitlines()[-1] if (out.stdout + out.stderr).strip() else ""
    return times, note


async def runs_screen_seconds(runs: Path, count: int) -> float:
    """From pressing F4 on the Train screen, two seconds after launch (the app builds the
    Runs screen in the background once it is ready), to every run's row being drawn."""
    from textual.widgets import DataTable

    from mnist_tui.ui.app import MnistTuiApp

    app = MnistTuiApp(runs_dir=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(2.0)
        t0 = time.perf_counter()
        await pilot.press("f4")
        while not app.screen.query("#runs-table") or app.screen.query_one("#runs-table", DataTable).row_count < count:
            await pilot.pause(0.01)
        await pilot.pause()  # and drawn
        return time.perf_counter() - t0


def make_runs(runs: Path, count: int) -> None:
    from tests.ui_helpers import write_run

    for i in range(count):
        write_run(runs, f"20260101T{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}Z-v2-{i:06x}", "v2", "finished", [98.0, 99.0, 99.3])


def one_side(side: str, limit: int, runs: str) -> list[float]:
    """Run one side of the overhead comparison in a fresh process; what it printed."""
    out = subprocess.run(
        [sys.executable, __file__, "--side", side, "--limit", str(limit), "--side-runs", runs],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    return [float(x) for x in out.stdout.strip().splitlines()[-1].split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("headless", "tui"), help=argparse.SUPPRESS)
    parser.add_argument("--side-runs", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=20000, help="training images per run for the overhead test")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()

    import torch

    from mnist_tui.core.versions import get_version

    if args.side:
        config = get_version("v2").config(epochs=2, limit=args.limit, device="cpu", runs_dir=args.side_runs)
        if args.side == "headless":
            print(headless_ips(config))
        else:
            print(*asyncio.run(tui_ips(config, Path(args.side_runs))))
        return

    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, {torch.get_num_threads()} threads, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        headless, tui, ui_share = [], [], []
        for _ in range(args.repeats):
            headless.append(one_side("headless", args.limit, str(tmp / "overhead"))[0])
            ips, share = one_side("tui", args.limit, str(tmp / "overhead"))
            tui.append(ips)
            ui_share.append(share)
        ratio = statistics.median(tui) / statistics.median(headless)

        empty = tmp / "empty"
        empty.mkdir()
        starts, note = startup_seconds(empty, max(5, args.repeats))

        many = tmp / "many"
        make_runs(many, args.runs)
        listing = [asyncio.run(runs_screen_seconds(many, args.runs)) for _ in range(args.repeats)]

    print()
    print("| measure | result | target |")
    print("|---|---|---|")
    print(f"| training images/s, headless (v2, {args.limit:,} images, 2nd epoch) | {statistics.median(headless):,.0f} (runs: {', '.join(f'{x:,.0f}' for x in headless)}) | |")
    print(f"| training images/s, inside the TUI | {statistics.median(tui):,.0f} (runs: {', '.join(f'{x:,.0f}' for x in tui)}) | |")
    print(f"| TUI / headless (ratio of the medians) | {ratio:.1%} | ≥ 95% |")
    print(f"| UI thread's CPU time during a TUI run, share of its wall time (median) | {statistics.median(ui_share):.1%} | |")
    print(f"| launch to Train screen ready, median of {len(starts)} | {statistics.median(starts):.2f} s ({note}) | ≤ 1.0 s |")
    print(f"| Runs screen showing {args.runs:,} runs, median of {len(listing)} | {statistics.median(listing):.2f} s | ≤ 1.0 s |")


if __name__ == "__main__":
    main()
