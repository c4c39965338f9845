"""Charts under stress, where people go: a log axis resized and toggled, empty charts, values
from diverged or damaged runs, narrow charts that must still say what they show, and `?`
listing a chart's keys before any chart has focus."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widgets import DataTable, Static

from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.help import CHARTS_HEADING, HelpScreen
from mnist_tui.ui.screens.run_detail import RunDetailScreen
from mnist_tui.ui.screens.train import TrainScreen
from mnist_tui.ui.widgets.chart_values import LIMIT, bin_means, log_ticks
from mnist_tui.ui.widgets.charts import MetricChart
from tests.ui_helpers import drained, press, settle, wait_for_run_end, wait_until, write_run

# Values a diverged run or a damaged file can hand a chart.
EXTREMES = (1e308, -1e308, math.inf, -math.inf, math.nan, 5e-324, 0.0, -0.0, 1.7976931348623157e308)
SIZES = ((80, 24), (60, 20), (200, 50), (120, 40))


def chart_text(chart: MetricChart) -> str:
    """What the chart shows on screen, its title line and state lines included, line by line."""
    return "\n".join(strip.text for strip in chart.render_lines(Region(0, 0, *chart.outer_size)))


def assert_drew_sanely(chart: MetricChart) -> None:
    """Every value handed to plotext is a finite number within the chart's bounds (give or
    take the rounding of a mean)."""
    for curve in chart.plotted:
        assert curve.xs and len(curve.xs) == len(curve.ys)
        assert all(math.isfinite(v) and abs(v) <= LIMIT * (1 + 1e-9) for v in curve.xs + curve.ys), curve


def _run(runs: Path, **kw) -> Path:
    return write_run(runs, "20261101T100000Z-v4-aaaaaa", "v4", "finished", [96.5, 97.9, 98.4, 98.7, 98.6], epochs_total=5, points=40, **kw)


async def _resize_through_sizes(pilot, sizes=SIZES, *, toggle_recipe: bool = False) -> None:
    """Resize the terminal through `sizes` (with ctrl+f after each on the Train screen: the
    recipe panel shown or hidden changes the charts' widths), checking that the app runs on."""
    for size in sizes:
        await pilot.resize_terminal(*size)
        await drained(pilot)
        if toggle_recipe:
            await press(pilot, "ctrl+f")
        assert pilot.app.is_running and pilot.app.return_code is None


async def test_log_charts_empty_and_full_survive_resizes_and_the_recipe_toggle(tmp_path):
    app = MnistTuiApp(runs_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        loss, lr = screen.query_one("#loss-chart", MetricChart), screen.query_one("#lr-chart", MetricChart)
        # Empty charts (no run yet, or the lr chart during epoch 1) on a log axis.
        for chart in (lr, loss):
            await pilot.click(chart)
            assert app.focused is chart  # a click focuses a chart
            await press(pilot, "l")
            assert chart.scale == "log" and chart.plotted == []
        await _resize_through_sizes(pilot, ((80, 24), (120, 40)), toggle_recipe=True)
        assert "log" in chart_text(loss)

        screen.attach(_run(tmp_path), "Following…")
        await wait_for_run_end(pilot)
        await pilot.click(loss)
        await press(pilot, "s", "s", "right")  # smoothing 0.9, and the cursor
        await _resize_through_sizes(pilot, toggle_recipe=True)
        assert loss.log_y and {d.name for d in loss.plotted} == {"train raw", "train", "test"}
        assert_drew_sanely(loss)
        # The test losses (0.4/epoch) drawn as their log10 on an axis labelled in the values.
        test = next(d for d in loss.plotted if d.name == "test")
        assert test.ys == pytest.approx([math.log10(0.4 / e) for e in range(1, 6)])
        assert all(f"{label}┤" in chart_text(loss) for label in ("10", " 1", "0.1"))  # from 18.7 down to 0.08


async def test_a_run_opened_from_the_runs_screen_has_a_log_loss_chart_that_survives_resizes(tmp_path):
    _run(tmp_path)
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: app.screen.query_one("#runs-table", DataTable).row_count == 1)
        await press(pilot, "enter")
        assert isinstance(app.screen, RunDetailScreen)
        loss = app.screen.query_one("#detail-loss", MetricChart)
        await pilot.click(loss)
        assert app.focused is loss
        await press(pilot, "l", "z")  # log, and the last 10 epochs (the whole of these 5)
        await _resize_through_sizes(pilot)
        assert loss.log_y and loss.plotted and "log" in chart_text(loss)
        assert_drew_sanely(loss)


class ChartsApp(App):
    """Three charts, 20, 45 and 100 columns wide: the narrowest a screen makes, and wider."""

    CSS = "MetricChart { height: 14; } #narrow { width: 20; } #middle { width: 45; } #wide { width: 100; }"

    def compose(self) -> ComposeResult:
        for name in ("narrow", "middle", "wide"):
            yield MetricChart(name, id=name)


def _extreme_series(chart: MetricChart, value: float) -> None:
    """A per-batch curve and an epoch curve, each with `value` among ordinary losses."""
    dense = [(i / 10, 1 / (1 + i)) for i in range(60)]
    dense[25] = (2.5, value)
    chart.set_series("train", dense, dense=True)
    chart.set_series("test", [(1.0, 0.5), (2.0, value), (3.0, 0.3), (4.0, 0.2)])


async def test_extreme_values_draw_what_they_can_in_every_mode():
    app = ChartsApp()
    async with app.run_test(size=(170, 50)) as pilot:
        for chart in app.query(MetricChart):
            for value in EXTREMES:
                _extreme_series(chart, value)
                for log in (False, True):
                    for smoothing in (0.0, 0.9):
                        for window, cursor in ((None, None), ((1.5, 3.5), 2.5), (None, 2.0)):
                            chart.log_y, chart.smoothing, chart.window, chart.cursor = log, smoothing, window, cursor
                            chart.replot()
                            chart.render()  # plotext builds the plot here
                            assert_drew_sanely(chart)
                            test = next(d for d in chart.plotted if d.name == "test")
                            ordinary = [0.5, 0.3] if window is None else [0.3]
                            expected = [math.log10(y) for y in ordinary] if log else ordinary
                            assert all(any(math.isclose(y, e) for y in test.ys) for e in expected)  # the rest is drawn
                            if not math.isnan(value) and abs(value) > LIMIT and (value > 0 or not log):
                                assert "clipped" in chart.state()
                            if math.isnan(value) or (log and value <= 0):
                                assert "not drawn" in chart.state()
                            if cursor is not None:
                                assert "x " in chart.readout() and "test" in chart.readout()
            await drained(pilot)
            assert app.is_running
        await pilot.resize_terminal(90, 30)  # and the screen draws them all
        await drained(pilot)
        assert app.is_running


async def test_points_out_of_order_never_reach_plotext_outside_the_view():
    """Found by the property below: a damaged file's x going back, in a zoomed view, put a
    point a million epochs off the plot, and plotext drew the line to it dot by dot until
    the memory ran out."""
    app = ChartsApp()
    async with app.run_test(size=(170, 50)):
        chart = app.query_one("#middle", MetricChart)
        chart.set_series("train", [(i / 10, 1.0) for i in range(80)])
        chart.set_series("stray", [(1.2, 1.0), (1e6, 1.0), (1.5, 2.0), (1.8, 1.0)])
        chart.show_range(1.0, 2.0)
        stray = next(d for d in chart.plotted if d.name == "stray")
        assert stray.xs == [1.2, 1.5, 1.8]  # checked before plotext builds anything
        chart.render()


async def test_a_series_replaced_or_grown_is_drawn_anew():
    """A chart keeps each series' cleaned points between key presses; a new or longer list
    of points is cleaned again."""
    app = ChartsApp()
    async with app.run_test(size=(170, 50)):
        chart = app.query_one("#middle", MetricChart)
        for ys in ([1.0, 2.0, 3.0], [3.0, math.inf, 1.0], [0.5, 0.25, 0.125]):
            chart.set_series("test", [(1.0, ys[0]), (2.0, ys[1]), (3.0, ys[2])])
            chart.replot()
            assert chart.plotted[0].ys == [min(y, LIMIT) for y in ys]
        chart.add_points("test", [(4.0, 0.0625)])
        chart.action_log_y()
        assert chart.plotted[0].ys == [math.log10(y) for y in (0.5, 0.25, 0.125, 0.0625)]


def test_binning_values_near_the_float_limit_keeps_their_mean():
    xs = [0.0, 0.1, 0.2, 0.3]
    assert bin_means(xs, [1e308, 1e308, 1e308, 1e308], 2)[1] == [1e308, 1e308]  # no "intermediate overflow in fsum"


def test_log_ticks_are_labelled_with_the_values():
    assert log_ticks(-5, 0, most=9)[1] == ["1e-5", "0.0001", "0.001", "0.01", "0.1", "1"]
    assert log_ticks(math.log10(0.02), 0, most=9)[1] == ["0.02", "0.05", "0.1", "0.2", "0.5", "1"]
    positions, labels = log_ticks(math.log10(0.031), math.log10(0.034), most=5)
    assert labels == ["0.031", "0.032", "0.033", "0.034"] and len(positions) == 4
    assert len(log_ticks(-323.3, 100, most=5)[0]) <= 5  # 5e-324 to 1e100: a few of them


def _damage(run: Path) -> None:
    """What an untrained or damaged run's files can hold and the readers still pass."""
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs[1]["test_loss"], epochs[2]["lr"], epochs[3]["lr"], epochs[4]["train_loss"] = 1e308, 1e308, 5e-324, 0.0
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    rows = (run / "batches.csv").read_text().splitlines()
    for row, loss in ((3, "1e308"), (9, "0"), (15, "5e-324"), (16, "1e308")):
        fields = rows[row].split(",")
        fields[3] = loss
        rows[row] = ",".join(fields)
    (run / "batches.csv").write_text("\n".join(rows) + "\n")


async def test_a_damaged_run_opens_with_every_chart_drawn_in_every_mode(tmp_path):
    _damage(_run(tmp_path))
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: app.screen.query_one("#runs-table", DataTable).row_count == 1)
        await press(pilot, "enter")
        assert isinstance(app.screen, RunDetailScreen)
        for name in ("loss", "acc", "lr"):
            chart = app.screen.query_one(f"#detail-{name}", MetricChart)
            await pilot.click(chart)
            assert chart.plotted, name  # the damage shows, and so does the rest
            for key in ("s", "s", "l", "z", "right", "plus", "shift+left", "l", "0"):
                await press(pilot, key)
                assert app.is_running
                assert_drew_sanely(chart)
        await _resize_through_sizes(pilot)


async def test_narrow_charts_show_their_view_state_and_cursor_readout(tmp_path):
    """The Train screen at 120x40 with the recipe shown, and a run's own screen at 80x24 and
    60x20: charts of 20 to 40 columns show every part of what their view does."""
    run = _run(tmp_path)
    app = MnistTuiApp(runs_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        screen.attach(run, "Following…")
        await wait_for_run_end(pilot)
        loss = screen.query_one("#loss-chart", MetricChart)
        assert loss.size.width < 40
        await pilot.click(loss)
        await press(pilot, "s", "s", "l", "z", "left")
        _assert_state_on_screen(loss, "smooth 0.9", "log", "epochs", "x ", "train ", "test ")

        app.push_screen(RunDetailScreen([_record(run)]))
        await drained(pilot)
        for size in ((80, 24), (60, 20)):
            await pilot.resize_terminal(*size)
            await drained(pilot)
            for name in ("loss", "lr"):
                chart = app.screen.query_one(f"#detail-{name}", MetricChart)
                assert chart.size.width <= 26
                await pilot.click(chart)
                if chart.cursor is None:
                    await press(pilot, "l", "left")
                _assert_state_on_screen(chart, "log", "x ")


def _record(run: Path):
    from mnist_tui.core.store import read_run

    return read_run(run)


def _assert_state_on_screen(chart: MetricChart, *words: str) -> None:
    shown = chart_text(chart)
    flat = "".join(line.strip() for line in shown.splitlines())  # a part may wrap onto the next line
    for part in chart.state().split(" · "):
        assert part.replace(" ", "") in flat.replace(" ", ""), (part, shown)
    assert all(word in shown for word in words), shown


async def test_question_mark_lists_the_chart_keys_before_a_chart_has_focus(tmp_path):
    app = MnistTuiApp(runs_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        assert not isinstance(app.focused, MetricChart)
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = app.screen.keys
        assert CHARTS_HEADING in keys
        whats = [what for _, what in keys]
        assert whats.index("Start") < keys.index(CHARTS_HEADING) < whats.index("Quit")  # in sight, after the screen's own
        below = keys[keys.index(CHARTS_HEADING) + 1 : keys.index(("", ""), keys.index(CHARTS_HEADING))]
        listed = {key: what for key, what in below}
        assert listed["s"].startswith("Smooth") and listed["l"].startswith("Log y") and listed["z"].startswith("Last N")
        assert {"0", "-"} <= set(listed) and any(w.startswith("Zoom in") for w in listed.values())
        assert listed["← →"].startswith("Cursor") and listed["shift+← →"].startswith("Pan")
        shown = "\n".join(strip.text for part in app.screen.query(Static) for strip in part.render_lines(Region(0, 0, *part.outer_size)))
        assert "tab to a chart" in shown and "Smooth" in shown
        await press(pilot, "escape")

        # With a chart in focus its keys are listed once, under the same heading.
        await pilot.click(app.screen.query_one("#acc-chart", MetricChart))
        await press(pilot, "question_mark")
        assert [what for _, what in app.screen.keys].count(listed["s"]) == 1
        await press(pilot, "escape", "f3", "question_mark")  # the Layers screen has no chart
        assert isinstance(app.screen, HelpScreen) and CHARTS_HEADING not in app.screen.keys


async def test_question_mark_lists_the_chart_keys_on_a_run_and_on_a_comparison(tmp_path):
    _run(tmp_path)
    write_run(tmp_path, "20261102T100000Z-v4-bbbbbb", "v4", "finished", [97.5, 98.4], points=10)
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: app.screen.query_one("#runs-table", DataTable).row_count == 2)
        await press(pilot, "enter", "question_mark")
        assert isinstance(app.screen, HelpScreen) and CHARTS_HEADING in app.screen.keys
        await press(pilot, "escape", "escape", "space", "space", "c")
        assert isinstance(app.screen, RunDetailScreen) and app.screen.comparing
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen) and CHARTS_HEADING in app.screen.keys


async def test_the_chart_in_focus_stands_out(tmp_path):
    app = MnistTuiApp(runs_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        loss, acc = app.screen.query_one("#loss-chart", MetricChart), app.screen.query_one("#acc-chart", MetricChart)
        await pilot.click(loss)
        assert app.focused is loss
        assert loss.styles.border_top != acc.styles.border_top
        assert loss.styles.border_title_background != acc.styles.border_title_background


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Anything a float can be, the extremes made likely.
VALUES = st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=True, allow_infinity=True), st.floats(-2.0, 2.0))
# What the keys do, called as the key bindings call them.
KEYS = {
    "s": MetricChart.action_smooth,
    "l": MetricChart.action_log_y,
    "z": MetricChart.action_zoom_last,
    "+": lambda chart: chart.action_zoom(0.5),
    "-": lambda chart: chart.action_zoom(2),
    "0": MetricChart.action_whole,
    "left": lambda chart: chart.action_move(-1),
    "right": lambda chart: chart.action_move(1),
    "shift+left": lambda chart: chart.action_pan(-1),
    "shift+right": lambda chart: chart.action_pan(1),
}


async def test_any_values_in_any_mode_never_stop_a_chart_from_drawing():
    """Property: any series of floats (NaN, infinities, the float limits, subnormals), along
    ascending epochs or at any x, through any keys, replots and renders without raising."""
    app = ChartsApp()
    async with app.run_test(size=(170, 50)):
        charts = list(app.query(MetricChart))

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
        @given(
            ys=st.lists(VALUES, max_size=80),
            stray=st.lists(st.tuples(VALUES, VALUES), max_size=6),
            dense=st.booleans(),
            keys=st.lists(st.sampled_from(sorted(KEYS)), max_size=8),
        )
        def replot_never_raises(ys, stray, dense, keys):
            for chart in charts:
                chart.clear()
                chart.smoothing, chart.log_y = 0.0, False
                chart.set_series("train", [(i / 10, y) for i, y in enumerate(ys)], dense=dense)
                chart.set_series("stray", stray)  # a damaged file's points, at any x
                for key in keys:
                    KEYS[key](chart)
                chart.replot()
                chart.render()
                assert_drew_sanely(chart)

        replot_never_raises()
