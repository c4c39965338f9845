"""The runs tables (the Runs screen's and `mnist-tui runs`): columns, cells and what fits."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.text import Text

from mnist_tui.core.history import RunRow
from mnist_tui.present.text import printable
from mnist_tui.present.times import duration


@dataclass(frozen=True)
class RunColumn:
    """A column of the runs tables (the Runs screen's and `mnist-tui runs`)."""

    key: str  # a history.COLUMNS name
    header: str
    rank: int  # 0 is kept first when the width runs short; higher ranks go first
    right: bool = False  # numbers are right-aligned


RUN_COLUMNS = (
    RunColumn("run", "run", 0),
    RunColumn("model", "model", 3),
    RunColumn("status", "status", 2),
    RunColumn("tags", "tags", 3),  # shown only when a run listed has tags (see fit_run_columns)
    RunColumn("epochs", "epochs", 4, right=True),
    RunColumn("final_acc", "final acc", 1, right=True),
    RunColumn("best_acc", "best acc", 5, right=True),
    RunColumn("min_loss", "min loss", 8, right=True),
    RunColumn("params", "params", 7, right=True),
    RunColumn("seconds", "time", 6, right=True),
    RunColumn("epoch_s", "s/epoch", 9, right=True),
    RunColumn("img_s", "img/s", 10, right=True),
    RunColumn("to_target", "to target", 10, right=True),
    RunColumn("device", "device", 11),
    RunColumn("lr", "lr", 12, right=True),
    RunColumn("batch", "batch", 13, right=True),
    RunColumn("images", "images", 14, right=True),
    RunColumn("seed", "seed", 15, right=True),
    RunColumn("precision", "precision", 16),
    RunColumn("started", "started (UTC)", 17),  # the default run id says it already
)
RUN_HEADERS = {c.key: c.header for c in RUN_COLUMNS}


def figure(value: float, decimals: int, thousands: bool = False) -> str:
    """A figure to `decimals` places ('1,512', '41.2'); past a billion in the short form
    ('1e+308': a schema-valid 1e308 would print 309 digits), infinity as '∞'."""
    if math.isinf(value):
        return "∞"
    if abs(value) >= 1e9:
        return f"{value:.3g}"
    return f"{value:,.{decimals}f}" if thousands else f"{value:.{decimals}f}"


def run_cell(row: RunRow, key: str) -> str:
    """One cell of the runs tables, as text."""
    value = row.value(key)
    if key == "to_target" and row.record.target is not None and value is None:
        return "not reached" if row.record.status in ("finished", "stopped") else "-"
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return printable(value, one_line=True)  # run id, model, device: from files and folder names
    if key == "final_acc":
        return f"{value:.2f}%"
    if key == "best_acc" and row.best is not None:
        return f"{value:.2f}% @{row.best.epoch}"
    if key == "min_loss" and row.lowest is not None:
        return f"{figure(value, 4)} @{row.lowest.epoch}"
    if key == "epoch_s":
        return figure(value, 1)
    if key == "img_s":
        return figure(value, 0, thousands=True)
    if key == "to_target" and row.reached is not None:
        return f"{figure(value, 1)} s @{row.reached.epoch}"
    if key in ("params", "images"):
        return f"{value:,}"
    if key == "seconds":
        return duration(value, "compact")
    if key == "lr":
        return f"{value:g}"
    return str(value)


def run_texts(row: RunRow) -> dict[str, str]:
    """Every cell of a run's row, as text (worked out once per run by the tables)."""
    return {c.key: run_cell(row, c.key) for c in RUN_COLUMNS}


def cell_widths(texts: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """The widest cell of each column, its header included, in terminal cells."""
    widths = {c.key: cell_len(c.header) for c in RUN_COLUMNS}
    for cells in texts:
        for key, text in cells.items():
            if len(text) > widths[key] or not text.isascii():
                widths[key] = max(widths[key], cell_len(text))
    return widths


def fit_run_columns(rows: list[RunRow], width: int, gap: int = 2, cap: int = 28, widths: Mapping[str, int] | None = None) -> list[RunColumn]:
    """The columns that fit `width` cells, most wanted first, in table order. Each column
    takes its widest cell (header included, at most `cap`; `widths` when given, from
    cell_widths) plus `gap`; the run column is always kept whole, so that ids stay
    distinguishable. The tags column is left out while no run listed has a tag."""
    widths = cell_widths(run_texts(r) for r in rows) if widths is None else widths
    tagged = any(r.record.notes.tags for r in rows)
    sizes = {c.key: min(cap, widths[c.key]) + gap for c in RUN_COLUMNS}
    sizes["run"] = widths["run"] + gap
    chosen: set[str] = set()
    used = 0
    for column in sorted(RUN_COLUMNS, key=lambda c: c.rank):
        if column.key == "tags" and not tagged:
            continue
        if column.rank > 0 and used + sizes[column.key] > width:
            break  # a less wanted column never takes the place of a more wanted one
        chosen.add(column.key)
        used += sizes[column.key]
    return [c for c in RUN_COLUMNS if c.key in chosen]


def _fitted(text: str, width: int, right: bool) -> str:
    """text in exactly `width` terminal cells: padded, or cut with an ellipsis."""
    size = cell_len(text)
    if size > width:
        return set_cell_size(text, width - 1) + "…"
    pad = " " * (width - size)
    return pad + text if right else text + pad


def run_table(rows: list[RunRow], width: int, title: str, cap: int = 28) -> Text:
    """The runs table of `mnist-tui runs` as one Text: the title, the header (bold) over a
    rule, then a line a run with the columns that fit `width` (each at most `cap` cells
    wide but the run id's, whole). Plain lines: a rich Table takes seconds for 2,000 runs."""
    texts = [run_texts(r) for r in rows]
    widths = cell_widths(texts)
    columns = fit_run_columns(rows, width, cap=cap, widths=widths)
    sizes = [widths[c.key] if c.key == "run" else min(cap, widths[c.key]) for c in columns]

    def line(cells: Mapping[str, str]) -> str:
        return " " + "  ".join(_fitted(cells[c.key], size, c.right) for c, size in zip(columns, sizes)).rstrip()

    table = Text(f"{title}\n\n")
    table.append(line(RUN_HEADERS), style="bold")
    table.append("\n " + "─" * (sum(sizes) + 2 * (len(sizes) - 1)))
    table.append("".join("\n" + line(cells) for cells in texts))
    return table
