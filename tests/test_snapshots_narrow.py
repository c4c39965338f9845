"""Snapshots at 80x24, the smallest terminal the app is made for: the dialogs' whole
question, the Runs table's columns and mark column, and `mnist-tui runs`' text.
Regenerate with `pytest --snapshot-update` and look at the result."""

from __future__ import annotations

import io

from rich.console import Console

from mnist_tui.core.store import list_runs
from mnist_tui.headless import print_runs
from mnist_tui.ui.app import MnistTuiApp
from tests.ui_helpers import press, settle


def test_runs_screen_80x24_with_a_marked_run(snap_compare, fixture_runs):
    async def mark(pilot):
        await settle(pilot)
        await press(pilot, "down", "space")

    assert snap_compare(MnistTuiApp(runs_dir=fixture_runs, start_mode="runs"), terminal_size=(80, 24), run_before=mark)


def test_delete_dialog_80x24_shows_the_whole_question(snap_compare, fixture_runs):
    async def ask(pilot):
        await settle(pilot)
        await press(pilot, "down", "d")
        await settle(pilot)

    assert snap_compare(MnistTuiApp(runs_dir=fixture_runs, start_mode="runs"), terminal_size=(80, 24), run_before=ask)


def test_runs_command_80_columns(snapshot, fixture_runs):
    out = io.StringIO()
    print_runs(list_runs(fixture_runs), fixture_runs, Console(file=out, width=80, color_system=None))
    assert out.getvalue() == snapshot


def test_quit_question_80x24_shows_the_whole_question(snap_compare, tmp_path, monkeypatch):
    from mnist_tui.core import hardware
    from mnist_tui.ui.screens.train import TrainScreen

    monkeypatch.setattr(hardware, "cpu_bf16_native", lambda: False)  # the picker's times
    monkeypatch.setattr(TrainScreen, "running", property(lambda self: True))  # as while a run trains

    async def ask(pilot):
        await settle(pilot)
        await press(pilot, "ctrl+q")
        await settle(pilot)

    assert snap_compare(MnistTuiApp(runs_dir=tmp_path), terminal_size=(80, 24), run_before=ask)
