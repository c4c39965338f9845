"""A table with a row per finished epoch; the best test accuracy and the lowest test loss
are starred, and named with their epochs in the table's title."""

from __future__ import annotations

from textual.widgets import DataTable

from mnist_tui.core.events import EpochFinished
from mnist_tui.present.training import EPOCH_COLUMNS, best_line, epoch_cells, epoch_marks


class EpochTable(DataTable[object]):
    """The epoch table of the Train and run screens (the rows `mnist-tui train` prints)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.epochs: list[EpochFinished] = []

    def on_mount(self) -> None:
        self.add_columns(*EPOCH_COLUMNS)

    def set_epochs(self, epochs: list[EpochFinished]) -> None:
        self.epochs = list(epochs)
        self._render_rows()

    def add_epoch(self, epoch: EpochFinished) -> None:
        self.epochs.append(epoch)
        self._render_rows()
        self.move_cursor(row=self.row_count - 1)

    def _render_rows(self) -> None:
        self.clear()
        best, lowest = epoch_marks(self.epochs)
        for e in self.epochs:
            self.add_row(*epoch_cells(e, best, lowest))
        self.border_title = best_line(self.epochs) or "epochs"
