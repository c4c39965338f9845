"""The UI thread never reads a run folder: one watcher thread per app polls the followed run
and the runs folder and posts messages; screens read and delete in workers."""

from __future__ import annotations

import threading

from textual.widgets import DataTable

from mnist_tui.core.store import list_runs
from mnist_tui.core.store.follow import Follower
from mnist_tui.core.versions import get_version
from mnist_tui.ui import app as app_module
from mnist_tui.ui import watcher
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens import draw, run_detail, runs, train
from mnist_tui.ui.screens.confirm import ConfirmScreen
from mnist_tui.ui.screens.run_detail import RunDetailScreen
from mnist_tui.ui.watcher import RunsChanged
from tests.ui_helpers import InProcessLauncher, drained, fixture_store, press, settle, wait_for_run_end, wait_until, write_run


def _record_ui_thread_reads(monkeypatch) -> list[str]:
    """Every store reader the app's code calls, wrapped to note calls made on the UI thread."""
    on_ui: list[str] = []

    def watched(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            if threading.current_thread() is threading.main_thread():
                on_ui.append(f"{module.__name__}.{name}")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for module, name in [
        (app_module, "list_runs"),
        (app_module, "changed_since"),
        (watcher, "changed_since"),
        (runs, "list_runs"),
        (runs, "delete_run"),
        (train, "list_runs"),
        (run_detail, "read_run"),
        (run_detail, "read_points"),
        (draw, "list_runs"),
        (Follower, "poll"),
        (Follower, "new_points"),
    ]:
        watched(module, name)
    return on_ui


async def test_training_browsing_and_deleting_read_no_run_folder_on_the_ui_thread(tmp_path, monkeypatch):
    on_ui = _record_ui_thread_reads(monkeypatch)
    fixture_store(tmp_path)
    write_run(tmp_path, "20261105T100000Z-v3-eeeeee", "v3", "finished", [97.0, 98.2], epochs_total=2, points=20)
    launcher = InProcessLauncher()
    app = MnistTuiApp(runs_dir=tmp_path, launcher=launcher)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        config = get_version("v4").config(epochs=1, limit=256, test_limit=500, device="cpu")
        screen.launch = launcher.train(config, tmp_path)
        screen.attach(screen.launch.run_dir, "Starting…")
        await wait_for_run_end(pilot)
        await press(pilot, "f4")
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 6)
        await press(pilot, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        await settle(pilot)
        await press(pilot, "r")
        await settle(pilot)
        await press(pilot, "escape", "d")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        await settle(pilot)
        await wait_until(pilot, lambda: table.row_count == 5)
        await press(pilot, "f6")
        await settle(pilot)
    launcher.join()
    assert on_ui == []
    assert len(list_runs(tmp_path)) == 5


async def test_a_run_written_elsewhere_reaches_every_screen_through_the_watcher(tmp_path, monkeypatch):
    """One look at the folder serves every subscriber; the Runs screen, shown again,
    reads the store once for what changed while it was hidden."""
    monkeypatch.setattr(watcher, "FOLDER_S", 0.1)
    fixture_store(tmp_path)
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 4)
        await press(pilot, "f3")  # away from Runs
        write_run(tmp_path, "20261106T100000Z-v4-ffffff", "v4", "finished", [98.0])
        runs_screen = app.get_screen("runs")
        await wait_until(pilot, lambda: runs_screen.stale)
        assert table.row_count == 4  # not read while hidden
        await press(pilot, "f4")
        await wait_until(pilot, lambda: table.row_count == 5)
        await drained(pilot)


def test_changes_queued_together_merge_into_one():
    assert RunsChanged().can_replace(RunsChanged())
