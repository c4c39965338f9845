"""Exporting a run's last checkpoint (`x` on Runs and on a run): a small modal to pick the
format, the export and its check in a thread while a loading indicator turns, then the check
in words (present/exports.py) with the file's path. A refusal is a notification.

The export runs in an app-level worker, so closing the dialog while it works loses nothing:
the file is still made, and a notification says where."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Label, LoadingIndicator, Static

from mnist_tui.core import export as exporting
from mnist_tui.core.store import CHECKPOINT, RunRecord
from mnist_tui.present.exports import report_lines
from mnist_tui.present.text import printable

if TYPE_CHECKING:
    from mnist_tui.ui.app import MnistTuiApp

# format -> (its button's words, its key)
CHOICES = {"onnx": ("ONNX", "o"), "onnx-int8": ("int8 ONNX", "i"), "pt2": ("pt2 (torch)", "p")}


class ExportScreen(ModalScreen[None]):
    """Pick a format (its key or its button), watch the export, read its check."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        *(Binding(key, f"pick('{fmt}')", words, show=False) for fmt, (words, key) in CHOICES.items()),
    ]

    def __init__(self, record: RunRecord, data_dir: str | None = None):
        super().__init__()
        self.record, self.data_dir = record, data_dir
        self.chosen: str | None = None  # the format being exported, once picked

    def compose(self) -> ComposeResult:
        run_id = printable(self.record.run_id, one_line=True)
        with Vertical(id="export-dialog"):
            yield Label(Text(f"Export {run_id}'s last checkpoint as"), id="export-title")
            with Horizontal(id="export-buttons"):
                for i, (fmt, (words, key)) in enumerate(CHOICES.items()):
                    yield Button(f"{words} ({key})", variant="primary" if i == 0 else "default", id=f"export-{fmt}")
                yield Button("Cancel (esc)", id="export-cancel")
            yield LoadingIndicator(id="export-busy")
            yield Static("", id="export-report")
            yield Button("Close (esc)", id="export-close")

    def on_mount(self) -> None:
        for widget in ("#export-busy", "#export-report", "#export-close"):
            self.query_one(widget).display = False
        self.query_one("#export-onnx", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        name = str(event.button.id).removeprefix("export-")
        if name in CHOICES:
            self.action_pick(name)
        else:  # cancel, or close
            self.action_close()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_pick(self, fmt: str) -> None:
        if self.chosen is not None or fmt not in CHOICES:
            return
        self.chosen = fmt
        target = exporting.default_out(self.record.path, self.record.run_id, fmt)
        self.query_one("#export-buttons").display = False
        self.query_one("#export-busy").display = True
        title = f"Exporting {self.record.run_id} as {fmt} to {target}: writing the file, then checking it on the run's test images…"
        self.query_one("#export-title", Label).update(Text(printable(title, one_line=True)))
        self.app.run_worker(lambda: self._export(fmt, target), thread=True, exit_on_error=False, group="export-model")

    def _export(self, fmt: str, target: Path) -> None:
        """The worker: export, then hand the report or the reason to the UI thread."""
        report, error = None, None
        try:
            for path in (target, target.with_name(target.name + ".json")):
                if os.path.lexists(path):  # the core refuses it too, in the command line's words
                    raise exporting.ExportError(f"{path} exists: remove it (and its .json) to export this run as {fmt} again")
            report = exporting.export(self.record.path, fmt, None, self.data_dir)
        except (exporting.ExportError, OSError) as exc:
            error = str(getattr(exc, "strerror", None) or exc)
        self.app.call_from_thread(self._finished, report, error)

    def _finished(self, report: exporting.ExportReport | None, error: str | None) -> None:
        shown = self.is_attached and self.app.screen is self
        if error is not None or report is None:
            self.app.notify(f"Could not export: {error}", severity="error", markup=False, timeout=10)
            if shown:
                self.dismiss(None)
            return
        if not shown:  # closed while it worked: say where the file went
            self.app.notify(f"Exported {report.run_id} as {report.format} to {report.path}", markup=False, timeout=10)
            return
        self.query_one("#export-busy").display = False
        self.query_one("#export-title", Label).update(Text(f"Exported as {report.format}, checked:"))
        self.query_one("#export-report", Static).update(Text("\n".join(report_lines(report))))
        self.query_one("#export-report").display = True
        close = self.query_one("#export-close", Button)
        close.display = True
        close.focus()


def export_run(screen: Screen, record: RunRecord) -> None:
    """`x` on a run: the export dialog, or a notification when the run has nothing to export."""
    if record.status == "damaged":
        screen.notify(f"Cannot export {record.run_id}: {record.reason}", severity="warning", markup=False)
    elif not (record.path / CHECKPOINT).exists():
        screen.notify(f"{record.run_id} has no checkpoint yet: no epoch of it has finished.", severity="warning", markup=False)
    else:
        screen.app.push_screen(ExportScreen(record, cast("MnistTuiApp", screen.app).data_dir))
