"""`?` or F1: every key of the screen underneath, including those the footer had no room for,
and on a screen with charts, the charts' keys, whether a chart has focus or not."""

from __future__ import annotations

import os

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from mnist_tui.ui.widgets.charts import MetricChart

# Keys that work everywhere but belong to no single binding list.
EVERYWHERE = [("arrows", "Move within a list, table or field")]
# The row above the charts' keys: they act on the chart in focus, which takes some tabs to reach.
CHARTS_HEADING = ("Charts", "first tab to a chart or click it (it lights up)")


def chart_keys(app: App[object]) -> list[tuple[str, str]]:
    """(keys, what they do) for a chart's bindings, a binding's keys together ('+ =') and
    bindings that do one thing in two directions on one row ('← →  Cursor', 'shift+← →')."""
    rows: dict[str, list[str]] = {}
    for binding in Binding.make_bindings(MetricChart.BINDINGS):
        what = binding.description + (f": {binding.tooltip}" if binding.tooltip else "")
        rows.setdefault(what, []).append(app.get_key_display(binding))
    return [(_together(list(dict.fromkeys(keys))), what) for what, keys in rows.items()]


def _together(keys: list[str]) -> str:
    """Keys on one row, a modifier they share written once: 'shift+← →'."""
    modifier = os.path.commonprefix(keys).rpartition("+")[0] + "+" if len(keys) > 1 else ""
    if modifier == "+":
        modifier = ""
    return modifier + " ".join(key.removeprefix(modifier) for key in keys)


def screen_keys(screen: Screen) -> list[tuple[str, str]]:
    """(key, what it does) for every described binding active on `screen`, screen's first;
    on a screen with charts, the charts' keys next (in sight without scrolling), under a
    heading that says how to reach one, and a blank row."""
    app = screen.app
    has_charts = bool(screen.query(MetricChart))
    # The screen's own keys first, then the app's, then those of the part in focus.
    groups: tuple[dict[str, tuple[str, str]], ...] = ({}, {}, {})
    for _key, (node, binding, _enabled, _tooltip) in screen.active_bindings.items():
        if has_charts and isinstance(node, MetricChart):
            continue  # listed with the charts' keys below, focused or not
        group = groups[0 if binding.show and node is not app else 1 if binding.show else 2]
        if binding.description and binding.action not in group:
            group[binding.action] = (app.get_key_display(binding), binding.description)
    charts = [("", ""), CHARTS_HEADING, *chart_keys(app), ("", "")] if has_charts else []
    return [*groups[0].values(), *charts, *groups[2].values(), *groups[1].values(), *EVERYWHERE]


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
            heading = (key, what) == CHARTS_HEADING
            table.add_row(Text(key, style="underline" if heading else ""), Text(what, style="italic" if heading else ""))
        with VerticalScroll(id="help-dialog"):
            yield Static(Text(f"Keys of {self.title_text} (esc closes)", style="bold"), id="help-title")
            yield Static(table)
