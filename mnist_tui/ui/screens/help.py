"""`?` or F1: every key of the screen underneath, including those the footer had no room for."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

# Keys that work everywhere but belong to no single binding list.
EVERYWHERE = [("arrows", "Move within a list, table or field")]


def screen_keys(screen: Screen) -> list[tuple[str, str]]:
    """(key, what it does) for every described binding active on `screen`, screen's first."""
    app = screen.app
    # The screen's own keys first, then the app's, then those of the part in focus.
    groups: tuple[dict[str, tuple[str, str]], ...] = ({}, {}, {})
    for _key, (node, binding, _enabled, _tooltip) in screen.active_bindings.items():
        group = groups[0 if binding.show and node is not app else 1 if binding.show else 2]
        if binding.description and binding.action not in group:
            group[binding.action] = (app.get_key_display(binding), binding.description)
    return [*groups[0].values(), *groups[2].values(), *groups[1].values(), *EVERYWHERE]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape,question_mark,f1,q", "app.pop_screen", "Close")]

    def __init__(self, title: str, keys: list[tuple[str, str]]):
        super().__init__()
        self.title_text, self.keys = title, keys

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        table.add_column(style="bold")
        table.add_column()
        for key, what in self.keys:
            table.add_row(Text(key), Text(what))
        with VerticalScroll(id="help-dialog"):
            yield Static(Text(f"Keys of {self.title_text} (esc closes)", style="bold"), id="help-title")
            yield Static(table)
