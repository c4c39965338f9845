"""A run's model on test digits: a grid of images with true and predicted labels."""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import HorizontalGroup, VerticalScroll
from textual.widgets import Header, ProgressBar, Static

from mnist_tui.present.text import digit_caption
from mnist_tui.ui.screens.base import AppScreen, WorkProgress
from mnist_tui.ui.widgets.digit_grid import DigitGrid
from mnist_tui.ui.widgets.footer import KeyFooter

# Seconds between progress updates. Each one costs the UI thread a redraw while the worker
# waits for the GIL between its torch calls: an update for every chunk (157 of them) made
# the classification take about 1.5 times as long as ten updates a second.
PROGRESS_EVERY = 0.1


def import_core():
    """The core's predict, imported (with torch, over a second) on first use; the Runs screen
    calls this in a worker as it opens, so that `p` rarely waits for it. The 180,000 objects
    that import makes, kept for the process's life, then go where the garbage collector's full
    scans skip them: each scan took about 0.1 s, four or five times between pressing `p` and
    the grid drawn."""
    first = "torch" not in sys.modules
    from mnist_tui.core.predict import predict

    if first:
        gc.freeze()
    return predict


class PredictionsScreen(AppScreen):
    BINDINGS = [
        ("escape", "app.pop_screen", "Back"),
        ("m", "toggle_mistakes", "Mistakes only"),
        ("r", "reload", "Reload checkpoint"),
        ("x", "confusion", "Confusion matrix"),
        ("w", "why", "Why this digit"),
        ("right_square_bracket", "select(1)", "Next digit"),
        ("left_square_bracket", "select(-1)", "Previous digit"),
    ]

    def __init__(self, run_dir: Path, count: int = 48):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.count = count
        self.mistakes_only = False
        self.predictions = None
        self.classifying = False  # between asking for predictions and showing them (or the error)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(f"Classifying the 10,000 test digits with {self.run_dir.name}…"), id="predictions-title")
        with HorizontalGroup(id="predictions-progress"):
            yield ProgressBar(show_eta=False)
            yield Static(" loading the checkpoint and the test digits…", id="predictions-progress-text")
        with VerticalScroll():
            yield DigitGrid(id="digits")
        yield KeyFooter()

    def on_mount(self) -> None:
        # Start once the screen is drawn: the first import of torch holds the GIL for most of
        # a second or two, and the screen would only appear after it.
        self.call_after_refresh(self.classify)

    def classify(self) -> None:
        self.classifying = True
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="predict")
    def load(self) -> None:
        predict = import_core()
        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            if 0 < done < total and time.monotonic() - last < PROGRESS_EVERY:
                return
            last = time.monotonic()
            self.post_message(WorkProgress(done, total))

        result = predict(self.run_dir, self.count, self.mistakes_only, self.tui.data_dir, progress=progress)
        self.app.call_from_thread(self.show, result)

    def on_work_progress(self, message: WorkProgress) -> None:
        if not self.classifying:
            return  # queued before the result, which call_from_thread may deliver first
        if message.done < message.total:  # a cached result sends only done == total: no progress to show
            self.query_one("#predictions-progress").display = True
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)
        self.query_one("#predictions-progress-text", Static).update(f" classified {message.done:,} of {message.total:,} test digits")

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group == "predict" and event.worker.error is not None:
            self.classifying = False
            self.query_one("#predictions-progress").display = False
            self.query_one("#predictions-title", Static).update(Text(f"Cannot load this run's model: {event.worker.error}", style="red"))

    def show(self, result) -> None:
        self.predictions = result
        self.classifying = False
        self.query_one("#predictions-progress").display = False
        which = "the first mistakes" if self.mistakes_only else "the first test digits"
        self.query_one("#predictions-title", Static).update(
            Text.assemble(  # Text, not markup: the run's name may hold brackets
                Text(result.run_id, style="bold"),
                f" after epoch {result.epoch}: {result.mistakes:,} mistake{'' if result.mistakes == 1 else 's'} in "
                f"{result.total:,} test digits ({100 - 100 * result.mistakes / result.total:.2f}% right"
                + (f"; the run's own test pass used the first {result.run_tested:,}, as Mistakes does" if result.run_tested else "")
                + f") · showing {which} · captions are true→predicted",
            )
        )
        self.query_one(DigitGrid).show(result.items)

    def action_toggle_mistakes(self) -> None:
        self.mistakes_only = not self.mistakes_only
        self.classify()

    def action_reload(self) -> None:
        self.classify()

    def _shown_weights(self):
        """(epoch, weights) of the checkpoint this screen shows: Why explains that one."""
        shown = self.predictions
        return (shown.epoch, shown.weights) if shown is not None and shown.weights else None

    def action_why(self) -> None:
        """Why the model reads the selected digit as it does."""
        grid = self.query_one(DigitGrid)
        if not grid.items:
            self.notify("No digit shown yet.", severity="warning")
            return
        from mnist_tui.ui.screens.why import WhyScreen

        chosen = grid.items[grid.selected]
        self.app.push_screen(WhyScreen(self.run_dir, chosen.image, digit_caption(chosen.index, chosen.label), self._shown_weights()))

    def action_select(self, step: int) -> None:
        self.query_one(DigitGrid).select(step)

    def action_confusion(self) -> None:
        from mnist_tui.ui.screens.mistakes import MistakesScreen

        self.app.push_screen(MistakesScreen(self.run_dir))
