"""A yes/no question in a modal; dismisses with True for yes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [("y", "answer(True)", "Yes"), ("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No"):
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Label(Text(self.question), id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button(f"{self.no} (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ChoiceScreen(ModalScreen[str]):
    """A question with several answers, each a button with its own key; dismisses with the
    chosen answer's id (the first is the default and has focus)."""

    def __init__(self, question: str, choices: list[tuple[str, str, str]]):
        super().__init__()
        self.question, self.choices = question, choices

    def on_key(self, event) -> None:
        for answer, _label, key in self.choices:
            if event.key == key:
                event.stop()
                self.dismiss(answer)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Label(Text(self.question), id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                for i, (answer, label, key) in enumerate(self.choices):
                    shown = "esc" if key == "escape" else key
                    yield Button(f"{label} ({shown})", variant="primary" if i == 0 else "default", id=f"choice-{answer}")

    def on_mount(self) -> None:
        self.query_one(f"#choice-{self.choices[0][0]}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id).removeprefix("choice-"))
