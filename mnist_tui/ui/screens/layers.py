"""Layer-by-layer breakdown of a version, and all versions side by side."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Header, Label, OptionList, Static
from textual.widgets.option_list import Option

from mnist_tui.core.versions import VERSIONS
from mnist_tui.present.layers import LAYER_HEADERS, LAYER_RIGHT, layer_cells
from mnist_tui.ui.screens.base import AppScreen
from mnist_tui.ui.widgets.footer import KeyFooter

# The columns of `mnist-tui layers VERSION`; the layer's name already says its type.
LAYER_COLUMNS = tuple(Text(header, justify="right" if right else "left") for header, right in zip(LAYER_HEADERS, LAYER_RIGHT))


class LayersScreen(AppScreen):
    BINDINGS = [
        ("c", "copy_summary", "Copy summary"),
        ("s", "save_summary", "Save summary"),
    ]

    def __init__(self):
        super().__init__()
        self.model = "v1"
        self.classic_text = ""
        self.breakdown = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="layers-body"):
            yield OptionList(*[Option(f"{n}  {VERSIONS[n].title}", id=n) for n in VERSIONS], id="layer-versions")
            with VerticalScroll(id="layers-main"):
                yield Static("", id="layers-description")
                yield DataTable(id="layer-table", cursor_type="row", zebra_stripes=True)
                yield Static("Loading…", id="layer-totals")
                yield Label("Versions side by side", classes="section")
                yield DataTable(id="compare-table", cursor_type="row")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#layer-table", DataTable)
        table.add_columns(*LAYER_COLUMNS)
        compare = self.query_one("#compare-table", DataTable)
        compare.add_columns("version", "title", "params", "MACs", "size MB", "seed acc", "our acc")
        self.query_one("#layer-versions", OptionList).highlighted = 0
        self.load_comparison()

    @on(OptionList.OptionHighlighted, "#layer-versions")
    def version_picked(self, event: OptionList.OptionHighlighted) -> None:
        self.model = event.option.id
        self.query_one("#layers-description", Static).update(f"[b]{self.model}[/b]: {VERSIONS[self.model].description}")
        self.load_breakdown(self.model)

    @work(thread=True, exclusive=True, group="layers")
    def load_breakdown(self, model: str) -> None:
        from mnist_tui.core.layers import breakdown, classic_table

        b = breakdown(model)
        self.app.call_from_thread(self.show_breakdown, b, classic_table(b))

    def show_breakdown(self, b, classic_text: str) -> None:
        if b.model != self.model:
            return
        self.breakdown, self.classic_text = b, classic_text
        rows = [layer_cells(row) for row in b.rows]
        # Columns as wide as their widest cell, given up front: DataTable widens auto-sized
        # columns only at its next idle moment, and a header drawn before that stayed narrow
        # over the wider rows (seen on a loaded machine).
        table = self.query_one("#layer-table", DataTable)
        table.clear(columns=True)
        for index, label in enumerate(LAYER_COLUMNS):
            widest = max([label.cell_len, *(r[index].cell_len for r in rows)])
            table.add_column(label, width=widest)
        for cells in rows:
            table.add_row(*cells)
        self.query_one("#layer-totals", Static).update(
            f"Total params [b]{b.total_params:,}[/b] · trainable {b.trainable_params:,} · "
            f"size {b.param_mb:.2f} MB · {b.mult_adds / 1e6:.2f} M MACs (multiply-adds) per image"
        )

    @work(thread=True, exclusive=True, group="compare")
    def load_comparison(self) -> None:
        from mnist_tui.core.layers import compare_versions

        facts = compare_versions()
        self.app.call_from_thread(self.show_comparison, facts)

    def show_comparison(self, facts) -> None:
        table = self.query_one("#compare-table", DataTable)
        table.clear()
        for f in facts:
            acc = "-" if f.seed_accuracy is None else f"{f.seed_accuracy:.2f}%"
            ours = "-" if f.measured_accuracy is None else f"{f.measured_accuracy:.2f}%"
            table.add_row(f.name, f.title, f"{f.params:,}", f"{f.mult_adds / 1e6:.2f} M", f"{f.param_mb:.2f}", acc, ours)

    def action_copy_summary(self) -> None:
        if self.classic_text:
            self.app.copy_to_clipboard(self.classic_text)
            self.notify(f"torchsummary table of {self.model} copied to the clipboard.")

    def action_save_summary(self) -> None:
        if self.classic_text:
            from mnist_tui.core.history import exports_dir

            folder = exports_dir(self.tui.runs_dir)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{self.model}-summary.txt"
                path.write_text(self.classic_text)
            except OSError as exc:
                self.notify(f"Could not save: {exc.strerror or exc}", severity="error", markup=False)
                return
            self.notify(f"Saved {path.resolve()}", markup=False, timeout=10)
