"""Line charts of training curves over epochs, studied the way trackers let you: smoothing
with the raw curve kept faint, a log y axis, zoom and pan, and a cursor that reads values.

A chart keeps its series and redraws them; what it hands to plotext is kept in `plotted`
(tests read that, not pixels). Per-batch series hold thousands of points: they are smoothed
whole, cut to the view, then averaged into about two points per braille column, so a
redraw stays cheap however long the run.

A run's files are untrusted: a chart draws what it can of NaN, infinities and values near
the float limits (see `drawable` and `clipped`) and never raises. A log y axis is drawn by
the chart, not by plotext: it plots log10 of the values on a linear axis labelled in powers
of ten, since plotext takes the log anew at every redraw (a resize then takes the log of
a log) and fails on an empty or non-positive series.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual_plotext import PlotextPlot

from mnist_tui.ui.widgets.chart_values import LIMIT, bin_means, clipped, drawable, log_ticks, smooth, spread

# Distinct colours for up to eight overlaid series: plotext's names, and Rich's for legends.
COLOURS = ("cyan", "orange", "green", "magenta", "red", "blue", "yellow", "white")
RICH_COLOURS = {"orange": "dark_orange", "gray": "grey50"}
FAINT = "gray"  # the raw curve under a smoothed one
SMOOTHING = (0.0, 0.6, 0.9, 0.99)  # what the smoothing key cycles through
ZOOM_LAST = (None, 10, 5, 1)  # the `z` key: the whole run, then its last N epochs
COLUMNS_PER_POINT = 0.5  # braille: two dots a column
SEPARATOR = " · "  # between the parts of the state line


@dataclass
class Series:
    """One curve: `dense` ones (a point per few batches) can be smoothed."""

    name: str
    points: list[tuple[float, float]] = field(default_factory=list)
    colour: str = "cyan"
    dense: bool = False
    _drawable: tuple[list[tuple[float, float]], int, list[float], list[float], list[float]] | None = field(default=None, repr=False, compare=False)

    def drawable(self) -> tuple[list[float], list[float], list[float]]:
        """Its points as a chart can place them: xs, ys as they are, ys clipped (see
        chart_values.drawable). Kept until `points` is replaced or grows, so that a key press
        on a long per-batch curve does not clean it again (the list itself is kept with
        them: compared by identity, never by an id a new list could reuse)."""
        cached = self._drawable
        if cached is None or cached[0] is not self.points or cached[1] != len(self.points):
            xs, ys = drawable(self.points)
            cached = self._drawable = (self.points, len(self.points), xs, ys, clipped(ys))
        return cached[2], cached[3], cached[4]


@dataclass(frozen=True)
class Drawn:
    """What one plot call drew: the tests' view of a chart."""

    name: str
    xs: list[float]
    ys: list[float]
    colour: str


class MetricChart(PlotextPlot):
    """Named series over epochs (fractional for per-batch points), with keys to study them."""

    can_focus = True
    BINDINGS = [
        # The tooltips are the help screen's (`?`) longer words for each key.
        Binding("s", "smooth", "Smooth", tooltip="off, 0.6, 0.9, 0.99"),
        Binding("l", "log_y", "Log y", tooltip="values ≤ 0 left out"),
        Binding("z", "zoom_last", "Last N", tooltip="whole run, then last 10, 5, 1 epochs"),
        Binding("plus,equals_sign", "zoom(0.5)", "Zoom in", tooltip="around the cursor (or the wheel)"),
        Binding("minus", "zoom(2)", "Zoom out", show=False),
        Binding("0", "whole", "Whole run", show=False, tooltip="and no cursor"),
        Binding("left", "move(-1)", "Cursor", show=False, tooltip="read every curve's value"),
        Binding("right", "move(1)", "Cursor", show=False, tooltip="read every curve's value"),
        Binding("shift+left", "pan(-1)", "Pan", show=False, tooltip="a zoomed view"),
        Binding("shift+right", "pan(1)", "Pan", show=False, tooltip="a zoomed view"),
    ]

    def __init__(self, title: str, legend: bool = True, **kwargs: str) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # id=..., classes=...
        self.title = title
        self.show_legend = legend  # off where one legend beside the charts serves several
        self._legend: Text | None = None  # the title line last set
        self.lines: dict[str, Series] = {}
        self.smoothing = 0.0
        self.log_y = False
        self.window: tuple[float, float] | None = None  # the x range shown; None: everything
        self.cursor: float | None = None  # where the readout reads, in epochs
        self.plotted: list[Drawn] = []
        self.scale = "linear"
        self.left_out = 0  # points of the last drawing that could not be placed (NaN; ≤ 0 on a log axis)
        self.clipped = False  # whether it bounded a value to ±LIMIT

    # -- data -------------------------------------------------------------------------------

    @property
    def series(self) -> dict[str, list[tuple[float, float]]]:
        return {name: s.points for name, s in self.lines.items()}

    @property
    def point_counts(self) -> dict[str, int]:
        return {name: len(s.points) for name, s in self.lines.items()}

    def set_series(self, name: str, points: list[tuple[float, float]], colour: str | None = None, dense: bool = False) -> None:
        """Replace (or add) one series; its colour is kept, or the next free one given."""
        line = self.lines.get(name)
        if line is None:
            line = self.lines[name] = Series(name, colour=colour or COLOURS[len(self.lines) % len(COLOURS)], dense=dense)
        line.points, line.dense = list(points), dense
        if colour:
            line.colour = colour

    def clear(self) -> None:
        self.lines, self.window, self.cursor = {}, None, None
        self.replot()

    def add_point(self, x: float, values: dict[str, float]) -> None:
        for name, y in values.items():
            self.add_points(name, [(x, y)])
        self.replot()

    def add_points(self, name: str, points: list[tuple[float, float]], dense: bool = False) -> None:
        if name not in self.lines:
            self.set_series(name, [], dense=dense)
        self.lines[name].points.extend(points)

    # -- keys -------------------------------------------------------------------------------

    @property
    def extent(self) -> tuple[float, float]:
        ends = [p[0] for s in self.lines.values() for p in (s.points[:1] + s.points[-1:])]
        xs = [min(max(x, -LIMIT), LIMIT) for x in ends if math.isfinite(x)]
        return (min(xs), max(xs)) if xs else (0.0, 1.0)

    @property
    def view(self) -> tuple[float, float]:
        lo, hi = self.extent
        if self.window is None:
            return lo, hi
        return max(lo, self.window[0]), min(hi, self.window[1])

    def action_smooth(self) -> None:
        self.smoothing = SMOOTHING[(SMOOTHING.index(self.smoothing) + 1) % len(SMOOTHING)] if self.smoothing in SMOOTHING else 0.0
        self.replot()

    def action_log_y(self) -> None:
        self.log_y = not self.log_y
        self.replot()

    def action_zoom_last(self) -> None:
        """Whole run, last 10, last 5, last epoch, and round again."""
        lo, hi = self.extent
        span = None if self.window is None else self.window[1] - self.window[0]
        current = ZOOM_LAST.index(span) if span in ZOOM_LAST else 0
        nxt = ZOOM_LAST[(current + 1) % len(ZOOM_LAST)]
        self.window = None if nxt is None else (hi - nxt, hi)
        self.replot()

    def show_range(self, lo: float, hi: float) -> None:
        """Zoom to epochs lo..hi (fractional epochs: 2.5 is halfway through the second)."""
        self.window = (min(lo, hi), max(lo, hi)) if hi != lo else None
        self.replot()

    def action_zoom(self, factor: float, centre: float | None = None) -> None:
        lo, hi = self.view
        full_lo, full_hi = self.extent
        mid = centre if centre is not None else self.cursor if self.cursor is not None else (lo + hi) / 2
        half = max((hi - lo) * factor / 2, 1e-3)
        if 2 * half >= full_hi - full_lo:
            self.window = None
        else:
            left = min(max(mid - half, full_lo), full_hi - 2 * half)
            self.window = (left, left + 2 * half)
        self.replot()

    def action_whole(self) -> None:
        self.window, self.cursor = None, None
        self.replot()

    def action_pan(self, direction: int) -> None:
        lo, hi = self.view
        full_lo, full_hi = self.extent
        step = (hi - lo) / 4 * direction
        step = max(full_lo - lo, min(full_hi - hi, step))
        if self.window is not None:
            self.window = (lo + step, hi + step)
            self.replot()

    def action_move(self, direction: int) -> None:
        """Move the cursor a fortieth of the view (it starts at the view's right end)."""
        lo, hi = self.view
        if self.cursor is None or not lo <= self.cursor <= hi:
            self.cursor = hi
        else:
            self.cursor = min(hi, max(lo, self.cursor + direction * (hi - lo) / 40))
        self.replot()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._wheel(event.x, 0.8)
        event.stop()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._wheel(event.x, 1.25)
        event.stop()

    def _wheel(self, column: int, factor: float) -> None:
        lo, hi = self.view
        self.action_zoom(factor, centre=lo + (hi - lo) * column / max(1, self.size.width))

    # -- drawing ----------------------------------------------------------------------------

    def readout(self) -> str:
        """Each series' value at the cursor (its nearest point): 'x 3.40: train 0.0213 · test 0.0310'."""
        return " · ".join(self._readings())

    def _readings(self) -> list[str]:
        """The readout in parts: 'x 3.40: train 0.0213', then 'test 0.0310' for each other series.
        A smoothed value is the smoothed curve's; any other is the point's own (inf, 1e+308)."""
        if self.cursor is None:
            return []
        parts = []
        for s in self.lines.values():
            xs, ys, bounded = s.drawable()
            if xs:
                i = min(range(len(xs)), key=lambda k: abs(xs[k] - self.cursor))  # type: ignore[operator]
                value = smooth(bounded, self.smoothing)[i] if s.dense and self.smoothing else ys[i]
                parts.append(f"{s.name} {value:.4g}")
        return [f"x {self.cursor:.2f}: " + (parts[0] if parts else "no points"), *parts[1:]]

    def legend(self) -> Text:
        """The chart's title and its series in their colours, for its title line (Text, not
        markup: a series is named from files that may hold brackets)."""
        line = Text(self.title, style="bold")
        for s in self.lines.values() if self.show_legend else ():
            line.append(" ")
            line.append("━", style=RICH_COLOURS.get(s.colour, s.colour))
            line.append(f" {s.name}")
        return line

    def _view_state(self) -> list[str]:
        """What the view does: 'smooth 0.9', 'log', 'epochs 3-5', and what it could not draw."""
        state = []
        if self.smoothing and any(s.dense for s in self.lines.values()):
            state.append(f"smooth {self.smoothing:g}")
        if self.log_y:
            state.append("log")
        if self.window is not None:
            lo, hi = self.view
            state.append(f"epochs {lo:.3g}-{hi:.3g}")
        if self.left_out:
            state.append(f"{self.left_out} not drawn ({'NaN or ≤ 0' if self.log_y else 'NaN'})")
        if self.clipped:
            state.append(f"clipped at ±{LIMIT:.0e}")
        return state

    def state(self) -> str:
        """What the view does, above the plot: 'smooth 0.9 · log · epochs 3-5', and the cursor's readout."""
        return SEPARATOR.join(self._view_state() + self._readings())

    def state_lines(self, width: int, most: int) -> list[str]:
        """The state wrapped to `width` between its parts (a part too long folded), at most
        `most` lines, so that a narrow chart shows its view and cursor as a wide one does."""
        lines: list[str] = []
        for part in self._view_state() + self._readings():
            if lines and len(lines[-1]) + len(SEPARATOR) + len(part) <= width:
                lines[-1] += SEPARATOR + part
            else:
                lines += [part[i : i + width] for i in range(0, len(part), max(1, width))]
        if len(lines) > most:
            lines = lines[:most]
            lines[-1] = lines[-1][: max(0, width - 1)] + "…"
        return lines

    def _curves(self) -> list[Drawn]:
        """The curves to draw for the current view: faint raw and smoothed for dense series.
        On a log axis, the log10 of the values above 0."""
        lo, hi = self.view
        bins = max(8, int(max(1, self.size.width) / COLUMNS_PER_POINT))
        drawn = []
        self.left_out, self.clipped = 0, False
        for s in self.lines.values():
            xs, raw, ys = s.drawable()
            self.left_out += len(s.points) - len(xs)
            self.clipped = self.clipped or ys is not raw
            layers = [(s.name, ys, s.colour)]
            if s.dense and self.smoothing:
                layers = [(f"{s.name} raw", ys, FAINT), (s.name, smooth(ys, self.smoothing), s.colour)]
            start, end = bisect.bisect_left(xs, lo), bisect.bisect_right(xs, hi)  # a curve's x ascends
            for name, values, colour in layers:
                vx, vy = xs[start:end], values[start:end]
                if self.log_y:
                    vx, vy = [x for x, y in zip(vx, vy) if y > 0], [math.log10(y) for y in vy if y > 0]
                    if colour != FAINT:
                        self.left_out += end - start - len(vx)
                if vx:
                    bx, by = bin_means(vx, vy, bins) if s.dense else (vx, vy)
                    drawn.append(Drawn(name, bx, by, colour))
        return drawn

    def on_mount(self) -> None:
        self.replot()

    def on_resize(self) -> None:
        self.replot()

    def replot(self) -> None:
        """Hand plotext the view's curves, on axes it can divide by; the state lines are drawn by `render`."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        legend = self.legend()
        if legend != self._legend:  # setting it costs more than the plot
            self._legend = self.border_title = legend
        self.plotted = self._curves()
        for curve in self.plotted:
            plt.plot(curve.xs, curve.ys, marker="braille", color=curve.colour)
        self.scale = "log" if self.log_y else "linear"  # the axis shown; plotext's is always linear
        lo, hi = self.view
        if self.plotted:
            bottom, top = spread(min(min(c.ys) for c in self.plotted), max(max(c.ys) for c in self.plotted))
            plt.ylim(bottom, top)
            if self.log_y:
                plt.yticks(*log_ticks(bottom, top, most=max(2, self.size.height // 3)))
            plt.xlim(*spread(lo, hi))
            ticks = [float(e) for e in range(math.ceil(lo), math.floor(hi) + 1)] if hi - lo <= 12 else []
            if len(ticks) >= 2:
                plt.xticks(ticks, [str(int(x)) for x in ticks])  # whole epochs, not 1.25
        if self.cursor is not None:
            plt.vline(self.cursor, "white")
        plt.xlabel("epoch")
        self.refresh()

    def render(self) -> RenderableType:
        """The state lines, then the plot in the rows left (PlotextPlot.render's steps, with
        the plot's height less those lines)."""
        width, height = self.size
        lines = self.state_lines(width, most=max(1, height // 3)) if width > 0 else []
        rows = max(1, height - len(lines))
        self.plt.plotsize(width, rows)
        self.plt._set_size(width, rows)  # as PlotextPlot.render does: plotsize alone lags a resize
        self.plt.theme(self._get_plotext_theme_name(self.app.theme))
        plot = Text.from_ansi(self.plt.build())
        if not lines:
            return plot
        return Group(*[Text(line, justify="center", no_wrap=True, overflow="crop") for line in lines], plot)
