"""A footer that keeps the keys that matter when the terminal is narrow.

Textual's Footer shows every binding in a row and cuts the row at the edge, so at 80 columns
the last keys (often the screen's most useful ones) vanish mid-word. This one ranks the keys
(`?` first, then the screen's in the order they are declared, which is their order of
importance, then the app's) and shows as many whole keys as fit; `?` lists them all. A key
can be clicked, as in Textual's footer. Public Textual API only: one line of text, redrawn
when the screen's bindings change or the terminal is resized.
"""

from __future__ import annotations

from rich.color import Color as RichColor
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.color import Color, ColorParseError
from textual.widget import Widget

PALETTE = "^p palette"
GAP = "  "


class KeyFooter(Widget):
    DEFAULT_CSS = """
    KeyFooter { dock: bottom; height: 1; background: $footer-background; color: $footer-description-foreground; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._spans: list[tuple[int, int, str]] = []  # (start, end, key) of each key shown, for clicks

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self.refresh())

    def ranked(self) -> list[tuple[Binding, bool]]:
        """The shown bindings (with whether each is enabled), most important first, one per action."""
        app_bindings, screen_bindings = [], []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or binding.action in seen or binding.action == "app.command_palette":
                continue
            seen.add(binding.action)
            (app_bindings if active.node is self.app else screen_bindings).append((binding, active.enabled))
        helps = [b for b in app_bindings if b[0].action == "help"]
        return helps + screen_bindings + [b for b in app_bindings if b[0].action != "help"]

    def fitting(self, width: int) -> list[tuple[Binding, bool]]:
        """The ranked keys that fit `width` whole, beside the palette hint."""
        kept, used = [], len(PALETTE) + 2
        for binding, enabled in self.ranked():
            size = len(self.app.get_key_display(binding)) + 1 + len(binding.description) + len(GAP)
            if used + size > width:
                break  # a less important key never takes the place of a more important one
            kept.append((binding, enabled))
            used += size
        return kept

    def render(self) -> Text:
        width = self.size.width or self.app.size.width
        line = Text(" ")
        self._spans = []
        key_style = Style(bold=True, color=_rich_colour(self.app.theme_variables.get("footer-key-foreground")))
        for binding, enabled in self.fitting(width):
            start = line.cell_len
            line.append(self.app.get_key_display(binding), style=key_style if enabled else "dim")
            line.append(f" {binding.description}", style="" if enabled else "dim")
            self._spans.append((start, line.cell_len, binding.key.split(",")[0]))
            line.append(GAP)
        padding = max(1, width - line.cell_len - len(PALETTE) - 1)
        line.append(" " * padding)
        line.append("^p", style=key_style)
        line.append(" palette ")
        return line

    def on_resize(self) -> None:
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        """A click on a key presses it; one on the palette hint opens the palette."""
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
        if event.x >= self.size.width - len(PALETTE) - 1:
            self.app.action_command_palette()


def _rich_colour(value: str | None) -> RichColor | None:
    """A theme's colour as Rich's: themes may name ANSI colours (`ansi_magenta` in
    textual-ansi), which Rich's style strings cannot parse."""
    try:
        return Color.parse(value).rich_color if value else None
    except ColorParseError:
        return None
