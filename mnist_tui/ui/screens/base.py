"""The base of the app's screens: typed access to the app (its runs folder, data folder,
launcher) instead of untyped `self.app` attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from mnist_tui.ui.app import MnistTuiApp


class AppScreen(Screen[None]):
    @property
    def tui(self) -> MnistTuiApp:
        """The app, typed (a screen of this package only ever runs in MnistTuiApp)."""
        return cast("MnistTuiApp", self.app)
