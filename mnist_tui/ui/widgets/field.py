"""An Input that never loses or reorders keys typed fast.

Textual runs an Input's own bindings (backspace, delete, arrows, home, end) only after the
key has bubbled up to the app through every container's message queue, while a printable
key is inserted at once. Typed or pasted faster than a screen refresh, `0 BackSpace 6 4` in
a deeply nested form therefore became `06`. This Input runs its own editing bindings as
soon as it receives the key, so keys take effect in the order they were typed.
"""

from __future__ import annotations

from textual import events
from textual.binding import BindingsMap, NoBinding
from textual.widgets import Input

EDITING_KEYS = BindingsMap(Input.BINDINGS)  # Input's own keys: arrows, backspace, home, end, ...


class Field(Input):
    async def on_key(self, event: events.Key) -> None:
        """Handled before Input's own key handler (this class comes first): an editing key runs
        its action here and goes no further; any other key goes on as usual."""
        try:
            bindings = EDITING_KEYS.get_bindings_for_key(event.key)
        except NoBinding:
            return
        event.stop()
        event.prevent_default()
        await self.run_action(bindings[0].action)
