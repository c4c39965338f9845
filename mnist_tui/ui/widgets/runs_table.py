"""The Runs screen's table: the columns that fit the width, a mark column, and the rows
filled a screenful first, then the rest a chunk after each refresh."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from mnist_tui.core.history import RunRow
from mnist_tui.present.runs import RUN_HEADERS, cell_widths, fit_run_columns

STATUS_STYLE = {
    "finished": "green",
    "running": "bold cyan",
    "queued": "blue",
    "stopped": "yellow",
    "interrupted": "yellow",
    "stale": "yellow",
    "failed": "red",
    "diverged": "red",
    "damaged": "bold red",
}
MARK = "mark"  # the key of the narrow first column that shows marked runs
# The table is filled a screenful first, then the rest a chunk after each refresh: DataTable
# measures every cell it is given (about 0.5 ms a row), so 2,000 runs at once would hold the
# screen for a second, where a screenful shows in a few milliseconds.
FIRST_ROWS = 100
CHUNK_ROWS = 200


def _mark(marked: bool) -> Text:
    return Text("●", style="bold magenta") if marked else Text(" ")


class RunsTable(DataTable):
    """The runs table, whose Enter (open the run) the footer shows. It shows the rows it is
    given in their order; the screen filters, sorts and marks them."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    class Filled(Message):
        """Every row of the latest `show` is in the table."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs: list[RunRow] = []  # the rows shown, in order (the table holds a prefix while it fills)
        self.texts: dict[str, dict[str, str]] = {}  # each run's cells, as text
        self.marked: set[str] = set()  # the screen's marked runs
        self.shown: list[str] = []  # the history columns shown, chosen for the width
        self.widths: dict[str, int] = {}  # the widest cell of each column among the rows
        self.column_layout: list[tuple[str, int]] = []  # the columns shown and their widths
        self.filling = 0  # the fill under way: a new one makes the older one's chunks stop

    def fitting_columns(self) -> list[str]:
        """The columns that fit the width, most wanted first (lr, batch, ... when wide)."""
        width = self.app.size.width - 5  # the mark column, the scroll bar, the cell padding
        return [c.key for c in fit_run_columns(self.runs, width, widths=self.widths)]

    def _set_columns(self) -> None:
        """The columns that fit, each as wide as its widest cell among the rows shown (set
        here, not measured as rows arrive, so that they keep their width while the table fills)."""
        layout = [(c, self.widths[c]) for c in self.fitting_columns()]
        if layout != self.column_layout:
            self.column_layout, self.shown = layout, [c for c, _ in layout]
            self.clear(columns=True)
            self.add_column(" ", key=MARK, width=1)
            for column, width in layout:
                self.add_column(RUN_HEADERS[column], key=column, width=width)

    def show(self, runs: list[RunRow], texts: dict[str, dict[str, str]], marked: set[str], cursor_key: str | None) -> None:
        """Show these rows (`texts`: every run's cells; `marked`: the runs to mark): the rows
        in sight now, the cursor kept on `cursor_key`'s run, the others a chunk after each
        refresh."""
        self.runs, self.texts, self.marked = runs, texts, marked
        self.widths = cell_widths(texts[row.run] for row in runs)
        self._set_columns()
        self.clear()
        self.filling += 1
        at = next((i for i, row in enumerate(runs) if row.run == cursor_key), None)
        shown = max(FIRST_ROWS, (at or 0) + self.screen.size.height)
        self._add_rows(0, shown)
        if at is not None:
            self.move_cursor(row=at)
        self.call_after_refresh(self._fill, self.filling, shown)

    def _add_rows(self, start: int, stop: int) -> None:
        for row in self.runs[start:stop]:
            texts, style = self.texts[row.run], STATUS_STYLE.get(row.status, "")
            # Text, not str: DataTable would parse every str cell as markup before measuring it.
            cells = [Text(texts[c], style=style if c == "status" else "") for c in self.shown]
            self.add_row(_mark(row.run in self.marked), *cells, key=row.run)

    def _fill(self, filling: int, start: int) -> None:
        """Add the next chunk of rows after a refresh, unless a newer fill began."""
        if filling != self.filling:
            return
        if start < len(self.runs):
            self._add_rows(start, start + CHUNK_ROWS)
            self.call_after_refresh(self._fill, filling, start + CHUNK_ROWS)
        else:
            self.post_message(self.Filled())

    def show_mark(self, run: str) -> None:
        """Show whether `run` is marked now."""
        self.update_cell(run, MARK, _mark(run in self.marked))
