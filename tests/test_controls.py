"""Every control tells the truth: buttons clicked (not only their keys), Escape out of the
command palette, the trainer's own start facts shown by every follower, a stopped run's
dashboard, and "why" explaining the checkpoint the screen showed."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import asdict

import pytest
import torch
from textual.command import CommandPalette
from textual.widgets import Button, ProgressBar, Static

from mnist_tui.core.events import RunStarted
from mnist_tui.core.store import checkpoint, list_runs
from mnist_tui.core.store.follow import Follower
from mnist_tui.core.train import train
from mnist_tui.core.versions import get_version
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.layers import LayersScreen
from mnist_tui.ui.screens.predictions import PredictionsScreen
from mnist_tui.ui.screens.runs import RunsScreen
from mnist_tui.ui.screens.train import TrainScreen
from mnist_tui.ui.screens.why import WhyScreen
from mnist_tui.ui.widgets.epoch_table import EpochTable
from mnist_tui.ui.widgets.version_picker import PICKS
from tests.builders import stub_checkpoint
from tests.ui_helpers import InProcessLauncher, drained, fixture_store, press, settle, type_into, wait_for_run_end, wait_until


async def _within(awaitable, seconds: float = 20.0):
    """A key that never returns fails the test instead of hanging it."""
    return await asyncio.wait_for(awaitable, seconds)


@pytest.mark.parametrize("mode", ["train", "layers", "runs"])
@pytest.mark.parametrize("typed", ["", "tra"])
async def test_escape_closes_the_palette_and_every_key_works_after_it(tmp_path, mode, typed):
    fixture_store(tmp_path)
    app = MnistTuiApp(runs_dir=tmp_path, start_mode=mode, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        beneath = type(app.screen)
        await _within(press(pilot, "ctrl+p", *typed))
        assert isinstance(app.screen, CommandPalette)
        await _within(press(pilot, "escape"))
        assert type(app.screen) is beneath and len(app.screen_stack) == 1
        # the app still answers: another screen, then the palette again, then back
        await _within(press(pilot, "f3"))
        assert isinstance(app.screen, LayersScreen)
        await _within(press(pilot, "ctrl+p"))
        assert isinstance(app.screen, CommandPalette)
        await _within(press(pilot, "escape", "f4"))
        assert isinstance(app.screen, RunsScreen)


async def test_a_click_outside_the_palette_closes_it_and_the_app_goes_on(tmp_path):
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(80, 24)) as pilot:
        await _within(press(pilot, "ctrl+p", *"train v4"))  # a short list: the screen shows below it
        await _within(pilot.click(offset=(2, 22)))  # the dimmed screen below the palette
        await _within(drained(pilot))
        assert isinstance(app.screen, TrainScreen)
        await _within(press(pilot, "f3"))
        assert isinstance(app.screen, LayersScreen)


async def _set_recipe(pilot, epochs: str, limit: str) -> None:
    await type_into(pilot, "#field-epochs", epochs)
    await type_into(pilot, "#field-limit", limit)
    await type_into(pilot, "#field-test_limit", "500")
    await drained(pilot)


async def test_clicking_start_then_stop_trains_and_then_stops_the_run(tmp_path):
    launcher = InProcessLauncher()
    app = MnistTuiApp(runs_dir=tmp_path, launcher=launcher)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await _set_recipe(pilot, "200", "256")  # 200 short epochs: far more than a stop takes to land
        await pilot.click("#start")
        await drained(pilot)
        assert len(launcher.launches) == 1 and screen.running
        await wait_until(pilot, lambda: screen.query_one(EpochTable).row_count >= 1)
        assert not screen.query_one("#stop", Button).disabled
        await pilot.click("#stop")
        await wait_for_run_end(pilot)
        assert str(screen.query_one("#speed", Static).render()).startswith("stopped:")
        # the field a mis-wired Stop showed instead of stopping stays hidden
        assert not screen.query_one("#field-processes").display
        # a run that no longer trains shows no live use of the machine and no progress bar
        assert not str(screen.query_one("#usage", Static).render()).startswith("trainer:")
        assert not screen.query_one("#epoch-progress", ProgressBar).display
        assert screen.query_one("#stop", Button).disabled and not screen.query_one("#start", Button).disabled
    launcher.join()
    [record] = list_runs(tmp_path)
    assert record.status == "stopped" and 1 <= record.epochs_done < 200


@pytest.fixture
def kernels_off(monkeypatch):
    """fp32 training without the fused kernels (MNIST_TUI_FUSED=0), so that its start warns;
    the kernels' state, kept for the process, is forgotten before and after."""
    from mnist_tui.core import fused

    monkeypatch.setenv("MNIST_TUI_FUSED", "0")
    fused._library.cache_clear()
    fused.status.cache_clear()
    yield
    monkeypatch.delenv("MNIST_TUI_FUSED")
    fused._library.cache_clear()
    fused.status.cache_clear()


def test_a_follower_starts_the_run_exactly_as_its_trainer_did(tmp_path, kernels_off):
    """One RunStarted for the trainer and every follower: the warning (here, no fused
    kernels) and the processes included, so the app shows what the trainer knows."""
    config = get_version("v4").config(epochs=1, limit=256, test_limit=500, device="cpu", precision="fp32", runs_dir=str(tmp_path))
    [engine_started] = [ev for ev in train(config) if isinstance(ev, RunStarted)]
    assert engine_started.warning and "fused" in engine_started.warning
    [followed] = [ev for ev in Follower(engine_started.run_dir).poll() if isinstance(ev, RunStarted)]
    assert asdict(followed) == asdict(engine_started)


async def test_the_train_screen_shows_the_warning_of_a_run_it_attaches_to(tmp_path, kernels_off):
    launcher = InProcessLauncher()
    config = get_version("v4").config(epochs=200, limit=256, test_limit=500, device="cpu", precision="fp32", progress_every=1, progress_seconds=0)
    launch = launcher.train(config, tmp_path)  # as if started by another terminal
    app = MnistTuiApp(runs_dir=tmp_path, launcher=launcher)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: screen.running and screen.run_dir == launch.run_dir and screen.follower.started)
            await drained(pilot)
            assert any("fused CPU kernels" in str(n.message) for n in app._notifications)
            await press(pilot, "ctrl+t")
            await wait_for_run_end(pilot)
    finally:
        launch.stop_event.set()
        launcher.join()


def _other_weights(model: str) -> dict:
    torch.manual_seed(1234)
    return get_version(model).build().state_dict()


async def test_why_explains_the_checkpoint_the_predictions_screen_showed(trained_v4_run, tmp_path):
    """The run saves a later epoch while Predictions is open: Why reads the digit with the
    weights the grid was classified with, not the new checkpoint's."""
    run = tmp_path / "runs" / trained_v4_run.path.name
    shutil.copytree(trained_v4_run.path, run)
    app = MnistTuiApp(runs_dir=run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(PredictionsScreen(run))
        await wait_until(pilot, lambda: isinstance(app.screen, PredictionsScreen) and app.screen.predictions is not None)
        shown = app.screen.predictions
        chosen = shown.items[0]
        # a trainer saves epoch 2 meanwhile (other weights)
        checkpoint.save(run, stub_checkpoint(2, _other_weights("v4"), {"model": "v4"}))
        await press(pilot, "w")
        await wait_until(pilot, lambda: isinstance(app.screen, WhyScreen) and app.screen.explanation is not None)
        title = str(app.screen.query_one("#why-title", Static).render())
        assert f"epoch {shown.epoch}" in title and "epoch 2" not in title
        assert app.screen.explanation.predicted == chosen.predicted


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_the_version_picker_shows_every_entry_without_scrolling(tmp_path, size):
    from textual.widgets import OptionList

    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=size) as pilot:
        await drained(pilot)
        versions = app.screen.query_one("#versions", OptionList)
        assert versions.option_count == len(PICKS) and versions.max_scroll_y == 0
        assert versions.content_region.height >= versions.option_count


async def test_every_theme_draws_every_screen(tmp_path):
    """Themes may name ANSI colours (textual-ansi's `ansi_magenta`), which Rich's style
    strings cannot parse: the footer crashed the app once that theme was picked."""
    fixture_store(tmp_path)
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(100, 30)) as pilot:
        for theme in sorted(app.available_themes):
            app.theme = theme
            for key in ("f2", "f3", "f4", "f6", "escape"):
                await press(pilot, key)
                app.save_screenshot(str(tmp_path / "shot.svg"))  # every widget of the screen rendered
            assert app.is_running, theme


@pytest.mark.parametrize("button, kept", [("#no", True), ("#yes", False)])
async def test_the_delete_dialogs_buttons_clicked_keep_or_delete_the_run(tmp_path, button, kept):
    fixture_store(tmp_path)
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table")
        await wait_until(pilot, lambda: table.row_count == 4)
        doomed = app.screen.current_row.run
        await press(pilot, "d")
        await pilot.click(button)
        await settle(pilot)
        await wait_until(pilot, lambda: table.row_count == (4 if kept else 3))
        assert isinstance(app.screen, RunsScreen)
    assert ((tmp_path / doomed).exists()) is kept


@pytest.mark.parametrize("button, status", [("#choice-cancel", None), ("#choice-stop", "stopped"), ("#choice-keep", "finished")])
async def test_the_quit_dialogs_buttons_clicked_do_what_they_say(tmp_path, button, status):
    launcher = InProcessLauncher()
    app = MnistTuiApp(runs_dir=tmp_path, launcher=launcher)
    async with app.run_test(size=(120, 40)) as pilot:
        # kept: 3 epochs run to their end; else 200 short ones, far more than the question takes
        await _set_recipe(pilot, "3" if status == "finished" else "200", "256")
        await pilot.click("#start")
        await wait_until(pilot, lambda: bool(list_runs(tmp_path)) and app.screen.running)
        await press(pilot, "ctrl+q")
        await pilot.click(button)
        await drained(pilot)
        if status is None:  # back to the app, the run still training
            assert isinstance(app.screen, TrainScreen) and app.screen.running and app.return_code is None
            await press(pilot, "ctrl+t")
            await wait_for_run_end(pilot)
    launcher.join()
    [record] = list_runs(tmp_path)
    assert record.status == (status or "stopped")
    assert record.epochs_done == 3 if status == "finished" else record.epochs_done < 200


async def test_the_compare_screen_offers_no_predictions_and_says_what_it_is(tmp_path):
    from mnist_tui.ui.screens.help import HelpScreen
    from mnist_tui.ui.screens.run_detail import RunDetailScreen

    fixture_store(tmp_path)
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: app.screen.query_one("#runs-table").row_count == 4)
        await press(pilot, "space", "space", "c")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        compare = app.screen
        assert compare.comparing
        assert "p" not in compare.active_bindings  # the footer and `?` offer only what works here
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen) and "Compare" in app.screen.title_text
        assert not any(what == "Predictions" for _key, what in app.screen.keys)


async def test_a_failed_runs_detail_says_why_it_failed(tmp_path):
    import json

    from mnist_tui.ui.screens.run_detail import RunDetailScreen
    from tests.ui_helpers import write_run

    run = write_run(tmp_path, "20261109T100000Z-v2-fa11ed", "v2", "stopped", [97.0])
    status = json.loads((run / "status.json").read_text())
    reason = "RuntimeError: value cannot be converted to type float without overflow"
    (run / "status.json").write_text(json.dumps({**status, "status": "failed", "reason": reason}))
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: app.screen.query_one("#runs-table").row_count == 1)
        await press(pilot, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        await settle(pilot)
        assert f"failed: {reason}" in str(app.screen.query_one("#detail-title", Static).render())


async def test_deleting_marked_runs_says_first_that_a_training_one_is_kept(tmp_path):
    import json

    from mnist_tui.core.store.lock import RunLock
    from mnist_tui.ui.screens.confirm import ConfirmScreen
    from tests.ui_helpers import write_run

    fixture_store(tmp_path)
    live = write_run(tmp_path, "20261110T100000Z-v4-11fe00", "v4", "running", [97.0], epochs_total=9, created="2026-11-10T10:00:00+00:00")
    status = json.loads((live / "status.json").read_text())
    (live / "status.json").write_text(json.dumps({**status, "host": ""}))
    lock = RunLock.acquire(live)  # as its trainer holds it
    try:
        app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs", launcher=InProcessLauncher())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            table = app.screen.query_one("#runs-table")
            await wait_until(pilot, lambda: table.row_count == 5)
            runs_screen = app.screen
            assert runs_screen.current_row.run == live.name and runs_screen.current_row.status == "running"
            await press(pilot, "d")  # the live run alone: not even asked
            assert not isinstance(app.screen, ConfirmScreen)
            await press(pilot, "space", "space")  # the live run and the next one marked
            await press(pilot, "d")
            assert isinstance(app.screen, ConfirmScreen)
            assert "1 marked run is still training and will be kept" in app.screen.question
            await press(pilot, "y")
            await settle(pilot)
            await wait_until(pilot, lambda: table.row_count == 4)
        assert live.exists()
    finally:
        lock.release()


async def test_predictions_say_when_the_runs_own_test_pass_used_fewer_digits(tmp_path):
    import json

    from tests.builders import untrained_v2_run

    run = untrained_v2_run(tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "test_size": 1000}))
    app = MnistTuiApp(runs_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(PredictionsScreen(run))
        await wait_until(pilot, lambda: isinstance(app.screen, PredictionsScreen) and app.screen.predictions is not None)
        await drained(pilot)
        title = str(app.screen.query_one("#predictions-title", Static).render())
        assert "in 10,000 test digits" in title and "the run's own test pass used the first 1,000" in title


@pytest.mark.parametrize("typed", ["1e308", "2.5", "12ab"])
async def test_a_whole_number_field_keeps_what_was_typed_and_says_what_is_wrong(tmp_path, typed):
    from textual.widgets import Input

    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await type_into(pilot, "#field-epochs", typed)
        await drained(pilot)
        assert app.screen.query_one("#field-epochs", Input).value == typed  # nothing dropped
        assert f"epochs: {typed!r} is not a whole number" in str(app.screen.query_one("#error-epochs", Static).render())
        assert app.screen.query_one("#start", Button).disabled


@pytest.mark.parametrize("key, lands", [("pageup", 0), ("pagedown", -1)])
async def test_page_keys_on_a_picker_not_laid_out_yet_move_to_an_end(tmp_path, key, lands):
    """Textual's OptionList raised KeyError on a page key before its lines were laid out at
    the current size, ending the app (the slow walk's seed 18, after resizes at 80x24)."""
    from mnist_tui.ui.widgets.version_picker import VersionList

    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(80, 24)) as pilot:
        await drained(pilot)
        versions = app.screen.query_one("#versions", VersionList)
        versions.highlighted = 4
        versions._index_to_line.clear()  # as before a layout at the current size
        versions._lines.clear()
        await press(pilot, key)
        assert app.is_running and versions.highlighted == range(len(PICKS))[lands]


async def test_the_palettes_keys_command_opens_the_apps_keys_screen_and_the_app_closes_cleanly(tmp_path):
    """Found by the UI walk (seed 19): Textual's own "Keys" command showed its help panel, whose
    bindings asked for a screen while the app was closing, and the app's shutdown raised
    ScreenStackError. The palette's Keys now opens the app's keys screen."""
    from mnist_tui.ui.screens.help import HelpScreen

    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await _within(press(pilot, "ctrl+p", *"Keys"))
        await _within(press(pilot, "enter"))
        for _ in range(50):
            if isinstance(app.screen, HelpScreen):
                break
            await pilot.pause(0.05)
        assert isinstance(app.screen, HelpScreen)
        assert not app.query("HelpPanel")
    # leaving run_test closed every screen: reaching here is the check that shutdown did not raise
