"""The history browser: every saved run, sortable, filterable, refreshed while runs are live."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from mnist_tui.core import history
from mnist_tui.core.store import RESUMABLE, RunBusy, changed_since, delete_run, list_runs
from mnist_tui.ui.screens.confirm import ConfirmScreen

HEADERS = {
    "started": "started (UTC)",
    "run": "run",
    "model": "model",
    "epochs": "epochs",
    "final_acc": "final acc",
    "best_acc": "best acc",
    "params": "params",
    "device": "device",
    "seconds": "time",
    "status": "status",
}
STATUS_STYLE = {"finished": "green", "running": "bold cyan", "stopped": "yellow", "interrupted": "yellow", "stale": "yellow", "failed": "red", "diverged": "red", "damaged": "bold red"}


def _cell(row: history.RunRow, column: str) -> Text:
    # Text, not str: DataTable would parse every str cell as markup, which costs more
    # than anything else when a thousand runs are listed.
    value = row.value(column)
    if column in ("final_acc", "best_acc"):
        return Text("-" if value is None else f"{value:.2f}%")
    if column == "params":
        return Text("-" if value is None else f"{value:,}")
    if column == "seconds":
        return Text(f"{value:.0f}s")
    if column == "status":
        return Text(value, style=STATUS_STYLE.get(value, ""))
    return Text(str(value))


class RunsScreen(Screen):
    BINDINGS = [
        ("enter", "open_run", "Open"),
        ("space", "mark", "Mark"),
        ("c", "compare", "Compare marked"),
        ("p", "predictions", "Predictions"),
        ("r", "resume", "Resume"),
        ("s", "sort_next", "Sort"),
        ("S", "sort_reverse", "Reverse"),
        ("d", "delete", "Delete"),
        ("e", "export", "Export CSV"),
        ("slash", "focus_filter", "Filter"),
    ]

    def __init__(self):
        super().__init__()
        self.rows: list[history.RunRow] = []
        self.records = []
        self.marked: set[str] = set()
        self.sort_column = "started"
        self.sort_reverse = True  # newest first
        self.stamp = 0.0

    @property
    def runs_dir(self) -> Path:
        return self.app.runs_dir

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: words, model:v2, device:cpu, acc>99.4, epochs>=10, lr<0.01  (/ to focus, esc to leave)", id="runs-filter")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-summary")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        for column in history.COLUMNS:
            table.add_column(HEADERS[column], key=column)
        table.focus()
        self.set_interval(1.0, self.poll)

    def on_screen_resume(self) -> None:
        self.reload()  # also the first showing: runs may have finished while away

    def poll(self) -> None:
        """Reload when a run folder appeared, went, or a live run wrote an epoch or status."""
        if self.is_current and changed_since(self.runs_dir, self.stamp) is not None:
            self.reload()

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-reload")
    def reload(self) -> None:
        """Read the store off the UI thread (a thousand runs take a while), then show it."""
        stamp = changed_since(self.runs_dir, 0.0) or 0.0
        records = list_runs(self.runs_dir)
        self.app.call_from_thread(self._loaded, stamp, records)

    def _loaded(self, stamp: float, records: list) -> None:
        self.stamp, self.records = stamp, records
        self.refresh_table()

    def refresh_table(self) -> None:
        query = self.query_one("#runs-filter", Input).value
        self.rows = history.select(self.records, query, self.sort_column, self.sort_reverse)
        table = self.query_one("#runs-table", DataTable)
        cursor_key = self.current_row.run if self.current_row else None
        table.clear()
        for row in self.rows:
            cells = [_cell(row, c) for c in history.COLUMNS]
            if row.run in self.marked:  # marked runs: a dot before the start time
                cells[0] = Text("● ", style="bold magenta") + cells[0]
            table.add_row(*cells, key=row.run)
        if cursor_key in {r.run for r in self.rows}:
            table.move_cursor(row=table.get_row_index(cursor_key))
        self.show_summary()

    def show_summary(self) -> None:
        live = sum(r.status == "running" for r in self.rows)
        arrow = "↓" if self.sort_reverse else "↑"
        line = (
            f"{len(self.rows)} of {len(self.records)} runs in {escape(str(self.runs_dir))} · {live} live · "
            f"sorted by {HEADERS[self.sort_column]} {arrow} · {len(self.marked)} marked"
        )
        row = self.current_row
        if row is not None and row.record.reason:
            line += f"\n[b]{escape(row.run)}[/b] {row.status}: {escape(row.record.reason)}"
        self.query_one("#runs-summary", Static).update(line)

    @on(DataTable.RowHighlighted, "#runs-table")
    def row_highlighted(self) -> None:
        self.show_summary()

    @property
    def current_row(self) -> history.RunRow | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    @on(Input.Changed, "#runs-filter")
    def filter_changed(self) -> None:
        self.refresh_table()

    @on(Input.Submitted, "#runs-filter")
    def filter_done(self) -> None:
        self.query_one("#runs-table", DataTable).focus()

    def key_escape(self) -> None:
        self.query_one("#runs-table", DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    @on(DataTable.HeaderSelected, "#runs-table")
    def header_clicked(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    def sort_by(self, column: str) -> None:
        if column not in history.COLUMNS:
            return
        self.sort_reverse = not self.sort_reverse if column == self.sort_column else False
        self.sort_column = column
        self.refresh_table()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.refresh_table()

    def action_sort_next(self) -> None:
        columns = list(history.COLUMNS)
        self.sort_column = columns[(columns.index(self.sort_column) + 1) % len(columns)]
        self.sort_reverse = False
        self.refresh_table()

    @on(DataTable.RowSelected, "#runs-table")
    def action_open_run(self) -> None:
        row = self.current_row
        if row is None:
            return
        if row.status == "damaged":
            self.notify(f"{row.run} is damaged: {row.record.reason}", severity="warning", markup=False)
            return
        from mnist_tui.ui.screens.run_detail import RunDetailScreen

        self.app.push_screen(RunDetailScreen([row.record]))

    def action_mark(self) -> None:
        row = self.current_row
        if row is not None:
            self.marked.symmetric_difference_update({row.run})
            self.refresh_table()

    def action_compare(self) -> None:
        chosen = [r.record for r in self.rows if r.run in self.marked and r.status != "damaged"]
        if len(chosen) < 2:
            self.notify("Mark two or more runs with space to compare them.", severity="warning")
            return
        from mnist_tui.ui.screens.run_detail import RunDetailScreen

        self.app.push_screen(RunDetailScreen(chosen))

    def action_predictions(self) -> None:
        row = self.current_row
        if row is None or not (row.record.path / "checkpoint.pt").exists():
            self.notify("This run has no saved checkpoint to predict with.", severity="warning")
            return
        from mnist_tui.ui.screens.predictions import PredictionsScreen

        self.app.push_screen(PredictionsScreen(row.record.path))

    async def action_resume(self) -> None:
        row = self.current_row
        if row is None:
            return
        if row.status not in RESUMABLE:
            self.notify(f"{row.run} is {row.status}; only {' or '.join(RESUMABLE)} runs can be resumed.", severity="warning", markup=False)
            return
        await self.app.switch_mode("train")  # mounted before it is asked to train
        self.app.train_screen.resume_run(row.record)

    def action_delete(self) -> None:
        row = self.current_row
        if row is None:
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                delete_run(row.record.path)
            except (RunBusy, OSError) as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.marked.discard(row.run)
            self.notify(f"Deleted {row.run}", markup=False)
            self.reload()

        self.app.push_screen(ConfirmScreen(f"Delete run {row.run} and all its files?", yes="Delete", no="Keep"), answered)

    def action_export(self) -> None:
        if not self.rows:
            self.notify("No runs to export: the filter matches none.", severity="warning")
            return
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = history.exports_dir(self.runs_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = history.export_csv(self.rows, folder / f"mnist-tui-runs-{stamp}.csv")
        except OSError as exc:
            self.notify(f"Could not export: {exc.strerror or exc}", severity="error", markup=False)
            return
        self.notify(f"Exported {len(self.rows)} run{'' if len(self.rows) == 1 else 's'} to {path.resolve()}", markup=False, timeout=10)
