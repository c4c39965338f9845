"""How fast the TUI is: training overhead, time to the first screen, and the Runs screen.

    .venv/bin/python benchmarks/ui_speed.py [--limit 12800] [--repeats 3]

1. TUI overhead: the same recipe (v4, --limit images, 2 epochs, seed 0) trained by a trainer
   process started headless (what `mnist-tui train` runs) and by one started from the app
   (ctrl+s in run_test's headless driver: the app follows the run folder and composes and
   renders every update, but writes to no terminal). The two sides alternate (which one
   goes first alternates too) so that drift on a noisy machine hits both; the second
   epoch's training images/s are compared, and the ratio within each pair is reported
   (median of --repeats pairs).
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


def _last_epoch_ips(runs: Path) -> float:
    from mnist_tui.core.store import list_runs

    [record] = [r for r in list_runs(runs) if r.status == "finished"][-1:]
    return record.metrics[-1]["images_per_s"]


def headless_ips(config, runs: Path) -> float:
    """A trainer process started as `mnist-tui train` starts one, with nothing following it."""
    from mnist_tui.trainer import ProcessLauncher

    launch = ProcessLauncher().train(config, runs)
    launch.process.wait()
    return _last_epoch_ips(runs)


async def tui_ips(config, runs: Path) -> tuple[float, float]:
    """Images/s of the last epoch of a run started from the app (a trainer process the app
    follows), and the share of the run's wall time the app's UI thread spent on the CPU."""
    from textual.widgets import Input, OptionList, Select

    from mnist_tui.core.versions import VERSIONS
    from mnist_tui.ui.app import MnistTuiApp

    app = MnistTuiApp(runs_dir=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#versions", OptionList).highlighted = list(VERSIONS).index(config.model)
        await pilot.pause()  # the form now holds this version's recipe
        r = config.recipe
        for field, value in (("epochs", r.epochs), ("batch_size", r.batch_size), ("rotate", r.rotate), ("translate", r.translate),
                             ("scale", r.scale), ("limit", config.limit), ("seed", config.seed)):
            app.screen.query_one(f"#field-{field}", Input).value = "" if value is None else str(value)
        for field, value in (("device", config.device), ("precision", config.precision)):
            app.screen.query_one(f"#field-{field}", Select).value = value
        await pilot.pause()
        cpu0, wall0 = time.thread_time(), time.perf_counter()  # this is the UI thread
        await pilot.press("ctrl+s")
        screen = app.screen
        while screen.follower is None or not screen.follower.done:
            await asyncio.sleep(0.25)  # not pilot.pause: waiting for idle costs the UI thread more than the app does
        ui_share = (time.thread_time() - cpu0) / (time.perf_counter() - wall0)
    return _last_epoch_ips(runs), ui_share


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


def one_side(side: str, limit: int, runs: str, precision: str) -> list[float]:
    """Run one side of the overhead comparison in a fresh process; what it printed."""
    out = subprocess.run(
        [sys.executable, __file__, "--side", side, "--limit", str(limit), "--side-runs", runs, "--precision", precision],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    return [float(x) for x in out.stdout.strip().splitlines()[-1].split()]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("headless", "tui"), help=argparse.SUPPRESS)
    parser.add_argument("--side-runs", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=30000, help="training images per run for the overhead test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--only-overhead", action="store_true", help="skip the startup and Runs screen measures")
    args = parser.parse_args()

    if args.side:
        from mnist_tui.core.versions import get_version

        config = get_version("v4").config(epochs=2, limit=args.limit, device="cpu", precision=args.precision)
        if args.side == "headless":
            print(headless_ips(config, Path(args.side_runs)))
        else:
            print(*asyncio.run(tui_ips(config, Path(args.side_runs))))
        return

    import torch

    print(f"machine: {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads, python {platform.python_version()}, precision {args.precision}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        headless, tui, ui_share = [], [], []
        for i in range(args.repeats):
            # Alternate which side goes first, so that drift within a pair favours neither.
            for side in ("headless", "tui") if i % 2 == 0 else ("tui", "headless"):
                if side == "headless":
                    headless.append(one_side("headless", args.limit, str(tmp / f"headless-{i}"), args.precision)[0])
                else:
                    ips, share = one_side("tui", args.limit, str(tmp / f"tui-{i}"), args.precision)
                    tui.append(ips)
                    ui_share.append(share)
            print(f"pair {i + 1}: headless {headless[-1]:,.0f} img/s, TUI {tui[-1]:,.0f} img/s ({tui[-1] / headless[-1]:.1%})", flush=True)
        ratios = [t / h for t, h in zip(tui, headless)]

        if not args.only_overhead:
            empty = tmp / "empty"
            empty.mkdir()
            starts, note = startup_seconds(empty, max(5, args.repeats))
            many = tmp / "many"
            make_runs(many, args.runs)
            listing = [asyncio.run(runs_screen_seconds(many, args.runs)) for _ in range(args.repeats)]

    print()
    print("| measure | result | target |")
    print("|---|---|---|")
    print(f"| training images/s, trainer started headless (v4, {args.limit:,} images, 2nd epoch, {args.precision}) | {statistics.median(headless):,.0f} (runs: {', '.join(f'{x:,.0f}' for x in headless)}) | |")
    print(f"| training images/s, trainer started from the TUI | {statistics.median(tui):,.0f} (runs: {', '.join(f'{x:,.0f}' for x in tui)}) | |")
    print(f"| TUI / headless, median of {len(ratios)} alternated pairs | {statistics.median(ratios):.1%} (pairs: {', '.join(f'{r:.1%}' for r in ratios)}) | ≥ 97% |")
    print(f"| the app's UI thread CPU time during a run, share of its wall time (median) | {statistics.median(ui_share):.1%} | |")
    if not args.only_overhead:
        print(f"| launch to Train screen ready, median of {len(starts)} | {statistics.median(starts):.2f} s ({note}) | ≤ 1.0 s |")
        print(f"| Runs screen showing {args.runs:,} runs, median of {len(listing)} | {statistics.median(listing):.2f} s | ≤ 1.0 s |")


if __name__ == "__main__":
    main()
