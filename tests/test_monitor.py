"""Monitoring: the per-batch curve, smoothing, log y, zoom, the cursor's readout, best values,
overlays of marked runs, and what a run cost the machine."""

from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable, Static

from mnist_tui.core import history
from mnist_tui.core.store import list_runs, read_points, read_run
from mnist_tui.present.runs import run_cell
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.run_detail import RunDetailScreen
from mnist_tui.ui.screens.train import TrainScreen
from mnist_tui.ui.widgets.charts import FAINT, MetricChart, bin_means, smooth
from mnist_tui.ui.widgets.epoch_table import EpochTable
from tests.ui_helpers import InProcessLauncher, drained, press, settle, type_into, wait_for_run_end, wait_until, write_run


def _drawn(chart: MetricChart) -> dict[str, list[float]]:
    return {d.name: d.xs for d in chart.plotted}


async def test_a_two_epoch_run_draws_per_batch_curves_that_the_keys_study(tmp_path):
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        screen.select("v4")  # batch 64: 640 images are 10 batches an epoch
        for selector, value in (("#field-epochs", "2"), ("#field-limit", "640"), ("#field-test_limit", "500")):
            await type_into(pilot, selector, value)
        await press(pilot, "ctrl+s")
        await wait_for_run_end(pilot)
        [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir()]

        loss = screen.query_one("#loss-chart", MetricChart)
        train = loss.series["train"]
        assert len(train) > 2 * 2 and loss.point_counts["test"] == 2  # more than a point an epoch
        assert any(0 < x < 1 for x, _ in train) and any(1 < x < 2 for x, _ in train)  # fractional epochs
        assert len(read_points(run_dir)[0]) == len(train)  # what the run recorded, all of it drawn

        loss.focus()
        await press(pilot, "s", "s", "s")  # off -> 0.6 -> 0.9 -> 0.99
        assert loss.smoothing == 0.99
        drawn = {d.name: d for d in loss.plotted}
        assert drawn["train raw"].colour == FAINT and drawn["train raw"].ys == [y for _, y in train]
        assert drawn["train"].ys != drawn["train raw"].ys and drawn["train"].ys == smooth([y for _, y in train], 0.99)
        assert "smooth 0.99" in loss.state()

        await press(pilot, "l")
        assert loss.log_y and loss.scale == "log" and "log" in loss.state()

        loss.show_range(1.0, 2.0)
        assert all(1.0 <= x <= 2.0 for xs in _drawn(loss).values() for x in xs)
        assert any(x < 1.0 for x, _ in train)  # the view shows less than the run has
        await press(pilot, "0")
        assert loss.window is None and min(_drawn(loss)["train"]) < 1.0
        await press(pilot, "z", "z", "z")  # the whole run, last 10, last 5, last 1 epoch
        assert loss.view == (1.0, 2.0)

        await press(pilot, "left")  # the cursor reads each series where it stands
        assert loss.cursor == 2.0 and "train" in loss.readout() and "test" in loss.readout()
        await press(pilot, "left", "left")
        assert loss.cursor < 2.0

        # The trainer's resource use, per epoch, in metrics.jsonl and on the screen.
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            epoch = json.loads(line)
            assert epoch["cpu_seconds"] > 0 and epoch["rss_mb"] > 50 and 0 < epoch["cpu_percent"] < 100 * 64
        assert "CPU s" in str(screen.query_one("#usage", Static).render())
        table = screen.query_one(EpochTable)
        assert "best test acc" in str(table.border_title) and " @" in str(table.border_title)


def _three_runs(runs):
    write_run(runs, "20261101T100000Z-v4-aaaaaa", "v4", "finished", [97.0, 98.0, 98.5], lr=0.05, points=20)
    write_run(runs, "20261102T100000Z-v4-bbbbbb", "v4", "finished", [97.5, 98.4, 98.2], lr=0.1, points=20)
    write_run(runs, "20261103T100000Z-v4-cccccc", "v4", "finished", [96.0, 97.0, 97.9], lr=0.02)  # made before batches.csv


async def test_comparing_three_marked_runs_overlays_three_labelled_series_and_their_differences(tmp_path):
    _three_runs(tmp_path)
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: app.screen.query_one("#runs-table", DataTable).row_count == 3)
        await press(pilot, "space", "space", "space", "c")
        await drained(pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and screen.comparing
        charts = [screen.query_one(f"#detail-{name}", MetricChart) for name in ("loss", "acc", "lr")]
        labels = list(charts[0].lines)
        assert len(labels) == 3 and len(set(labels)) == 3 and all(label.startswith("v4 lr=") for label in labels)
        for chart in charts:
            assert list(chart.lines) == labels  # the same label for a run in every chart...
            assert len({s.colour for s in chart.lines.values()}) == 3  # ...each its own colour
            assert [c.colour for c in charts[0].lines.values()] == [c.colour for c in chart.lines.values()]
        legend = str(screen.query_one("#compare-legend", Static).render())
        assert all(label in legend for label in labels)  # one legend for the three, above them
        per_batch = [len(points) for points in charts[0].series.values()]
        assert sorted(per_batch) == [3, 60, 60]  # per batch where recorded, per epoch for the old run
        table = screen.query_one("#compare-runs", DataTable)
        headers = [str(c.label) for c in table.columns.values()]
        assert table.row_count == 3 and "lr" in headers and "seed" not in headers  # only what differs
        assert "best acc @epoch" in headers and "min loss @epoch" in headers


def test_runs_table_shows_and_sorts_on_best_values_with_their_epochs(tmp_path):
    _three_runs(tmp_path)
    rows = history.select(list_runs(tmp_path), sort="best_acc", reverse=True)
    assert [run_cell(r, "best_acc") for r in rows] == ["98.50% @3", "98.40% @2", "97.90% @3"]
    lowest = history.select(list_runs(tmp_path), sort="min_loss")
    assert run_cell(lowest[0], "min_loss") == "0.1333 @3" and run_cell(lowest[0], "epoch_s") == "40.0"
    assert run_cell(lowest[0], "img_s") == "1,500"
    assert [r.run for r in history.select(list_runs(tmp_path), "best>98.45")] == ["20261101T100000Z-v4-aaaaaa"]


def test_a_damaged_curve_stops_the_curve_there_and_never_the_run(tmp_path):
    _three_runs(tmp_path)
    run = tmp_path / "20261101T100000Z-v4-aaaaaa"
    lines = (run / "batches.csv").read_text().splitlines(keepends=True)
    (run / "batches.csv").write_text("".join(lines[:6]) + "1,999,469,nan,50\n" + "".join(lines[6:]))
    points, _offset, problem = read_points(run)
    assert len(points) == 5 and "batches.csv" in problem
    assert read_run(run).status == "finished"  # the listing never reads the curve
    (run / "batches.csv").write_text("garbage")
    assert read_points(run)[0] == [] and read_run(run).status == "finished"


def test_smoothing_starts_unbiased_and_binning_keeps_the_mean():
    assert smooth([1.0, 1.0, 1.0], 0.9) == [1.0, 1.0, 1.0]  # no pull towards zero at the start
    assert smooth([0.0, 10.0], 0.0) == [0.0, 10.0]
    xs = [i / 100 for i in range(1000)]
    bx, by = bin_means(xs, [2.0] * 1000, 50)
    assert len(bx) == 50 and all(y == 2.0 for y in by) and bx[0] < bx[-1]


async def test_per_batch_curve_survives_a_resume_without_the_dropped_epochs(tmp_path):
    from mnist_tui.core.store import RunLock, RunWriter

    run = write_run(tmp_path, "20261101T100000Z-v4-aaaaaa", "v4", "stopped", [97.0, 98.0], points=10)
    lock = RunLock.acquire(run)
    writer = RunWriter.reopen(lock, epochs_done=1)  # epoch 2 is trained again
    writer.close("stopped")
    points = read_points(run)[0]
    assert len(points) == 10 and {p.epoch for p in points} == {1}


def _dashboard_run(runs):
    return write_run(runs, "20261101T100000Z-v4-aaaaaa", "v4", "finished", [96.5, 97.9, 98.4, 98.7, 98.6], epochs_total=5, points=40)


def _snapshot_train_dashboard(snap_compare, tmp_path, size, monkeypatch):
    from mnist_tui.core import hardware

    monkeypatch.setattr(hardware, "cpu_bf16_native", lambda: False)  # the expected times shown depend on it
    run = _dashboard_run(tmp_path)

    async def follow_it(pilot):
        screen = pilot.app.screen
        screen.attach(run, "Following…")
        await wait_for_run_end(pilot)
        screen.query_one("#loss-chart", MetricChart).focus()
        await press(pilot, "s", "s")  # smoothing 0.9 over the faint raw curve
        await settle(pilot)

    return snap_compare(MnistTuiApp(runs_dir=tmp_path), terminal_size=size, run_before=follow_it)


def test_train_dashboard_80x24(snap_compare, tmp_path, monkeypatch):
    assert _snapshot_train_dashboard(snap_compare, tmp_path, (80, 24), monkeypatch)


def test_train_dashboard_120x40(snap_compare, tmp_path, monkeypatch):
    assert _snapshot_train_dashboard(snap_compare, tmp_path, (120, 40), monkeypatch)


def _snapshot_compare(snap_compare, tmp_path, size):
    _three_runs(tmp_path)

    async def compare(pilot):
        await settle(pilot)
        await wait_until(pilot, lambda: pilot.app.screen.query_one("#runs-table", DataTable).row_count == 3)
        await press(pilot, "space", "space", "space", "c")
        await settle(pilot)

    return snap_compare(MnistTuiApp(runs_dir=tmp_path, start_mode="runs"), terminal_size=size, run_before=compare)


def test_compare_view_80x24(snap_compare, tmp_path):
    assert _snapshot_compare(snap_compare, tmp_path, (80, 24))


def test_compare_view_120x40(snap_compare, tmp_path):
    assert _snapshot_compare(snap_compare, tmp_path, (120, 40))


def test_target_stops_at_the_first_epoch_that_reaches_it_and_records_the_time(tmp_path, capsys):
    from mnist_tui import cli

    small = ["train", "--model", "v4", "--limit", "640", "--test-limit", "500", "--runs", str(tmp_path)]
    assert cli.main([*small, "--epochs", "4", "--target", "5"]) == 0  # any trained v4 beats 5%
    out = capsys.readouterr().out
    assert "finished: 1 epoch," in out and "reached 5.00% at epoch 1" in out
    [run] = list_runs(tmp_path)
    assert run.epochs_done == 1 and run.epochs_total == 4 and run.target == 5.0
    elapsed = run.metrics[0].elapsed
    assert elapsed is not None and elapsed > run.metrics[0].seconds  # from the call into the engine
    assert run_cell(history.row_of(run), "to_target") == f"{elapsed:.1f} s @1"

    assert cli.main([*small, "--epochs", "1", "--target", "100", "--seed", "1"]) == 0
    assert "did not reach the target 100.00%" in capsys.readouterr().out
    missed = [r for r in list_runs(tmp_path) if r.seed == 1][0]
    assert run_cell(history.row_of(missed), "to_target") == "not reached"


async def test_target_from_the_form_stops_the_run_early(tmp_path):
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        screen.select("v4")
        for selector, value in (("#field-epochs", "3"), ("#field-limit", "640"), ("#field-test_limit", "500"), ("#field-target", "5")):
            await type_into(pilot, selector, value)
        assert screen.query_one("#form").config.target == 5.0
        await type_into(pilot, "#field-target", "150")
        assert screen.query_one("#form").config is None and "at most 100" in screen.query_one("#form").problems["target"]
        await type_into(pilot, "#field-target", "5")
        await press(pilot, "ctrl+s")
        await wait_for_run_end(pilot)
        assert screen.query_one(EpochTable).row_count == 1  # of 3 planned
        assert "reached 5.00% at epoch 1" in str(screen.query_one("#speed", Static).render())


def test_the_trainers_cpu_figure_never_reads_above_what_the_cores_allow(monkeypatch):
    """CPU time comes in clock ticks: over a few hundredths of a second it once read 316% on
    2 cores. A short window keeps the last figure; no figure exceeds the CPU count."""
    import types

    import psutil
    import torch

    from mnist_tui.core.resources import Meter

    monkeypatch.setattr(psutil, "cpu_count", lambda *a, **k: 2)
    now, cpu = [100.0], [10.0]
    meter = Meter(torch.device("cpu"), clock=lambda: now[0])
    meter.process = types.SimpleNamespace(
        cpu_times=lambda: types.SimpleNamespace(user=cpu[0], system=0.0), memory_info=lambda: types.SimpleNamespace(rss=2**28)
    )
    meter.begin()

    def after(seconds: float, cpu_seconds: float) -> float | None:
        now[0] += seconds
        cpu[0] += cpu_seconds
        return meter.sample().cpu_percent

    assert after(0.05, 0.04) is None  # nothing measured over a long enough window yet
    assert after(1.0, 1.5) == pytest.approx(100 * 1.54 / 1.05)  # since the epoch began: 147%
    assert after(0.03, 0.1) == pytest.approx(100 * 1.54 / 1.05)  # 333% over 30 ms: the last figure stays
    assert after(1.0, 2.5) == 200.0  # ticks counted late: at most both cores
    assert meter.sample().rss_mb == 256
