"""`x` on a run in the app: the format picked by key or by click, Escape and Cancel leave
nothing behind, a loading indicator while the export works, then its check with the file's
path; a missing extra, an existing file and a run without a checkpoint are notifications.

The run is v4 trained for one epoch on 256 images and checked on 256 test images, exported
as pt2 (torch only, a few seconds); the ONNX paths are covered by tests/test_export.py."""

from __future__ import annotations

import shutil
import sys
import threading

import pytest
from textual.widgets import DataTable, Static

from mnist_tui.core import export, exporters
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.export import ExportScreen
from mnist_tui.ui.screens.help import screen_keys
from mnist_tui.ui.screens.run_detail import RunDetailScreen
from mnist_tui.ui.screens.runs import RunsScreen
from tests.builders import trained_run
from tests.ui_helpers import drained, press, settle, wait_until, write_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small trained v4 run's folder, copied into each test's runs folder."""
    return trained_run(tmp_path_factory.mktemp("trained") / "runs", "v4", limit=256, test_limit=256).path


@pytest.fixture
def runs(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(exporters, "LATENCY_SECONDS", 0.0)  # timing is checked elsewhere
    monkeypatch.setattr(exporters, "LATENCY_CALLS", (1, 1))
    runs = tmp_path / "runs"
    shutil.copytree(trained, runs / trained.name)
    return runs


async def _opened(pilot, rows: int = 1) -> None:
    await settle(pilot)
    table = pilot.app.screen.query_one("#runs-table", DataTable)
    await wait_until(pilot, lambda: table.row_count == rows)


def _said(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_x_on_runs_picks_a_format_by_key_shows_progress_then_the_check(runs, trained, monkeypatch):
    gate = threading.Event()
    real = export.export

    def held(*args, **kwargs):  # the export waits until the test has seen the indicator
        assert gate.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(export, "export", held)
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(160, 40)) as pilot:
        await _opened(pilot)
        assert ("x", "Export model") in screen_keys(app.screen)  # the footer and ? show it
        await press(pilot, "x")
        dialog = app.screen
        assert isinstance(dialog, ExportScreen)
        await press(pilot, "p")
        assert dialog.query_one("#export-busy").display and not dialog.query_one("#export-buttons").display
        assert "Exporting" in str(dialog.query_one("#export-title").render())
        gate.set()
        await settle(pilot)
        report = str(dialog.query_one("#export-report", Static).render())
        target = runs / "exports" / f"{trained.name}.pt2"
        assert f"exported {trained.name} (v4, epoch 1) as pt2: {target}" in report
        assert "agreement  100.00% of predictions the same as the checkpoint's" in report and f"{target}.json" in report
        assert target.is_file()
        await press(pilot, "escape")
        assert isinstance(app.screen, RunsScreen)


async def test_on_a_run_a_click_picks_the_format_and_a_missing_extra_is_a_notification(runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an absent package looks like to import
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(160, 40)) as pilot:
        await _opened(pilot)
        await press(pilot, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        assert ("x", "Export") in screen_keys(app.screen)
        await press(pilot, "x")
        assert isinstance(app.screen, ExportScreen)
        await pilot.click("#export-onnx-int8")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen)  # the dialog closed, the app goes on
        assert any("pip install 'mnist-tui[export]'" in said and "onnxruntime" in said for said in _said(app))
        assert not list((runs / "exports").glob("*.onnx"))


async def test_escape_and_cancel_export_nothing(runs):
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(160, 40)) as pilot:
        await _opened(pilot)
        await press(pilot, "x")
        await press(pilot, "escape")
        assert isinstance(app.screen, RunsScreen)
        await press(pilot, "x")
        await pilot.click("#export-cancel")
        await drained(pilot)
        assert isinstance(app.screen, RunsScreen)
        await press(pilot, "x")
        await pilot.click("#export-pt2")  # a click starts it as its key does
        await settle(pilot)
        assert "as pt2:" in str(app.screen.query_one("#export-report", Static).render())
        await pilot.click("#export-close")
        await drained(pilot)
        assert isinstance(app.screen, RunsScreen)
    assert sorted(p.suffix for p in (runs / "exports").iterdir()) == [".json", ".pt2"]  # that one export only


async def test_an_existing_file_and_a_run_without_checkpoint_are_notifications(runs, trained):
    (runs / "exports").mkdir()
    existing = runs / "exports" / f"{trained.name}.pt2"
    existing.write_bytes(b"mine")
    write_run(runs, "20991231T100000Z-v2-eeeeee", "v2", "stopped", [], created="2099-12-31T10:00:00+00:00")  # the newest: the cursor's
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(160, 40)) as pilot:
        await _opened(pilot, rows=2)
        await press(pilot, "x")
        assert isinstance(app.screen, RunsScreen)  # no dialog for a run with nothing to export
        assert any("has no checkpoint yet" in said for said in _said(app))
        await press(pilot, "down", "x", "p")
        await settle(pilot)
        assert isinstance(app.screen, RunsScreen)
        assert any(f"{existing} exists: remove it" in said for said in _said(app))
    assert existing.read_bytes() == b"mine"
