"""Editing a run's note (`n`) or tags (`t`) in a small modal, from Runs and from a run's
detail; saved off the UI thread through core/store/notes.py. Escape cancels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, TextArea

from mnist_tui.core.store import RunRecord
from mnist_tui.core.store.notes import NotesError, change_notes
from mnist_tui.present.text import printable

Kind = Literal["note", "tags"]


class NotesScreen(ModalScreen[str | None]):
    """The note (several lines; ctrl+s saves) or the tags (one line, words; enter saves) of
    one run; dismisses with the text to save, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, kind: Kind, run_id: str, current: str):
        super().__init__()
        self.kind, self.run_id, self.current = kind, run_id, current

    def compose(self) -> ComposeResult:
        what = "Note" if self.kind == "note" else "Tags (words: letters, digits, _ . + -)"
        with Vertical(id="notes-dialog"):
            yield Label(Text(f"{what} of {printable(self.run_id, one_line=True)}"), id="notes-title")
            if self.kind == "note":
                yield TextArea(self.current, id="notes-text", soft_wrap=True)
            else:
                yield Input(self.current, id="notes-text", placeholder="best baseline")
            with Horizontal(id="notes-buttons"):
                yield Button("Save (ctrl+s)" if self.kind == "note" else "Save (enter)", variant="primary", id="notes-save")
                yield Button("Cancel (esc)", id="notes-cancel")

    def on_mount(self) -> None:
        self.query_one("#notes-text").focus()

    def _text(self) -> str:
        field = self.query_one("#notes-text")
        return field.text if isinstance(field, TextArea) else field.value if isinstance(field, Input) else ""

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "notes-save" else self.action_cancel()

    def action_save(self) -> None:
        self.dismiss(self._text())

    def action_cancel(self) -> None:
        self.dismiss(None)


def edit_notes(screen: Screen, record: RunRecord, kind: Kind, saved: Callable[[], object]) -> None:
    """Ask for a run's new note or tags and save them off the UI thread; `saved` is called
    (on the UI thread) once they are; a failure is said in a notification."""
    notes = record.notes
    if notes.problem:
        screen.notify(f"{notes.problem}; remove it to write new notes", severity="warning", markup=False)
        return
    current = notes.note if kind == "note" else " ".join(notes.tags)

    def answered(text: str | None) -> None:
        if text is None or text == current:
            return
        if kind == "note":
            change = {"note": text}
        else:
            wanted = text.lower().split()
            change = {"add": [t for t in wanted if t not in notes.tags], "remove": [t for t in notes.tags if t not in wanted]}

        def save() -> None:
            try:
                change_notes(record.path, **change)  # type: ignore[arg-type]  # note: str, or add/remove: list[str]
            except NotesError as exc:
                screen.app.call_from_thread(screen.notify, str(exc), severity="error", markup=False, timeout=8)
                return
            screen.app.call_from_thread(saved)

        screen.run_worker(save, thread=True, exit_on_error=False, group="notes-save")

    screen.app.push_screen(NotesScreen(kind, record.run_id, current), answered)
