"""A run's model on test digits: a grid of images with true and predicted labels."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static

from mnist_tui.ui.widgets.footer import KeyFooter
from mnist_tui.ui.widgets.digit_grid import DigitGrid


class PredictionsScreen(Screen):
    BINDINGS = [
        ("escape", "app.pop_screen", "Back"),
        ("m", "toggle_mistakes", "Mistakes only"),
        ("r", "reload", "Reload checkpoint"),
    ]

    def __init__(self, run_dir: Path, count: int = 48):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.count = count
        self.mistakes_only = False
        self.predictions = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(f"Classifying the 10,000 test digits with {self.run_dir.name}…"), id="predictions-title")
        with VerticalScroll():
            yield DigitGrid(id="digits")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="predict")
    def load(self) -> None:
        from mnist_tui.core.predict import predict

        result = predict(self.run_dir, self.count, self.mistakes_only, getattr(self.app, "data_dir", None))
        self.app.call_from_thread(self.show, result)

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group == "predict" and event.worker.error is not None:
            self.query_one("#predictions-title", Static).update(Text(f"Cannot load this run's model: {event.worker.error}", style="red"))

    def show(self, result) -> None:
        self.predictions = result
        which = "the first mistakes" if self.mistakes_only else "the first test digits"
        self.query_one("#predictions-title", Static).update(
            f"[b]{escape(result.run_id)}[/b] after epoch {result.epoch}: {result.mistakes:,} mistake{'' if result.mistakes == 1 else 's'} in "
            f"{result.total:,} test digits ({100 - 100 * result.mistakes / result.total:.2f}% right) · "
            f"showing {which} · captions are true→predicted"
        )
        self.query_one(DigitGrid).show(result.items)

    def action_toggle_mistakes(self) -> None:
        self.mistakes_only = not self.mistakes_only
        self.load()

    def action_reload(self) -> None:
        self.load()
