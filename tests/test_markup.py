"""Text read from files (run folder names, reasons, the runs folder's own name) is shown as
written in the app, never read as markup: brackets once crashed the Runs screen."""

from __future__ import annotations

import json

from textual.widgets import DataTable, Static

from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.run_detail import RunDetailScreen
from tests.ui_helpers import InProcessLauncher, drained, press, settle, wait_until, write_run

MARKUP_LIKE = "run [GPU 0; lr=0.1: best]"
REASON = "out of memory [GPU 0; x=1: y] [red]not red[/red] [link=http://x]x"


async def test_brackets_in_folder_names_and_reasons_show_as_written(tmp_path):
    runs = tmp_path / "sp ü [5 x=1:2]"  # the runs folder's own name too
    write_run(runs, MARKUP_LIKE, "v2", "finished", [98.0, 99.0], epochs_total=2, points=10)
    failed = write_run(runs, "20261109T100000Z-v2-fa11ed", "v2", "stopped", [97.0])
    status = json.loads((failed / "status.json").read_text())
    (failed / "status.json").write_text(json.dumps({**status, "status": "failed", "reason": REASON}))
    app = MnistTuiApp(runs_dir=runs, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        summary = app.screen.query_one("#runs-summary", Static)
        shown = []
        for row in range(2):  # each row highlighted in turn: the failed one shows its reason
            table.move_cursor(row=row)
            await drained(pilot)
            shown.append(str(summary.render()))
        assert any(REASON in text for text in shown), shown
        assert all(str(runs) in text for text in shown)
        for row in range(2):
            table.move_cursor(row=row)
            await press(pilot, "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
            await settle(pilot)
            title = str(app.screen.query_one("#detail-title", Static).render())
            assert MARKUP_LIKE in title or "fa11ed" in title
            app.save_screenshot(str(tmp_path / "detail.svg"))  # every widget drawn, the legends too
            await press(pilot, "escape")
        assert app.is_running
