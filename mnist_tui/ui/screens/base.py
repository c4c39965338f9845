"""The base of the app's screens: typed access to the app (its runs folder, data folder,
launcher) instead of untyped `self.app` attributes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from textual.message import Message
from textual.screen import Screen

if TYPE_CHECKING:
    from mnist_tui.ui.app import MnistTuiApp


class AppScreen(Screen[None]):
    @property
    def tui(self) -> MnistTuiApp:
        """The app, typed (a screen of this package only ever runs in MnistTuiApp)."""
        return cast("MnistTuiApp", self.app)


@dataclass
class WorkProgress(Message):
    """How far a screen's worker has come over the test digits; posted from the worker's
    thread, and a newer one replaces one still queued."""

    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, WorkProgress)
