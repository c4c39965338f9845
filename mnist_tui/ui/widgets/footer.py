"""A footer that keeps the keys that matter when the terminal is narrow.

Textual's Footer shows every binding in a row and cuts the row at the edge, so at 80 columns
the last keys (often the screen's most useful ones) vanish mid-word. This one ranks the keys
(`?` first, then the screen's in the order they are declared, which is their order of
importance, then the app's) and shows as many whole keys as fit; `?` lists them all.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

PALETTE_WIDTH = 12  # "^p palette" and its border, on the right


class KeyFooter(Footer):
    def ranked(self) -> list[tuple[Binding, bool, str]]:
        """The shown bindings, most important first, one per action."""
        app_bindings, screen_bindings = [], []
        seen: set[str] = set()
        for node, binding, enabled, tooltip in self.screen.active_bindings.values():
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            (app_bindings if node is self.app else screen_bindings).append((binding, enabled, tooltip))
        helps = [b for b in app_bindings if b[0].action == "help"]
        return helps + screen_bindings + [b for b in app_bindings if b[0].action != "help"]

    def fitting(self, width: int) -> list[tuple[Binding, bool, str]]:
        kept, used = [], PALETTE_WIDTH
        for binding, enabled, tooltip in self.ranked():
            size = len(self.app.get_key_display(binding)) + len(binding.description) + 3
            if used + size > width:
                break  # a less important key never takes the place of a more important one
            kept.append((binding, enabled, tooltip))
            used += size
        return kept

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        keep = self.fitting(self.size.width or self.app.size.width)
        self.styles.grid_size_columns = len(keep)
        for binding, enabled, tooltip in keep:
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip,
            ).data_bind(compact=Footer.compact)
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            try:
                _node, binding, enabled, tooltip = self.screen.active_bindings[self.app.COMMAND_PALETTE_BINDING]
            except KeyError:
                return
            yield FooterKey(binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                            classes="-command-palette", disabled=not enabled, tooltip=binding.tooltip or binding.description)

    def on_resize(self) -> None:
        if self._bindings_ready:
            self.call_after_refresh(self.recompose)
