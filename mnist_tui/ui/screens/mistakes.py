"""Where a run's model fails: its confusion matrix on the test set, per-digit precision and
recall, and the digits of the cell under the cursor, most confidently wrong first; with a
second run, what each gets right that the other gets wrong."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, HorizontalGroup, Vertical, VerticalScroll
from textual.widgets import DataTable, Header, ProgressBar, Static

from mnist_tui.present.text import digit_caption
from mnist_tui.present.training import pct
from mnist_tui.ui.screens.base import AppScreen, WorkProgress
from mnist_tui.ui.widgets.digit_grid import digit_lines
from mnist_tui.ui.widgets.footer import KeyFooter

SHOWN = 60  # digits listed for one cell (the most confident first)


def cell_text(digits: list, predicted: int, beside: bool = True, selected: int = 0) -> Text:
    """Each digit as half-blocks, with its test-set index, true label and top 3 to its right
    (under it, where the panel is too narrow for both); the selected one's index marked."""
    out = Text()
    for n, d in enumerate(digits):
        wrong = d.label != predicted
        lines = digit_lines(d.image, wrong)
        mark = Text(f"▶ #{d.index}", style="bold reverse") if n == selected else Text(f"#{d.index}", style="bold")
        notes = [mark, Text(f"true {d.label}")]
        notes += [Text(f"{c}  {100 * p:5.1f}%", style="bold red" if c == predicted and wrong else "") for c, p in d.top]
        rows = [line + Text("  ") + (notes[i] if i < len(notes) else Text()) for i, line in enumerate(lines)] if beside else [*lines, *notes]
        for row in rows:
            out.append_text(row)
            out.append("\n")
        out.append("\n")
    return out


class MistakesScreen(AppScreen):
    BINDINGS = [
        ("escape", "app.pop_screen", "Back"),
        ("w", "worst", "Worst cell"),
        ("y", "why", "Why this digit"),
        ("right_square_bracket", "select(1)", "Next digit"),
        ("left_square_bracket", "select(-1)", "Previous digit"),
    ]

    def __init__(self, run_dir: Path, other: Path | None = None):
        super().__init__()
        self.run_dir, self.other = Path(run_dir), Path(other) if other else None
        self.outputs = None
        self.matrix = None
        self.shown_digits: list = []
        self.selected = 0  # which of the cell's digits `y` explains
        self.cell: tuple[int, int] = (0, 0)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(f"Evaluating {self.run_dir.name} on the test digits…"), id="mistakes-title")
        with HorizontalGroup(id="mistakes-progress"):
            yield ProgressBar(show_eta=False)
            yield Static(" loading the checkpoint and the test digits…", id="mistakes-progress-text")
        with Horizontal(id="mistakes-body"):
            with Vertical(id="mistakes-left"):
                yield DataTable(id="matrix", cursor_type="cell", zebra_stripes=False, cell_padding=0)
                yield DataTable(id="classes", cursor_type="none")
                yield Static("", id="comparison")
            with VerticalScroll(id="mistakes-right"):
                yield Static("", id="cell-title")
                yield Static("", id="cell-digits")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.call_after_refresh(self.compute)

    @work(thread=True, exclusive=True, exit_on_error=False, group="mistakes")
    def compute(self) -> None:
        from mnist_tui.core.insight import compare, confusion, run_outputs

        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            if 0 < done < total and time.monotonic() - last < 0.1:
                return
            last = time.monotonic()
            self.post_message(WorkProgress(done, total))

        outputs = run_outputs(self.run_dir, self.tui.data_dir, progress=progress)
        versus = None
        if self.other is not None:
            other = run_outputs(self.other, self.tui.data_dir, progress=progress)
            versus = (other, compare(outputs, other))
        self.app.call_from_thread(self.show, outputs, confusion(outputs), versus)

    def on_work_progress(self, message: WorkProgress) -> None:
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)
        self.query_one("#mistakes-progress-text", Static).update(f" evaluated {message.done:,} of {message.total:,} test digits")

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group == "mistakes" and event.worker.error is not None:
            self.query_one("#mistakes-progress").display = False
            self.query_one("#mistakes-title", Static).update(Text(f"Cannot evaluate this run: {event.worker.error}", style="red"))

    def show(self, outputs, matrix, versus) -> None:
        self.outputs, self.matrix = outputs, matrix
        self.query_one("#mistakes-progress").display = False
        self.query_one("#mistakes-title", Static).update(
            Text.assemble(  # Text, not markup: the run's name may hold brackets
                Text(outputs.run_id, style="bold"),
                f" · {outputs.model} · epoch {outputs.epoch} · {outputs.precision} · "
                f"test accuracy {pct(matrix.accuracy)}: {matrix.total - matrix.correct:,} mistakes in {matrix.total:,} · rows true, columns predicted",
            )
        )
        self._fill_matrix(matrix)
        self._fill_classes(matrix)
        if versus is not None:
            self._fill_comparison(outputs, *versus)
        self.action_worst()

    def _fill_matrix(self, matrix) -> None:
        table = self.query_one("#matrix", DataTable)
        table.clear(columns=True)
        table.add_column(Text("t\\p", justify="right"), key="true", width=4)
        for d in range(10):
            table.add_column(Text(str(d), justify="right"), key=str(d), width=5)
        worst = set(matrix.worst(3))
        for t, row in enumerate(matrix.matrix):
            cells = []
            for p, n in enumerate(row):
                style = "bold green" if t == p else "bold white on dark_red" if (t, p) in worst else "" if n else "dim"
                cells.append(Text(str(n) if n else "·", style=style, justify="right"))
            table.add_row(Text(str(t), style="bold", justify="right"), *cells, key=str(t))

    def _fill_classes(self, matrix) -> None:
        table = self.query_one("#classes", DataTable)
        table.clear(columns=True)
        for name in ("digit", "images", "recall", "precision"):
            table.add_column(name, key=name)
        for c in matrix.classes():
            table.add_row(*(Text(v, justify="right") for v in (str(c.digit), f"{c.images:,}", pct(c.recall), pct(c.precision))))

    def _fill_comparison(self, outputs, other, comparison) -> None:
        lines = Text(
            f"A {outputs.run_id} ({outputs.model}) vs B {other.run_id} ({other.model}), per digit:\nright in A, wrong in B / wrong in A, right in B\n",
            style="bold",
        )
        for d in range(10):
            lines.append(f"  {d}: {comparison.only_a[d]:>4} / {comparison.only_b[d]:<4}\n")
        lines.append(f"  both wrong: {comparison.both_wrong:,}")
        self.query_one("#comparison", Static).update(lines)

    def action_worst(self) -> None:
        """Put the cursor on the cell with the most mistakes (or the first digit's own cell)."""
        if self.matrix is None:
            return
        worst = self.matrix.worst(1)
        t, p = worst[0] if worst else (0, 0)
        table = self.query_one("#matrix", DataTable)
        table.move_cursor(row=t, column=p + 1)
        table.focus()
        self.show_cell(t, p)

    def _shown_weights(self):
        """(epoch, weights) of the checkpoint this screen shows: Why explains that one."""
        shown = self.outputs
        return (shown.epoch, shown.weights) if shown is not None and shown.weights else None

    def action_why(self) -> None:
        """Why the model reads the selected digit of the cell as it does."""
        if not self.shown_digits:
            self.notify("This cell holds no digits.", severity="warning")
            return
        from mnist_tui.ui.screens.why import WhyScreen

        chosen = self.shown_digits[self.selected]
        self.app.push_screen(WhyScreen(self.run_dir, chosen.image, digit_caption(chosen.index, chosen.label), self._shown_weights()))

    def action_select(self, step: int) -> None:
        """Move the selection among the cell's digits (shown ones)."""
        if self.shown_digits:
            self.selected = (self.selected + step) % min(len(self.shown_digits), SHOWN)
            self._draw_cell()

    @on(DataTable.CellHighlighted, "#matrix")
    def cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        row, column = event.coordinate.row, event.coordinate.column
        if self.outputs is not None and column >= 1:
            self.show_cell(row, column - 1)

    def show_cell(self, true: int, predicted: int) -> None:
        from mnist_tui.core.insight import cell

        assert self.outputs is not None
        digits = self.shown_digits = cell(self.outputs, true, predicted)
        self.selected, self.cell = 0, (true, predicted)
        kind = "read right" if true == predicted else "mistaken"
        order = "most confident first" if true == predicted else "most confidently wrong first"
        shown = f", the first {SHOWN}" if len(digits) > SHOWN else ""
        self.query_one("#cell-title", Static).update(Text(f"{len(digits):,} test {true}s {kind} as {predicted} ({order}{shown})", style="bold"))
        self._draw_cell()

    def _draw_cell(self) -> None:
        beside = self.query_one("#mistakes-right").size.width >= 32
        self.query_one("#cell-digits", Static).update(cell_text(self.shown_digits[:SHOWN], self.cell[1], beside, self.selected))
