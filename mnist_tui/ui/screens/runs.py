"""The history browser: every saved run, sortable, filterable, refreshed while runs are live."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.widgets import DataTable, Header, Input, Static

from mnist_tui.core import history
from mnist_tui.core.store import (
    RESUMABLE,
    RESUMABLE_WORDS,
    RunBusy,
    RunRecord,
    changed_since,
    delete_run,
    list_runs,
)
from mnist_tui.present.runs import RUN_HEADERS
from mnist_tui.present.text import printable
from mnist_tui.ui.screens.base import AppScreen
from mnist_tui.ui.screens.confirm import ConfirmScreen
from mnist_tui.ui.screens.export import export_run
from mnist_tui.ui.screens.notes import edit_notes
from mnist_tui.ui.screens.queue_keys import QueueKeys, prepared
from mnist_tui.ui.watcher import RunsChanged
from mnist_tui.ui.widgets.field import Field
from mnist_tui.ui.widgets.footer import KeyFooter
from mnist_tui.ui.widgets.runs_table import RunsTable


class RunsScreen(QueueKeys, AppScreen):
    # In order of importance: the footer keeps the first ones when the terminal is narrow.
    BINDINGS = [
        ("slash", "focus_filter", "Filter"),
        ("space", "mark", "Mark"),
        ("c", "compare", "Compare"),
        ("p", "predictions", "Predict"),
        ("m", "mistakes", "Mistakes"),
        ("r", "resume", "Resume"),
        ("d", "delete", "Delete"),
        ("s", "sort_next", "Sort"),
        ("S", "sort_reverse", "Reverse"),
        ("e", "export", "Export CSV"),
        ("D", "delete_marked", "Delete marked"),
        ("n", "note", "Note"),
        ("t", "tags", "Tags"),
        ("x", "export_model", "Export model"),
        ("K", "queue_earlier", "Earlier"),
        ("J", "queue_later", "Later"),
        ("C", "cancel_queued", "Cancel queued"),
    ]

    def __init__(self):
        super().__init__()
        self.rows: list[history.RunRow] = []  # the rows shown, in order (the table holds a prefix while it fills)
        self.records: list[RunRecord] = []
        self.all_rows: list[history.RunRow] = []  # one a record, made once a reading
        self.texts: dict[str, dict[str, str]] = {}  # each run's cells, as text
        self.filter_query = ""  # the filter the rows show: the last one that could be read
        self.marked: set[str] = set()
        self.sort_column = "started"  # newest first, whether or not the column is shown
        self.sort_reverse = True  # newest first
        self.stamp = 0.0
        self.warmed = False  # whether torch is being imported ahead of Predictions
        self.stale = False  # the runs folder changed while unseen or while it was being read

    @property
    def runs_dir(self) -> Path:
        return self.tui.runs_dir

    def compose(self) -> ComposeResult:
        yield Header()
        yield Field(placeholder="filter (/): words, model:v2, device:cpu, acc>99.4, epochs>=10, lr<0.01", id="runs-filter")
        yield Static("", id="runs-filter-problem")
        yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-summary")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#runs-filter-problem", Static).display = False
        self.query_one("#runs-table", DataTable).focus()
        self.tui.watcher.subscribe(self)  # RunsChanged when a run appears, goes or writes

    def on_resize(self) -> None:
        table = self.query_one(RunsTable)
        if self.records and table.fitting_columns() != table.shown:
            self.refresh_table()

    def on_screen_resume(self) -> None:
        # Also the first showing (from what the app read at start when nothing changed
        # since): runs may have finished while away.
        # Textual resumes a screen twice on its first showing: read the store only if it changed.
        if self.reading:
            return  # the reading under way shows what it finds (another would cancel it)
        prefetched = self.tui.take_prefetched_runs()
        if prefetched is not None:
            self.prepare(*prefetched)
        elif not self.stamp or self.stale:
            self.stale = False
            self.reload()

    def on_runs_changed(self, _message: RunsChanged) -> None:
        """A run folder appeared, went, or a live run wrote an epoch or status (the app's
        watcher saw it): read the store again, now if shown, else when shown again; not
        while a reading is under way (a first reading of thousands of runs can take over a
        second: another would cancel it), but once it has ended."""
        if self.is_current and not self.reading:
            self.reload()
        else:
            self.stale = True

    @property
    def reading(self) -> bool:
        return any(w.group == "runs-reload" and not w.is_finished for w in self.app.workers if w.node is self)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-reload")
    def reload(self) -> None:
        """Read the store off the UI thread (a thousand runs take a while), then show it."""
        stamp = changed_since(self.runs_dir, 0.0) or 0.0
        records = list_runs(self.runs_dir)
        self.app.call_from_thread(self._loaded, stamp, records, *prepared(records))

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-reload")
    def prepare(self, stamp: float, records: list[RunRecord]) -> None:
        """What the app read at start, made into rows off the UI thread."""
        self.app.call_from_thread(self._loaded, stamp, records, *prepared(records))

    def _loaded(self, stamp: float, records: list[RunRecord], rows: list[history.RunRow], texts: dict[str, dict[str, str]]) -> None:
        self.stamp, self.records, self.all_rows, self.texts = stamp, records, rows, texts
        self.refresh_table()
        if self.stale and self.is_current:  # changed while it was being read
            self.stale = False
            self.call_later(self.reload)

    @work(thread=True, exit_on_error=False, group="import-core")
    def import_predictions(self) -> None:
        from mnist_tui.ui.screens.predictions import import_core

        import_core()

    def refresh_table(self) -> None:
        """Filter and sort the rows, then fill the table: the rows in sight now, the others
        a chunk after each refresh. A filter that cannot be read is named below the field,
        and the table keeps the last one that could."""
        query = self.query_one("#runs-filter", Input).value
        try:
            self.rows = history.filter_sort(self.all_rows, query, self.sort_column, self.sort_reverse)
            self.filter_query = query
            self._show_filter_problem("")
        except history.QueryError as exc:
            self._show_filter_problem(f"filter {exc}")
            self.rows = history.filter_sort(self.all_rows, self.filter_query, self.sort_column, self.sort_reverse)
        cursor_key = self.current_row.run if self.current_row else None
        self.query_one(RunsTable).show(self.rows, self.texts, self.marked, cursor_key)
        self.show_summary()

    def on_runs_table_filled(self, _message: RunsTable.Filled) -> None:
        if not self.warmed:  # once the list is drawn, bring torch in for `p` (Predictions)
            self.warmed = True
            self.call_after_refresh(self.import_predictions)

    def _show_filter_problem(self, problem: str) -> None:
        field, line = self.query_one("#runs-filter", Input), self.query_one("#runs-filter-problem", Static)
        field.set_class(bool(problem), "-invalid")
        line.update(Text(problem, style="bold red"))
        line.display = bool(problem)

    def show_summary(self) -> None:
        live = sum(r.status == "running" for r in self.rows)
        arrow = "↓" if self.sort_reverse else "↑"
        # Text, not markup: folder names and reasons come from files and may hold brackets.
        line = Text(
            f"{len(self.rows)} of {len(self.records)} runs in {printable(str(self.runs_dir))} · {live} live · "
            f"sorted by {RUN_HEADERS[self.sort_column]} {arrow} · {len(self.marked)} marked"
        )
        row = self.current_row
        if row is not None and row.record.reason:
            line.append("\n")
            line.append(printable(row.run), style="bold")
            line.append(printable(f" {row.status}: {row.record.reason}"))
        self.query_one("#runs-summary", Static).update(line)

    @on(DataTable.RowHighlighted, "#runs-table")
    def row_highlighted(self) -> None:
        self.show_summary()

    @property
    def current_row(self) -> history.RunRow | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= min(len(self.rows), table.row_count):
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
            return  # the mark column
        self.sort_reverse = not self.sort_reverse if column == self.sort_column else False
        self.sort_column = column
        self.refresh_table()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.refresh_table()

    def action_sort_next(self) -> None:
        columns = self.query_one(RunsTable).shown or list(history.COLUMNS)  # the columns in sight
        at = columns.index(self.sort_column) if self.sort_column in columns else -1
        self.sort_column = columns[(at + 1) % len(columns)]
        self.sort_reverse = False
        self.refresh_table()

    @on(DataTable.RowSelected, "#runs-table")
    def action_open_run(self) -> None:
        row = self.current_row
        if row is None:
            return
        if row.status == "damaged":
            self.notify(printable(f"{row.run} is damaged: {row.record.reason}"), severity="warning", markup=False)
            return
        from mnist_tui.ui.screens.run_detail import RunDetailScreen

        self.app.push_screen(RunDetailScreen([row.record]))

    def action_mark(self) -> None:
        """Mark or unmark the run under the cursor, then move down (space, space, ... marks a run of rows)."""
        row = self.current_row
        if row is None:
            return
        self.marked.symmetric_difference_update({row.run})
        table = self.query_one(RunsTable)
        table.show_mark(row.run)
        table.move_cursor(row=min(table.cursor_row + 1, table.row_count - 1))
        self.show_summary()

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

    def action_mistakes(self) -> None:
        """The confusion matrix of the run under the cursor; of two marked runs, compared."""
        chosen = [r.record for r in self.rows if r.run in self.marked and (r.record.path / "checkpoint.pt").exists()]
        row = self.current_row
        if len(chosen) == 2:
            first, other = chosen[0].path, chosen[1].path
        elif row is not None and (row.record.path / "checkpoint.pt").exists():
            first, other = row.record.path, None
        else:
            self.notify("This run has no saved checkpoint to evaluate.", severity="warning")
            return
        from mnist_tui.ui.screens.mistakes import MistakesScreen

        self.app.push_screen(MistakesScreen(first, other))

    async def action_resume(self) -> None:
        row = self.current_row
        if row is None:
            return
        if row.status not in RESUMABLE:
            self.notify(f"{row.run} is {row.status}; only {RESUMABLE_WORDS} runs can be resumed.", severity="warning", markup=False)
            return
        await self.app.switch_mode("train")  # mounted before it is asked to train
        self.tui.train_screen.resume_run(row.record)

    def action_delete(self) -> None:
        """Delete the run under the cursor, or the marked runs when there are marks."""
        if self.marked:
            self.action_delete_marked()
            return
        row = self.current_row
        if row is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.delete([row])

        if row.status == "running":  # its trainer holds the lock: deleting would be refused
            self.notify(f"{row.run} is still training: stop it first.", severity="warning", markup=False)
            return
        self.app.push_screen(ConfirmScreen(f"Delete run {row.run} and all its files?", yes="Delete", no="Keep"), answered)

    def action_delete_marked(self) -> None:
        chosen = [r for r in self.rows if r.run in self.marked]
        if not chosen:
            self.notify("Mark runs with space first; d deletes the run under the cursor.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.delete(chosen)

        training = [r for r in chosen if r.status == "running"]
        chosen = [r for r in chosen if r.status != "running"]  # their trainers hold their locks
        kept = f" ({len(training)} marked run{'s are' if len(training) > 1 else ' is'} still training and will be kept)" if training else ""
        if not chosen:
            self.notify(
                f"The marked run{'s are' if len(training) > 1 else ' is'} still training: stop {'them' if len(training) > 1 else 'it'} first.",
                severity="warning",
            )
            return
        names = ", ".join(r.run[-6:] for r in chosen[:6]) + (f" and {len(chosen) - 6} more" if len(chosen) > 6 else "")
        self.app.push_screen(
            ConfirmScreen(
                f"Delete the marked run ({names}) and all its files?{kept}"
                if len(chosen) == 1
                else f"Delete the {len(chosen)} marked runs ({names}) and all their files?{kept}",
                yes="Delete",
                no="Keep",
            ),
            answered,
        )

    @work(thread=True, exit_on_error=False, group="runs-delete")
    def delete(self, rows: list[history.RunRow]) -> None:
        """Delete runs off the UI thread (a run's folder may hold large files), then say how it went."""
        failed: dict[str, str] = {}
        for row in rows:
            try:
                delete_run(row.record.path)
            except (RunBusy, OSError) as exc:
                failed[row.run] = str(exc)
        self.app.call_from_thread(self._deleted, rows, failed)

    def _deleted(self, rows: list[history.RunRow], failed: dict[str, str]) -> None:
        gone = [row.run for row in rows if row.run not in failed]
        self.marked.difference_update(gone)
        done = f"Deleted {gone[0]}" if len(rows) == 1 and gone else f"Deleted {len(gone)} run{'' if len(gone) == 1 else 's'}"
        self.notify(done + "".join(f"\nnot {run}: {why}" for run, why in failed.items()), severity="error" if failed else "information", markup=False)
        self.reload()

    def action_note(self) -> None:
        if (row := self.current_row) is not None:
            edit_notes(self, row.record, "note", self.reload)

    def action_tags(self) -> None:
        if (row := self.current_row) is not None:
            edit_notes(self, row.record, "tags", self.reload)

    def action_export_model(self) -> None:
        if (row := self.current_row) is not None:
            export_run(self, row.record)

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
