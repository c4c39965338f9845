"""A 28x28 pad to draw a digit on: the mouse paints at sub-cell resolution (each terminal cell
shows two pixels with a half block), the keyboard moves a cursor and paints where no mouse is
reported (SSH sessions without mouse reporting)."""

from __future__ import annotations

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from mnist_tui.core.preprocess import SIZE, paint, stroke

CURSOR = Color.from_rgb(230, 180, 40)


def half_block_lines(pixels: list[list[float]], cursor: tuple[int, int] | None = None) -> list[Text]:
    """28 rows of values in [0, 1] as 14 lines of '▀' (top pixel foreground, bottom background)."""
    lines = []
    for r in range(0, len(pixels), 2):
        line = Text()
        for c in range(len(pixels[r])):
            top, bottom = (_gray(pixels[r][c]), _gray(pixels[r + 1][c]) if r + 1 < len(pixels) else _gray(0))
            if cursor is not None and cursor[0] == c and cursor[1] // 2 == r // 2:
                top, bottom = (CURSOR, bottom) if cursor[1] % 2 == 0 else (top, CURSOR)
            line.append("▀", Style(color=top, bgcolor=bottom))
        lines.append(line)
    return lines


def _gray(value: float) -> Color:
    v = int(round(max(0.0, min(1.0, value)) * 255))
    return Color.from_rgb(v, v, v)


class DrawPad(Widget, can_focus=True):
    """The pad. Posts `Drawn` when a stroke ends (mouse up) or a key paints."""

    ALLOW_SELECT = False  # a drag paints; it must not also select (and tint) the pad's text

    DEFAULT_CSS = "DrawPad { width: 30; height: 16; border: round $primary; } DrawPad:focus { border: round $accent; }"

    BINDINGS = [
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("space", "touch", "Paint"),
        Binding("e", "touch(True)", "Erase"),
        Binding("c", "clear", "Clear"),
    ]

    class Drawn(Message):
        def __init__(self, pad: DrawPad) -> None:
            super().__init__()
            self.pad = pad

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ink = [[0.0] * SIZE for _ in range(SIZE)]
        self.cursor = (SIZE // 2, SIZE // 2)  # (x, y) in pixels
        self._last: tuple[float, float] | None = None  # the mouse's last point while drawing
        self._erasing = False  # the stroke under way was started with the right button

    def render(self) -> Text:
        return Text("\n").join(half_block_lines(self.ink, self.cursor if self.has_focus else None))

    # The mouse: press, drag, release. A terminal that reports pixels gives fractional
    # positions; one that reports cells puts the brush in the cell's middle.
    def _pixel(self, event: events.MouseEvent) -> tuple[float, float]:
        inside = event.get_content_offset_capture(self)  # cells from the pad's inner corner
        x, y = event.pointer_x - (event.x - inside.x), event.pointer_y - (event.y - inside.y)
        x = x + 0.5 if float(x).is_integer() else x
        y = y + 0.5 if float(y).is_integer() else y
        return x, y * 2

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self.capture_mouse()
        self._last = self._pixel(event)
        self._erasing = event.button == 3
        paint(self.ink, *self._last, erase=self._erasing)
        self.refresh()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._last is None:
            return
        point = self._pixel(event)
        stroke(self.ink, self._last, point, erase=self._erasing)
        self._last = point
        self.refresh()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._last is None:
            return
        self.release_mouse()
        self._last = None
        self.post_message(self.Drawn(self))

    def action_move(self, dx: int, dy: int) -> None:
        x, y = self.cursor
        self.cursor = (min(SIZE - 1, max(0, x + dx)), min(SIZE - 1, max(0, y + dy)))
        self.refresh()

    def action_touch(self, erase: bool = False) -> None:
        x, y = self.cursor
        paint(self.ink, x + 0.5, y + 0.5, erase)
        self.refresh()
        self.post_message(self.Drawn(self))

    def action_clear(self) -> None:
        self.ink = [[0.0] * SIZE for _ in range(SIZE)]
        self.refresh()
        self.post_message(self.Drawn(self))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
