"""Test digits drawn with half-block characters, each captioned true → predicted."""

from __future__ import annotations

import functools

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

CELL_WIDTH = 14 + 2  # a 14-pixel-wide digit and a gap
CELL_HEIGHT = 7 + 2  # 14 pixel rows in 7 half-block lines, a caption and a gap


def _shrink(image) -> list[list[int]]:
    """28x28 uint8 to 14x14 by averaging 2x2 blocks: small enough for a grid, still legible."""
    px = image.tolist() if hasattr(image, "tolist") else image
    return [[(px[2 * r][2 * c] + px[2 * r][2 * c + 1] + px[2 * r + 1][2 * c] + px[2 * r + 1][2 * c + 1]) // 4 for c in range(14)] for r in range(14)]


def _shade(value: int, wrong: bool) -> Color:
    if wrong:  # mistakes are drawn in red so they stand out in the grid
        return Color.from_rgb(value, value // 4, value // 4)
    return Color.from_rgb(value, value, value)


@functools.lru_cache(maxsize=8192)
def _cell_style(top: int, bottom: int, wrong: bool) -> Style:
    """A cell's style, shared: most cells of a grid repeat a few pairs (black on black above all),
    and building 4,704 styles afresh took most of the grid's drawing time."""
    return Style(color=_shade(top, wrong), bgcolor=_shade(bottom, wrong))


def digit_lines(image, wrong: bool = False) -> list[Text]:
    """Seven lines of '▀': the top pixel is the foreground colour, the bottom the background."""
    px = _shrink(image)
    lines = []
    for r in range(0, 14, 2):
        line = Text()
        for c in range(14):
            line.append("▀", _cell_style(px[r][c], px[r + 1][c], wrong))
        lines.append(line)
    return lines


class DigitGrid(Widget):
    """A grid of predictions; give it `Prediction` items (see mnist_tui.core.predict)."""

    DEFAULT_CSS = "DigitGrid { height: auto; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.items: list = []
        self.shown = False  # whether show() was called: before that, the title says what is coming
        self.selected = 0  # the digit `w` explains: its caption is shown reversed
        self._drawn: tuple[int, Text] | None = None  # (digits per row, the grid drawn for them)

    def show(self, items: list) -> None:
        self.items = list(items)
        self.shown = True
        self.selected = 0
        self._drawn = None
        self.refresh(layout=True)

    def select(self, step: int) -> None:
        """Move the selection by `step` digits (wrapping round)."""
        if self.items:
            self.selected = (self.selected + step) % len(self.items)
            self._drawn = None
            self.refresh()

    @property
    def per_row(self) -> int:
        return max(1, (self.size.width or 80) // CELL_WIDTH)

    def get_content_height(self, container, viewport, width: int) -> int:
        per_row = max(1, width // CELL_WIDTH)
        return -(-len(self.items) // per_row) * CELL_HEIGHT if self.items else 1

    def render(self) -> Text:
        if not self.items:
            return Text("No predictions to show." if self.shown else "")
        per_row = self.per_row
        if self._drawn is None or self._drawn[0] != per_row:  # layout asks for it more than once
            self._drawn = (per_row, self._draw(per_row))
        return self._drawn[1]

    def _draw(self, per_row: int) -> Text:
        out = Text()
        for start in range(0, len(self.items), per_row):
            chunk = self.items[start : start + per_row]
            drawn = [digit_lines(p.image, not p.correct) for p in chunk]
            for line_no in range(7):
                for lines in drawn:
                    out.append_text(lines[line_no])
                    out.append("  ")
                out.append("\n")
            for i, p in enumerate(chunk, start=start):
                caption = f"{p.label}→{p.predicted} {p.confidence:.0%}"
                style = "bold red" if not p.correct else "green"
                out.append(caption, style=style + (" reverse" if i == self.selected else ""))
                out.append(" " * (CELL_WIDTH - len(caption)))
            out.append("\n\n")
        return out
