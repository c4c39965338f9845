"""A table with a row per finished epoch; the best test accuracy is starred."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

COLUMNS = ("epoch", "train loss", "train acc", "test loss", "test acc", "lr", "seconds", "img/s")


class EpochTable(DataTable):
    """Rows from epoch metrics dicts (the keys of metrics.jsonl)."""

    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.epochs: list[dict] = []

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def set_epochs(self, epochs: list[dict]) -> None:
        self.epochs = list(epochs)
        self._render_rows()

    def add_epoch(self, epoch: dict) -> None:
        self.epochs.append(epoch)
        self._render_rows()
        self.move_cursor(row=self.row_count - 1)

    def _render_rows(self) -> None:
        self.clear()
        best = max((e["test_acc"] for e in self.epochs), default=None)
        for e in self.epochs:
            is_best = e["test_acc"] == best
            acc = Text(f"{e['test_acc']:.2f}%" + (" ★" if is_best else "  "), style="bold green" if is_best else "")
            self.add_row(
                f"{e['epoch']}/{e['epochs']}",
                f"{e['train_loss']:.4f}",
                f"{e['train_acc']:.2f}%",
                f"{e['test_loss']:.4f}",
                acc,
                f"{e['lr']:.2e}",
                f"{e['seconds']:.1f}",
                f"{e['images_per_s']:,.0f}",
            )
