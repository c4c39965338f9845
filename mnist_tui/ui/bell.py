"""The app's word that a followed run ended, in the terminal itself: the bell and a desktop
notification (present/notify.py says which sequences, and MNIST_TUI_NOTIFY=off silences it)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import App

from mnist_tui.core.events import Event, RunFailed, RunFinished
from mnist_tui.present.notify import TITLE, event_words, sequences


def ring_at_end(app: App, events: Iterable[Event], run_dir: Path | None) -> None:
    """Ring and notify if these events end the run; nothing otherwise."""
    ended = [ev for ev in events if isinstance(ev, (RunFinished, RunFailed))]
    if not ended:
        return
    text = sequences(TITLE, event_words(ended[-1], run_dir.name if run_dir is not None else "the run"))
    # Textual has no public call for raw output; App.bell() and the pointer shape write
    # their own escape sequences through the driver in the same way.
    driver = app._driver
    if text and driver is not None:
        driver.write(text)
