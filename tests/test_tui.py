"""Pilot tests: the app driven from the keyboard, as a user would."""

from __future__ import annotations

import csv
import json
import re
import time

import pytest
from textual.widgets import DataTable, Input, OptionList, Static

from mnist_tui.core.store import list_runs
from mnist_tui.core.versions import get_version
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.confirm import ChoiceScreen, ConfirmScreen
from mnist_tui.ui.screens.run_detail import RunDetailScreen
from mnist_tui.ui.screens.train import TrainScreen
from mnist_tui.ui.widgets.charts import MetricChart
from mnist_tui.ui.widgets.epoch_table import EpochTable
from tests.ui_helpers import InProcessLauncher, drained, fixture_store, press, settle, type_into, wait_for_run_end, wait_until


def _cell(table: DataTable, row: int, column: str) -> str:
    return str(table.get_row_at(row)[table.get_column_index(column)])


async def _set_recipe(pilot, epochs: str, limit: str, test_limit: str = "500") -> None:
    await type_into(pilot, "#field-epochs", epochs)
    await type_into(pilot, "#field-limit", limit)
    await type_into(pilot, "#field-test_limit", test_limit)
    await drained(pilot)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_train_v2_from_the_keyboard_fills_table_charts_and_runs(tmp_path, size):
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        versions = screen.query_one("#versions", OptionList)
        assert versions.has_focus  # the arrow keys work from the start
        start = screen.query_one("#start")
        assert start.region.height >= 1 and start.region.bottom <= size[1] - 1  # Start in sight, above the footer
        await press(pilot, "down")  # v1 fills the form with its recipe...
        assert screen.query_one("#field-optimizer").value == "adam"
        await press(pilot, "down")  # ...and v2 with its own
        assert versions.highlighted == 2 and screen.query_one("#field-optimizer").value == "adamw"
        # 2,000 test images: the run lasts long enough to be seen running (with 500 it could
        # start and end between two looks).
        await _set_recipe(pilot, "2", "256", test_limit="2000")
        form_config = screen.query_one("#form").config
        assert form_config.recipe.epochs == 2 and form_config.limit == 256 and form_config.model == "v2"
        await press(pilot, "ctrl+s")
        await wait_until(pilot, lambda: screen.running)
        assert screen.query_one("#form").disabled and versions.disabled  # the run's recipe is read-only
        await wait_for_run_end(pilot)
        assert not screen.query_one("#form").disabled

        table = screen.query_one(EpochTable)
        assert table.row_count == 2
        # The training curves have a point a batch (256 images: 2 batches of 128), the test's one an epoch.
        assert screen.query_one("#loss-chart", MetricChart).point_counts == {"train": 4, "test": 2}
        assert screen.query_one("#acc-chart", MetricChart).point_counts == {"train": 4, "test": 2}
        assert screen.query_one("#lr-chart", MetricChart).point_counts == {"lr": 2}
        device_line = str(screen.query_one("#device-line", Static).render())
        [run_dir] = list(tmp_path.iterdir())
        used = json.loads((run_dir / "config.json").read_text())["precision"]
        assert "CPU" in device_line and f"· {used} ·" in device_line  # the numeric mode is shown

        await press(pilot, "f4")
        await settle(pilot)
        runs_table = app.screen.query_one("#runs-table", DataTable)
        assert runs_table.row_count == 1
        assert _cell(runs_table, 0, "status") == "finished" and _cell(runs_table, 0, "epochs") == "2/2"


async def test_the_first_choice_is_the_quick_run_and_every_choice_says_how_long_it_takes(tmp_path):
    from mnist_tui.core.versions import QUICK, VERSIONS

    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        versions = screen.query_one("#versions", OptionList)
        assert versions.highlighted == 0 and versions.get_option_at_index(0).id == "quick"
        config = screen.query_one("#form").config
        assert config.model == QUICK.model and config.recipe == QUICK.recipe  # what Start trains
        labels = [str(versions.get_option_at_index(i).prompt) for i in range(versions.option_count)]
        assert len(labels) == 1 + len(VERSIONS), labels
        assert all(re.search(r" \d+[smh]\d*$", label) for label in labels), labels  # e.g. "37s", "8m"
        title = str(screen.query_one("#version-title", Static).render())
        assert "about" in title and "2-core CPU" in title
        await type_into(pilot, "#field-epochs", "30")  # ten times the epochs: ten times as long
        await drained(pilot)
        assert "min" in str(screen.query_one("#version-title", Static).render())


async def test_keys_typed_in_a_burst_all_land_in_order(tmp_path):
    """A terminal delivers keys typed fast (or pasted) in one read: none is lost or reordered,
    whether the field turns invalid on the way or not."""
    from textual import events

    app = MnistTuiApp(runs_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "tab")  # from the version list to the first field, epochs
        field = app.screen.query_one("#field-epochs", Input)
        assert app.focused is field
        other = app.screen.query_one("#field-lr", Input)
        for theme in ("textual-dark", "textual-light"):  # the field in focus stands out plainly
            app.theme = theme
            await drained(pilot)
            focused, plain = field.styles.background, other.styles.background
            assert sum(abs(a - b) for a, b in zip(focused.rgb, plain.rgb)) > 60, theme
        batch = app.screen.query_one("#field-batch_size", Input)
        bursts = (
            ("end backspace 0", field, "0"),
            ("backspace 1 5 end backspace backspace 3", field, "3"),
            ("backspace 0 backspace 6 4", field, "64"),
            ("tab end backspace backspace backspace 3 2", batch, "32"),  # Tab moves on before the keys behind it land
            ("shift+tab end backspace backspace 7", field, "7"),
        )
        for burst, target, expected in bursts:
            for key in burst.split():
                app.post_message(events.Key(key, key if len(key) == 1 else "\x7f" if key == "backspace" else None))
            await drained(pilot)  # every key handled, and what each caused
            assert target.value == expected and app.focused is target, burst
        assert batch.value == "32" and field.value == "7"


async def test_the_tests_key_helper_types_what_textuals_pilot_types(tmp_path):
    """tests/ui_helpers.press stands in for pilot.press: the same keys reach a field."""
    typed = "a-1<2>3 .e_+?/"  # into the Runs filter, a field that takes any text
    values = []
    for use_pilot in (True, False):
        app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs")
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await type_into(pilot, "#runs-filter", "")
            await (pilot.press(*typed) if use_pilot else press(pilot, *typed))
            await drained(pilot)
            values.append(app.screen.query_one("#runs-filter", Input).value)
    assert values == [typed, typed]


async def test_invalid_recipe_is_shown_inline_and_start_refused(tmp_path):
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await type_into(pilot, "#field-epochs", "0")
        await drained(pilot)
        field = app.screen.query_one("#field-epochs", Input)
        assert field.has_class("-invalid")
        assert "epochs must be a positive whole number" in str(app.screen.query_one("#error-epochs", Static).render())
        assert field.region.height == 1 and field.value == "0"  # the field keeps its line and its text
        assert app.screen.query_one("#start").disabled
        await press(pilot, "ctrl+s")
        await settle(pilot)
        assert not tmp_path.exists() or not list(tmp_path.iterdir())


async def _start_and_wait_for_an_epoch(pilot) -> None:
    # 200 short epochs (256 images, 500 test images): far more than a stop takes to land.
    await _set_recipe(pilot, "200", "256")
    await press(pilot, "ctrl+s")
    await wait_until(pilot, lambda: pilot.app.screen.query_one(EpochTable).row_count >= 1)


async def test_stop_midway_saves_the_run_as_stopped(tmp_path):
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await _start_and_wait_for_an_epoch(pilot)
        await press(pilot, "ctrl+t")  # the line says "Stopping after this batch…" until it has
        await wait_for_run_end(pilot)
        [record] = list_runs(tmp_path)
        assert record.status == "stopped" and 1 <= record.epochs_done < 200
        assert not screen.running
        assert "Stopping" not in str(screen.query_one("#device-line", Static).render())  # it says which run, again
        assert str(screen.query_one("#speed", Static).render()).startswith("stopped:")


# Stopped: 200 short epochs, far more than the question takes. Kept: 6 epochs, each testing
# on 3,000 images, leave seconds to spare, and the run is then followed to its end.
@pytest.mark.parametrize("answer, status, epochs, test_limit", [("s", "stopped", 200, "500"), ("k", "finished", 6, "3000")])
async def test_quitting_while_training_asks_whether_to_keep_it_training(tmp_path, answer, status, epochs, test_limit):
    launcher = InProcessLauncher()
    app = MnistTuiApp(runs_dir=tmp_path, launcher=launcher)
    async with app.run_test(size=(120, 40)) as pilot:
        await _set_recipe(pilot, str(epochs), "256", test_limit)
        await press(pilot, "ctrl+s")
        # its run folder exists, and the screen follows the run
        await wait_until(pilot, lambda: bool(list_runs(tmp_path)) and app.screen.running)
        await press(pilot, "ctrl+q")
        await drained(pilot)
        assert isinstance(app.screen, ChoiceScreen)
        await press(pilot, answer)
        await drained(pilot)
    assert app.return_code == 0  # the app has quit; the trainer goes on (or stops) without it
    launcher.join()
    [record] = list_runs(tmp_path)
    assert record.status == status and (record.epochs_done < epochs if status == "stopped" else record.epochs_done == epochs)


async def test_the_app_attaches_to_a_run_that_is_training_and_stops_it(tmp_path):
    launcher = InProcessLauncher()
    config = get_version("v4").config(epochs=200, limit=256, test_limit=500, device="cpu", progress_every=1, progress_seconds=0)
    launch = launcher.train(config, tmp_path)  # as if started earlier by another mnist-tui
    deadline = time.monotonic() + 60
    while not (launch.run_dir.exists() and list_runs(tmp_path)[0].epochs_done >= 1):
        assert time.monotonic() < deadline, "the trainer did not finish an epoch"
        launch.thread.join(0.05)
    app = MnistTuiApp(runs_dir=tmp_path, launcher=launcher)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.running and screen.query_one(EpochTable).row_count >= 1)
        assert screen.run_dir == launch.run_dir and not screen.query_one("#stop").disabled
        form = screen.query_one("#form").config  # the form shows the followed run's recipe
        assert form.model == "v4" and form.recipe.epochs == 200 and form.limit == 256
        await press(pilot, "ctrl+t")
        await wait_for_run_end(pilot)
    launcher.join()
    [record] = list_runs(tmp_path)
    assert record.status == "stopped" and 1 <= record.epochs_done < 200


async def test_layers_shows_totals_of_every_version(tmp_path):
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await press(pilot, "f3")
        await settle(pilot)
        totals = lambda: str(app.screen.query_one("#layer-totals", Static).render())  # noqa: E731
        assert "420,614" in totals()
        assert app.screen.query_one("#layer-table", DataTable).row_count == 22
        app.screen.query_one("#layer-versions", OptionList).focus()
        await press(pilot, "down")
        await settle(pilot)
        assert "99,746" in totals()
        assert app.screen.query_one("#layer-table", DataTable).row_count == 23
        compare = app.screen.query_one("#compare-table", DataTable)
        assert compare.row_count == 5  # v1..v5 side by side
        app.screen.query_one("#layer-versions", OptionList).focus()
        await press(pilot, "down", "down")
        await settle(pilot)
        assert "7,432" in totals()  # v4, under 8k
        await press(pilot, "down")
        await settle(pilot)
        assert "4,900" in totals()  # v5, under 5k
        await press(pilot, "up", "up", "up")
        await settle(pilot)
        assert "99,746" in totals()
        await press(pilot, "s")
        await drained(pilot)
        saved = tmp_path / "exports" / "v2-summary.txt"  # beside the runs, never the working folder
        assert "Total params: 99,746" in saved.read_text()


async def test_runs_open_filter_compare_delete_export(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    fixture_store(runs)
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.row_count == 4
        statuses = [_cell(table, i, "status") for i in range(4)]
        assert sum(s.startswith("damaged") for s in statuses) == 1
        first = _cell(table, 0, "run")
        await press(pilot, "S")  # reverse the sort, then back
        await drained(pilot)
        assert _cell(table, 3, "run") == first and "↑" in str(app.screen.query_one("#runs-summary", Static).render())
        await press(pilot, "S")
        await drained(pilot)
        assert _cell(table, 0, "run") == first

        # newest first: the damaged run, then the stopped v2; open the finished v2
        await press(pilot, "down", "down", "enter")
        await drained(pilot)
        assert isinstance(app.screen, RunDetailScreen)
        assert app.screen.query_one(EpochTable).row_count == 3
        await press(pilot, "escape")

        await press(pilot, "slash", *"model:v1", "enter")
        await drained(pilot)
        assert table.row_count == 1
        await press(pilot, "slash", "ctrl+u", "enter")  # clear the filter
        await drained(pilot)
        assert table.row_count == 4

        await press(pilot, "space", "space", "c")  # marking moves down: two runs marked
        await drained(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.comparing
        series = app.screen.query_one("#detail-acc", MetricChart).series
        assert len(series) == 2 and all(len(label) <= 16 for label in series)  # short legend labels, not run ids
        await press(pilot, "escape")

        await press(pilot, "e")
        await drained(pilot)
        [exported] = list((runs / "exports").glob("mnist-tui-runs-*.csv"))
        rows = list(csv.DictReader(exported.open()))
        assert len(rows) == 4 and {r["epochs_done"] for r in rows} >= {"3", "1"} and not list(tmp_path.glob("*.csv"))

        await press(pilot, "up", "up", "space", "space")  # unmark both again
        assert app.screen.marked == set()
        doomed = app.screen.current_row.run
        await press(pilot, "d")
        await drained(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        await settle(pilot)  # the table is read again in a worker
        assert not (runs / doomed).exists()
        assert table.row_count == 3

        await press(pilot, "slash", *"nothing-matches", "enter")
        await drained(pilot)
        await press(pilot, "e")
        await drained(pilot)
        assert len(list((runs / "exports").glob("*.csv"))) == 1  # an empty table exports nothing


async def test_marked_runs_show_in_their_own_column_and_delete_together(tmp_path):
    runs = tmp_path / "runs"
    fixture_store(runs)
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        first, second, third = (_cell(table, i, "run") for i in range(3))
        await press(pilot, "space", "space")
        assert table.cursor_row == 2  # the cursor moved on after each mark
        assert ["●" in _cell(table, i, "mark") for i in range(3)] == [True, True, False]
        assert _cell(table, 0, "run") == first  # the id is untouched by the mark
        await press(pilot, "D")
        await drained(pilot)
        assert isinstance(app.screen, ConfirmScreen) and "2 marked runs" in app.screen.question
        await press(pilot, "y")
        await wait_until(pilot, lambda: table.row_count == 2)
        assert not (runs / first).exists() and not (runs / second).exists() and (runs / third).exists()
        assert app.screen.marked == set()


async def test_runs_screen_follows_a_run_written_elsewhere(tmp_path):
    from tests.ui_helpers import write_run

    runs = tmp_path / "runs"
    runs.mkdir()
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.row_count == 0
        write_run(runs, "20261105T100000Z-v2-eeeeee", "v2", "finished", [98.0, 99.0])  # as another process would
        await wait_until(pilot, lambda: table.row_count == 1, timeout=10)


async def test_predictions_grid_and_mistakes_only(tmp_path):
    import torch

    from mnist_tui.core.store import RunWriter
    from mnist_tui.core.versions import get_version
    from mnist_tui.ui.screens.predictions import PredictionsScreen
    from mnist_tui.ui.widgets.digit_grid import DigitGrid
    from tests.builders import stub_checkpoint

    torch.manual_seed(0)
    model = get_version("v2").build()
    writer = RunWriter.create(tmp_path, "v2", {"config": {"model": "v2", "recipe": {"epochs": 1}}})
    writer.save_checkpoint(stub_checkpoint(1, model.state_dict(), {"model": "v2"}))
    writer.close("stopped")
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "p")  # the classification starts once the screen is drawn
        await wait_until(pilot, lambda: isinstance(app.screen, PredictionsScreen) and app.screen.predictions is not None)
        grid = app.screen.query_one(DigitGrid)
        assert len(grid.items) == 48
        assert "mistakes in" in str(app.screen.query_one("#predictions-title", Static).render())
        await press(pilot, "m")
        await settle(pilot)
        assert grid.items and all(not p.correct for p in grid.items)
        await press(pilot, "f4")  # the screen keys close what was opened over their screen
        await drained(pilot)
        from mnist_tui.ui.screens.runs import RunsScreen

        assert isinstance(app.screen, RunsScreen)


async def test_damaged_runs_are_marked_and_the_good_one_opens(tmp_path):
    from tests.builders import damaged_store

    expected, good = damaged_store(tmp_path)
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        statuses = {_cell(table, i, "run"): _cell(table, i, "status") for i in range(table.row_count)}
        assert {name for name, s in statuses.items() if s == "damaged"} == set(expected)
        assert statuses[good.name] == "stopped"
        table.move_cursor(row=table.get_row_index(good.name))
        await press(pilot, "enter")
        await drained(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.records[0].path == good


async def test_resume_key_continues_a_stopped_run_on_the_train_screen(tmp_path):
    import threading

    from mnist_tui.core.events import EpochFinished
    from mnist_tui.core.train import train
    from mnist_tui.core.versions import get_version

    stop = threading.Event()
    config = get_version("v2").config(epochs=2, limit=256, test_limit=500, device="cpu", runs_dir=str(tmp_path))
    for ev in train(config, stop):
        if isinstance(ev, EpochFinished):
            stop.set()
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.select("v4")  # another version in the form before the resume
        await press(pilot, "f4")
        await settle(pilot)
        await press(pilot, "r")
        await drained(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.query_one("#form").model == "v2")
        form = app.screen.query_one("#form")  # the resumed run's own recipe, not v4's
        assert form.query_one("#field-epochs", Input).value == "2" and form.query_one("#field-limit", Input).value == "256"
        assert app.screen.picked == "v2"
        await wait_for_run_end(pilot)
        assert app.screen.query_one(EpochTable).row_count == 2  # the old epoch and the resumed one
        [record] = list_runs(tmp_path)
        assert record.status == "finished" and record.epochs_done == 2


def test_the_digit_grid_says_nothing_until_the_classification_is_in():
    from mnist_tui.ui.widgets.digit_grid import DigitGrid

    grid = DigitGrid()
    assert str(grid.render()) == ""  # the title says "Classifying…" meanwhile, not "No predictions"
    grid.items, grid.shown = [], True
    assert str(grid.render()) == "No predictions to show."


async def test_footer_keeps_whole_keys_at_80_columns_and_question_mark_lists_them_all(tmp_path):
    from mnist_tui.ui.screens.help import HelpScreen
    from mnist_tui.ui.widgets.footer import KeyFooter

    fixture_store(tmp_path)
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        footer = app.screen.query_one(KeyFooter)
        line = str(footer.render())
        shown = [b.description for b, _enabled in footer.fitting(80)]
        assert shown[:3] == ["Keys", "Open", "Filter"]  # the most important first, Enter among them
        assert len(line) <= 80 and line.rstrip().endswith("^p palette")
        assert all(f"{app.get_key_display(b)} {b.description}" in line for b, _ in footer.fitting(80))  # each key whole
        assert "Delete marked" not in shown  # no room: it waits in the help screen
        await pilot.click(KeyFooter, offset=(line.index("Filter"), 0))  # a key can be clicked
        assert app.focused is app.screen.query_one("#runs-filter")
        await press(pilot, "escape", "question_mark")
        await drained(pilot)
        assert isinstance(app.screen, HelpScreen)
        listed = dict((what, key) for key, what in app.screen.keys)
        assert listed["Delete marked"] == "D" and listed["Open"] == "⏎" and listed["Runs"] == "f4"
        await press(pilot, "escape")
        await drained(pilot)
        assert not isinstance(app.screen, HelpScreen)
        await pilot.resize_terminal(160, 40)
        await settle(pilot)
        assert len(app.screen.query_one(KeyFooter).fitting(160)) > len(shown)  # more room, more keys


async def test_palette_train_trains_that_version_with_its_own_recipe(tmp_path):
    """'Train v4' starts v4 with v4's recipe (not the recipe the form held before); 'Select
    v4' only fills the form."""
    from mnist_tui.core.versions import get_version
    from mnist_tui.trainer import Launch

    started = []

    class Recorder:
        def start(self, config, runs_dir, name, place=None, slot=None):
            started.append(config)
            if slot is not None:
                slot.release()  # no trainer holds it
            return Launch(run_dir=tmp_path / "never", error="not started: a test")

    app = MnistTuiApp(runs_dir=tmp_path, launcher=Recorder())
    async with app.run_test(size=(80, 24)) as pilot:
        await drained(pilot)  # the quick recipe is in the form
        await app.train_version("v3")
        assert started == [] and app.screen.query_one("#form").model == "v3"
        await app.train_version("v4", start=True)
        await drained(pilot)
        [config] = started
        assert config.model == "v4" and config.recipe == get_version("v4").recipe


async def test_palette_dismissed_twice_at_once_leaves_the_screen_beneath(tmp_path):
    """A click outside the palette and a command chosen a moment before both dismiss it;
    the second must not pop the Train screen (it raised ScreenStackError on a loaded CPU)."""
    from textual.command import CommandPalette

    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "ctrl+p", *"select v4")
        await drained(pilot)
        palette = app.screen
        assert isinstance(palette, CommandPalette)
        # The click on the background and the selection already queued, in one turn of the
        # app's loop (the stock palette raised ScreenStackError here).
        app.call_later(lambda: (palette.dismiss(), palette.dismiss()))
        await drained(pilot)
        assert isinstance(app.screen, TrainScreen) and len(app.screen_stack) == 1
        await pilot.click("#field-epochs")  # the app goes on
        assert app.focused is app.screen.query_one("#field-epochs")


async def test_predictions_show_progress_while_classifying_then_the_grid(tmp_path, monkeypatch):
    import threading

    from textual.widgets import ProgressBar

    import mnist_tui.core.predict as core_predict
    from mnist_tui.ui.screens import predictions as predictions_screen
    from mnist_tui.ui.widgets.digit_grid import DigitGrid
    from tests.builders import untrained_v2_run

    untrained_v2_run(tmp_path)
    # Hold the classification a quarter of the way through, until the test has looked.
    reached, release = threading.Event(), threading.Event()
    real_predict = core_predict.predict

    def held_predict(*args, progress, **kwargs):
        def report(done: int, total: int) -> None:
            progress(done, total)
            if done >= total // 4 and not reached.is_set():
                reached.set()
                release.wait(60)

        return real_predict(*args, progress=report, **kwargs)

    monkeypatch.setattr(core_predict, "predict", held_predict)
    monkeypatch.setattr(predictions_screen, "PROGRESS_EVERY", 0)  # every chunk reaches the screen
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        try:
            await settle(pilot)
            await press(pilot, "p")
            await wait_until(pilot, reached.is_set)
            screen = app.screen
            progress_text = screen.query_one("#predictions-progress-text", Static)
            await wait_until(pilot, lambda: "of 10,000" in str(progress_text.render()))
            line = str(progress_text.render())
            done = int(re.search(r"classified ([\d,]+) of 10,000", line).group(1).replace(",", ""))
            assert 2_500 <= done < 10_000
            assert screen.query_one("#predictions-progress").display
            assert screen.query_one(ProgressBar).progress == done
            grid = screen.query_one(DigitGrid)
            assert str(grid.render()) == ""  # not 'No predictions' while they are being made
            assert str(screen.query_one("#predictions-title", Static).render()).startswith("Classifying the 10,000 test digits")
        finally:
            release.set()
        await settle(pilot)
        assert len(grid.items) == 48
        assert not screen.query_one("#predictions-progress").display  # the grid replaced it
        assert "mistakes in" in str(screen.query_one("#predictions-title", Static).render())
        await press(pilot, "m")  # classified already: the mistakes come without progress
        await settle(pilot)
        assert grid.items and all(not p.correct for p in grid.items)
        assert not screen.query_one("#predictions-progress").display


async def test_predictions_of_an_unusable_checkpoint_say_why_in_red(tmp_path):
    from rich.text import Text

    from mnist_tui.ui.widgets.digit_grid import DigitGrid
    from tests.ui_helpers import write_run

    write_run(tmp_path, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [99.0])  # a checkpoint without weights
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "p")  # the classification starts once the screen is drawn
        screen = app.screen
        title = screen.query_one("#predictions-title", Static)
        await wait_until(pilot, lambda: not str(title.render()).startswith("Classifying"))
        assert str(title.render()).startswith("Cannot load this run's model: the checkpoint holds no model weights")
        assert isinstance(title.content, Text) and title.content.style == "red"
        assert not screen.query_one("#predictions-progress").display
        assert str(screen.query_one(DigitGrid).render()) == ""


async def test_the_processes_field_waits_in_the_palette_where_processes_cannot_pay(tmp_path):
    # 2 cores, no GPUs (the conftest's two_cores_no_gpus)
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(80, 24)) as pilot:
        field = app.screen.query_one("#field-processes", Input)
        assert not field.display and not app.screen.query_one("#label-processes").display
        await app.run_on_train_screen("action_show_processes")  # the palette's "Show the Processes field"
        await drained(pilot)
        assert field.display and field.has_focus
        await press(pilot, "end", "backspace", "3")
        await drained(pilot)
        reason = str(app.screen.query_one("#error-processes", Static).render())
        assert "does not split evenly between 3 processes" in reason and app.screen.query_one("#start").disabled
        await press(pilot, "backspace", "2")
        await drained(pilot)
        assert app.screen.query_one("#form").config.processes == 2 and not app.screen.query_one("#start").disabled
