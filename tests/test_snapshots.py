"""Snapshot tests of the static screens; regenerate with `pytest --snapshot-update` and look."""

from __future__ import annotations

import pytest

from mnist_tui.core.versions import VERSIONS
from mnist_tui.ui.app import MnistTuiApp
from tests.ui_helpers import press, settle, wait_until, write_run


def test_layers_screen(snap_compare, tmp_path):
    async def loaded(pilot):
        from textual.widgets import Static

        # the breakdown is computed in a worker that starts once the version is highlighted
        await wait_until(pilot, lambda: "Total params" in str(pilot.app.screen.query_one("#layer-totals", Static).render()))
        await wait_until(pilot, lambda: pilot.app.screen.query_one("#compare-table").row_count == len(VERSIONS))
        await _columns_sized(pilot)
        await settle(pilot)

    assert snap_compare(MnistTuiApp(runs_dir=tmp_path, start_mode="layers"), terminal_size=(120, 40), run_before=loaded)


async def _columns_sized(pilot) -> None:
    """DataTable sizes its columns to new rows lazily, at its next update: on a loaded machine
    a snapshot taken right after the rows arrive caught the header still at its own width."""
    from rich.cells import cell_len

    def sized(table) -> bool:
        return all(column.content_width >= max((cell_len(str(cell)) for cell in table.get_column(column.key)), default=0) for column in table.ordered_columns)

    screen = pilot.app.screen
    await wait_until(pilot, lambda: sized(screen.query_one("#layer-table")) and sized(screen.query_one("#compare-table")))


def test_layers_screen_fits_80x24(snap_compare, tmp_path):
    # v4 at 80x24: ReLU and pooling rows like every version, no Dropout row (its dropout is 0),
    # and the columns of `mnist-tui layers v4` (layer, output shape, params, share, mult-adds).
    async def v4_loaded(pilot):
        from textual.widgets import OptionList, Static

        await wait_until(pilot, lambda: "Total params" in str(pilot.app.screen.query_one("#layer-totals", Static).render()))
        pilot.app.screen.query_one("#layer-versions", OptionList).highlighted = list(VERSIONS).index("v4")
        await wait_until(pilot, lambda: "7,432" in str(pilot.app.screen.query_one("#layer-totals", Static).render()))
        await wait_until(pilot, lambda: pilot.app.screen.query_one("#compare-table").row_count == len(VERSIONS))
        await _columns_sized(pilot)
        await settle(pilot)

    assert snap_compare(MnistTuiApp(runs_dir=tmp_path, start_mode="layers"), terminal_size=(80, 24), run_before=v4_loaded)


def test_runs_screen(snap_compare, fixture_runs):
    assert snap_compare(MnistTuiApp(runs_dir=fixture_runs, start_mode="runs"), terminal_size=(120, 40), run_before=settle)


@pytest.mark.parametrize("bf16", [False])
def test_train_screen_fits_80x24(snap_compare, tmp_path, monkeypatch, bf16):
    from mnist_tui.core import hardware

    # The expected times shown depend on whether this CPU has native bf16: fix it.
    monkeypatch.setattr(hardware, "cpu_bf16_native", lambda: bf16)
    assert snap_compare(MnistTuiApp(runs_dir=tmp_path), terminal_size=(80, 24), run_before=settle)


def test_predictions_screen(snap_compare, tmp_path, monkeypatch):
    import torch

    from mnist_tui.core.versions import get_version

    monkeypatch.chdir(tmp_path)
    run = write_run(tmp_path / "runs", "20261101T100000Z-v2-ffffff", "v2", "finished", [99.0])
    torch.manual_seed(0)  # an untrained network: its predictions are fixed by the seed
    torch.save({"model": get_version("v2").build().state_dict(), "epoch": 1, "config": {"model": "v2"}}, run / "checkpoint.pt")

    async def open_predictions(pilot):
        await settle(pilot)
        await press(pilot, "p")
        await settle(pilot)

    assert snap_compare(MnistTuiApp(runs_dir="runs", start_mode="runs"), terminal_size=(120, 40), run_before=open_predictions)
