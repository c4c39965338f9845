"""How fast the TUI is: training overhead, time to the first screen, the Runs and Predictions screens.

    .venv/bin/python benchmarks/ui_speed.py [--limit 12800] [--repeats 3] [--only-predictions]

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
4. Charts (--only-charts): the Train screen's loss chart following a 100-epoch run with
   100 per-batch points an epoch, the median time of a redraw at three terminal sizes.
5. Predictions screen: a v2 run (trained for one epoch on 2,000 images: accuracy does not
   change the speed) classifying the 10,000 test digits, from pressing `p` on the Runs screen
   to the grid drawn, in a fresh process each time (nothing cached, torch not yet imported),
   median of --repeats. Once for a run trained with the default precision (auto: bf16 where
   the CPU computes it natively), once for a run trained in fp32, which is classified in fp32
   as on every CPU without native bf16. A second fresh process per repeat times the parts
   through the core alone: importing torch, reading the test digits, checkpoint and model,
   the classification itself. The table says how much of the CPUs other processes used
   meanwhile (from /proc/stat), so that a figure from a busy machine shows as one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
    return record.metrics[-1].images_per_s


def headless_ips(config, runs: Path) -> float:
    """A trainer process started as `mnist-tui train` starts one, with nothing following it."""
    from mnist_tui.trainer import ProcessLauncher

    launch = ProcessLauncher().train(config, runs)
    launch.process.wait()
    return _last_epoch_ips(runs)


async def tui_ips(config, runs: Path) -> tuple[float, float]:
    """Images/s of the last epoch of a run started from the app (a trainer process the app
    follows), and the share of the run's wall time the app's UI thread spent on the CPU."""
    from textual.widgets import Input, Select

    from mnist_tui.ui.app import MnistTuiApp

    app = MnistTuiApp(runs_dir=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.select(config.model)  # the form now holds this version's recipe
        await pilot.pause()
        assert app.screen.query_one("#form").config.model == config.model
        r = config.recipe
        for field, value in (
            ("epochs", r.epochs),
            ("batch_size", r.batch_size),
            ("rotate", r.rotate),
            ("translate", r.translate),
            ("scale", r.scale),
            ("limit", config.limit),
            ("seed", config.seed),
        ):
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
    """From pressing F4 on the Train screen, two seconds after launch (the app reads the run
    store in a worker once it is ready), to every run's row being drawn."""
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


def make_v2_run(runs: Path, precision: str) -> Path:
    """A v2 run trained for one epoch on 2,000 images, as `mnist-tui train` trains it."""
    subprocess.run(
        [sys.executable, "-m", "mnist_tui", "train", "--model", "v2", "--epochs", "1", "--limit", "2000", "--precision", precision, "--runs", str(runs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    [run] = [p for p in runs.iterdir() if p.is_dir()]
    return run


async def predictions_screen_seconds(run: Path) -> dict:
    """From pressing `p` on the Runs screen (settled, its one run highlighted) to the grid drawn."""
    from mnist_tui.ui.app import MnistTuiApp
    from mnist_tui.ui.screens.predictions import PredictionsScreen
    from tests.ui_helpers import settle

    app = MnistTuiApp(runs_dir=run.parent, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        torch_before = "torch" in sys.modules
        t0 = time.perf_counter()
        await pilot.press("p")

        def started() -> bool:  # classifying, or done or failed already (a pause can outlast it)
            screen = app.screen
            if not isinstance(screen, PredictionsScreen):
                return False
            failed = str(screen.query_one("#predictions-title").render()).startswith("Cannot load")
            return screen.classifying or screen.predictions is not None or failed

        while not started():
            if time.perf_counter() > t0 + 60:
                raise SystemExit("the Predictions screen did not start classifying within 60 s")
            await pilot.pause(0.01)
        await app.workers.wait_for_complete()  # the classification, and the grid handed over
        await pilot.pause()  # and drawn
        seconds = time.perf_counter() - t0
        screen = app.screen
        if screen.predictions is None:
            raise SystemExit(f"the Predictions screen failed: {screen.query_one('#predictions-title').render()}")
        return {"seconds": seconds, "precision": screen.predictions.precision, "torch_before": torch_before}


def predictions_parts(run: Path) -> dict:
    """The parts of one classification through the core, in this (fresh) process."""
    stamps = {"start": time.perf_counter()}
    import torch  # noqa: F401  (timed: the app imports it on the first `p`)

    from mnist_tui.core import data
    from mnist_tui.core.predict import predict

    stamps["imported"] = time.perf_counter()
    data.load()
    stamps["data"] = time.perf_counter()

    def progress(done: int, total: int) -> None:
        stamps["loaded" if done == 0 else "classified"] = time.perf_counter()

    result = predict(run, 48, progress=progress)
    stamps["done"] = time.perf_counter()
    return {
        "import torch and the core": stamps["imported"] - stamps["start"],
        "test digits (data.load)": stamps["data"] - stamps["imported"],
        "checkpoint and model": stamps["loaded"] - stamps["data"],
        "classifying 10,000 digits": stamps["classified"] - stamps["loaded"],
        "predictions for the grid": stamps["done"] - stamps["classified"],
        "total": stamps["done"] - stamps["start"],
        "precision": result.precision,
    }


def make_long_run(runs: Path, epochs: int, points: int) -> Path:
    """A finished v4 run of `epochs` epochs with `points` per-batch points each, written as
    the trainer writes them (the curves' shapes do not matter to the drawing's cost)."""
    import math

    from mnist_tui.core.store.records import BATCHES_HEADER

    run = runs / "20261101T000000Z-v4-c0ffee"
    run.mkdir(parents=True)
    config = {
        "format": 1,
        "created": "2026-11-01T00:00:00+00:00",
        "config": {"model": "v4", "recipe": {"epochs": epochs, "batch_size": 64}},
        "params": 7432,
        "train_size": 60000,
        "test_size": 10000,
    }
    (run / "config.json").write_text(json.dumps(config))
    epoch = {"epochs": epochs, "train_acc": 98.0, "test_acc": 98.5, "lr": 0.01, "seconds": 10.0, "images_per_s": 6000.0}
    lines = [json.dumps({"epoch": e, "train_loss": 1 / e, "test_loss": 0.9 / e, **epoch}) for e in range(1, epochs + 1)]
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    curve = "".join(
        f"{e},{b * 938 // points},938,{1 / (e - 1 + b / points) + 0.05 * (1 + math.sin(b)):.5f},{90 + 5 * math.sin(b):.3f}\n"
        for e in range(1, epochs + 1)
        for b in range(1, points + 1)
    )
    (run / "batches.csv").write_text(BATCHES_HEADER + curve)
    (run / "status.json").write_text(json.dumps({"status": "finished", "epochs_done": epochs, "updated": "2026-11-01T00:00:00+00:00"}))
    import torch

    torch.save({"epoch": epochs}, run / "checkpoint.pt")
    return run


async def chart_redraw_ms(runs: Path, size: tuple[int, int], repeats: int = 20) -> dict[str, float]:
    """The Train screen's loss chart following a 100-epoch run (100 points an epoch): the
    median time to redraw it (replot and render, as after each new point), smoothing off and 0.99."""
    from mnist_tui.ui.app import MnistTuiApp
    from mnist_tui.ui.widgets.charts import MetricChart

    app = MnistTuiApp(runs_dir=runs)
    result = {}
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        screen.attach(next(p for p in runs.iterdir() if p.is_dir()), "…")
        while screen.follower is None or not screen.follower.done:
            await pilot.pause(0.05)
        await pilot.pause()
        chart = screen.query_one("#loss-chart", MetricChart)
        assert sum(chart.point_counts.values()) > 10_000, chart.point_counts
        for smoothing in (0.0, 0.99):
            chart.smoothing = smoothing
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                chart.replot()
                chart.render()
                times.append(1000 * (time.perf_counter() - t0))
            result[f"{smoothing:g}"] = statistics.median(times)
    return result


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, all) clock ticks of every CPU since boot, from /proc/stat (Linux only)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(values) - values[3] - values[4], sum(values)  # idle and iowait are not busy


def in_fresh_process(flag: str, run: Path) -> dict:
    """What the child printed, and `others`: the share of all CPUs that other processes used
    meanwhile (the evidence that the machine was idle, or was not)."""
    before, children = _cpu_jiffies(), os.times()
    out = subprocess.run([sys.executable, __file__, flag, str(run)], capture_output=True, text=True, cwd=ROOT, check=False)
    after, children_after = _cpu_jiffies(), os.times()
    if out.returncode != 0:
        raise SystemExit(f"{flag} {run.name} failed:\n{out.stdout}{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if before and after and after[1] > before[1]:
        ours = children_after.children_user + children_after.children_system - children.children_user - children.children_system
        others = (after[0] - before[0]) - ours * os.sysconf("SC_CLK_TCK")
        result["others"] = max(0.0, others / (after[1] - before[1]))
    return result


def predictions_rows(tmp: Path, repeats: int) -> list[str]:
    """Table rows: the screen's time and the core's parts, for a default-precision and an fp32 run."""
    rows = []
    for trained in ("auto", "fp32"):
        run = make_v2_run(tmp / f"predictions-{trained}", trained)
        screen, parts = [], []
        for _ in range(repeats):  # alternate, so that drift on a noisy machine hits both
            screen.append(in_fresh_process("--predictions-screen", run))
            parts.append(in_fresh_process("--predictions-parts", run))
        precision = screen[0]["precision"]
        times = [s["seconds"] for s in screen]
        note = "" if not any(s["torch_before"] for s in screen) else ", torch already imported"
        others = [s["others"] for s in screen + parts if "others" in s]
        if others:
            note += f"; other processes used {statistics.median(others):.0%} of the CPUs meanwhile (median)"
        rows.append(
            f"| Predictions screen, v2 run trained with --precision {trained} (classified in {precision}): `p` to grid drawn, "
            f"median of {len(times)} fresh processes{note} | {statistics.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}) | ≤ 3 s |"
        )
        for name in [k for k in parts[0] if k not in ("precision", "total", "others")] + ["total"]:
            values = [p[name] for p in parts]
            rows.append(f"| · {name} ({precision}, core alone, median) | {statistics.median(values):.2f} s | |")
    return rows


def one_side(side: str, limit: int, runs: str, precision: str) -> list[float]:
    """Run one side of the overhead comparison in a fresh process; what it printed."""
    out = subprocess.run(
        [sys.executable, __file__, "--side", side, "--limit", str(limit), "--side-runs", runs, "--precision", precision],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
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
    parser.add_argument("--only-overhead", action="store_true", help="skip the startup, Runs and Predictions screen measures")
    parser.add_argument("--only-predictions", action="store_true", help="measure the Predictions screen only")
    parser.add_argument("--only-charts", action="store_true", help="measure the chart redraw only")
    parser.add_argument("--only-screens", action="store_true", help="skip the training overhead: startup, Runs and Predictions only")
    parser.add_argument("--predictions-screen", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--predictions-parts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.predictions_screen:
        print(json.dumps(asyncio.run(predictions_screen_seconds(args.predictions_screen))))
        return
    if args.predictions_parts:
        print(json.dumps(predictions_parts(args.predictions_parts)))
        return

    if args.side:
        from mnist_tui.core.versions import get_version

        config = get_version("v4").config(epochs=2, limit=args.limit, device="cpu", precision=args.precision)
        if args.side == "headless":
            print(headless_ips(config, Path(args.side_runs)))
        else:
            print(*asyncio.run(tui_ips(config, Path(args.side_runs))))
        return

    import torch

    from mnist_tui.core.hardware import cpu_bf16_native

    print(
        f"machine: {cpu_model()} (native bf16: {'yes' if cpu_bf16_native() else 'no'}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, python {platform.python_version()}, precision {args.precision}"
    )
    if args.only_charts:
        with tempfile.TemporaryDirectory() as tmp:
            make_long_run(Path(tmp), 100, 100)
            print()
            print("| measure | smoothing off | smoothing 0.99 | target |")
            print("|---|---:|---:|---|")
            for size in ((80, 24), (120, 40), (200, 60)):
                ms = asyncio.run(chart_redraw_ms(Path(tmp), size))
                print(
                    f"| loss chart redraw, 100 epochs × 100 points + test, at {size[0]}x{size[1]} (median of 20) | {ms['0']:.1f} ms | {ms['0.99']:.1f} ms | < 50 ms |"
                )
        return
    if args.only_predictions:
        with tempfile.TemporaryDirectory() as tmp:
            rows = predictions_rows(Path(tmp), args.repeats)
        print()
        print("| measure | result | target |")
        print("|---|---|---|")
        print("\n".join(rows))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        headless, tui, ui_share = [], [], []
        for i in range(0 if args.only_screens else args.repeats):
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
            predictions = predictions_rows(tmp, args.repeats)

    print()
    print("| measure | result | target |")
    print("|---|---|---|")
    if ratios:
        print(
            f"| training images/s, trainer started headless (v4, {args.limit:,} images, 2nd epoch, {args.precision}) | {statistics.median(headless):,.0f} (runs: {', '.join(f'{x:,.0f}' for x in headless)}) | |"
        )
        print(f"| training images/s, trainer started from the TUI | {statistics.median(tui):,.0f} (runs: {', '.join(f'{x:,.0f}' for x in tui)}) | |")
        print(
            f"| TUI / headless, median of {len(ratios)} alternated pairs | {statistics.median(ratios):.1%} (pairs: {', '.join(f'{r:.1%}' for r in ratios)}) | ≥ 97% |"
        )
        print(f"| the app's UI thread CPU time during a run, share of its wall time (median) | {statistics.median(ui_share):.1%} | |")
    if not args.only_overhead:
        print(f"| launch to Train screen ready, median of {len(starts)} | {statistics.median(starts):.2f} s ({note}) | ≤ 1.0 s |")
        print(f"| Runs screen showing {args.runs:,} runs, median of {len(listing)} | {statistics.median(listing):.2f} s | ≤ 1.0 s |")
        print("\n".join(predictions))


if __name__ == "__main__":
    main()
