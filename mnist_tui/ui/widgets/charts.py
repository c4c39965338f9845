"""Line charts of training curves over epochs, studied the way trackers let you: smoothing
with the raw curve kept faint, a log y axis, zoom and pan, and a cursor that reads values.

A chart keeps its series and redraws them; what it hands to plotext is kept in `plotted`
(tests read that, not pixels). Per-batch series hold thousands of points: they are smoothed
whole, cut to the view, then averaged into about two points per braille column, so a
redraw stays cheap however long the run.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from rich.markup import escape
from textual import events
from textual.binding import Binding
from textual_plotext import PlotextPlot

# Distinct colours for up to eight overlaid series: plotext's names, and Rich's for legends.
COLOURS = ("cyan", "orange", "green", "magenta", "red", "blue", "yellow", "white")
RICH_COLOURS = {"orange": "dark_orange", "gray": "grey50"}
FAINT = "gray"  # the raw curve under a smoothed one
SMOOTHING = (0.0, 0.6, 0.9, 0.99)  # what the smoothing key cycles through
ZOOM_LAST = (None, 10, 5, 1)  # the `z` key: the whole run, then its last N epochs
COLUMNS_PER_POINT = 0.5  # braille: two dots a column


@dataclass
class Series:
    """One curve: `dense` ones (a point per few batches) can be smoothed."""

    name: str
    points: list[tuple[float, float]] = field(default_factory=list)
    colour: str = "cyan"
    dense: bool = False


@dataclass(frozen=True)
class Drawn:
    """What one plot call drew: the tests' view of a chart."""

    name: str
    xs: list[float]
    ys: list[float]
    colour: str


def smooth(ys: list[float], weight: float) -> list[float]:
    """Exponential moving average, debiased at the start as TensorBoard does (weight 0: as is)."""
    if weight <= 0:
        return list(ys)
    out, last, norm = [], 0.0, 0.0
    for y in ys:
        last = last * weight + (1 - weight) * y
        norm = norm * weight + (1 - weight)
        out.append(last / norm)
    return out


def bin_means(xs: list[float], ys: list[float], bins: int) -> tuple[list[float], list[float]]:
    """At most `bins` points: the mean of the points falling in each equal slice of x (xs
    ascending, as a curve's are; the slices are found by bisection, the sums in C)."""
    if len(xs) <= bins or bins < 1:
        return list(xs), list(ys)
    lo, hi = xs[0], xs[-1]
    edges = [bisect.bisect_right(xs, lo + (hi - lo) * k / bins) for k in range(1, bins)] + [len(xs)]
    out_x, out_y, start = [], [], 0
    for end in edges:
        if end > start:
            out_x.append(math.fsum(xs[start:end]) / (end - start))
            out_y.append(math.fsum(ys[start:end]) / (end - start))
            start = end
    return out_x, out_y


class MetricChart(PlotextPlot):
    """Named series over epochs (fractional for per-batch points), with keys to study them."""

    can_focus = True
    BINDINGS = [
        Binding("s", "smooth", "Smooth"),
        Binding("l", "log_y", "Log y"),
        Binding("z", "zoom_last", "Last N"),
        Binding("plus,equals_sign", "zoom(0.5)", "Zoom in"),
        Binding("minus", "zoom(2)", "Zoom out", show=False),
        Binding("0", "whole", "Whole run", show=False),
        Binding("left", "move(-1)", "Cursor", show=False),
        Binding("right", "move(1)", "Cursor", show=False),
        Binding("shift+left", "pan(-1)", "Pan", show=False),
        Binding("shift+right", "pan(1)", "Pan", show=False),
    ]

    def __init__(self, title: str, legend: bool = True, **kwargs: str) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # id=..., classes=...
        self.title = title
        self.show_legend = legend  # off where one legend beside the charts serves several
        self.lines: dict[str, Series] = {}
        self.smoothing = 0.0
        self.log_y = False
        self.window: tuple[float, float] | None = None  # the x range shown; None: everything
        self.cursor: float | None = None  # where the readout reads, in epochs
        self.plotted: list[Drawn] = []
        self.scale = "linear"

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
        xs = [p[0] for s in self.lines.values() for p in (s.points[:1] + s.points[-1:])]
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
        if self.cursor is None:
            return ""
        parts = []
        for s in self.lines.values():
            if s.points:
                ys = smooth([p[1] for p in s.points], self.smoothing if s.dense else 0.0)
                i = min(range(len(s.points)), key=lambda k: abs(s.points[k][0] - self.cursor))  # type: ignore[operator]
                parts.append(f"{s.name} {ys[i]:.4g}")
        return f"x {self.cursor:.2f}: " + " · ".join(parts)

    def legend(self) -> str:
        """The chart's title and its series in their colours (markup), for its title line."""
        keys = [f"[{RICH_COLOURS.get(s.colour, s.colour)}]━[/] {escape(s.name)}" for s in self.lines.values() if self.show_legend]
        return " ".join([f"[b]{escape(self.title)}[/b]", *keys])

    def state(self) -> str:
        """What the view does, above the plot: 'smooth 0.9 · log · epochs 3-5', and the cursor's readout."""
        state = []
        if self.smoothing and any(s.dense for s in self.lines.values()):
            state.append(f"smooth {self.smoothing:g}")
        if self.log_y:
            state.append("log")
        if self.window is not None:
            lo, hi = self.view
            state.append(f"epochs {lo:.3g}-{hi:.3g}")
        reading = self.readout()
        return " · ".join(state + ([reading] if reading else []))

    def _curves(self) -> list[Drawn]:
        """The curves to draw for the current view: faint raw and smoothed for dense series."""
        lo, hi = self.view
        bins = max(8, int(max(1, self.size.width) / COLUMNS_PER_POINT))
        drawn = []
        for s in self.lines.values():
            if not s.points:
                continue
            xs, ys = [p[0] for p in s.points], [p[1] for p in s.points]
            layers = [(s.name, ys, s.colour)]
            if s.dense and self.smoothing:
                layers = [(f"{s.name} raw", ys, FAINT), (s.name, smooth(ys, self.smoothing), s.colour)]
            start, end = bisect.bisect_left(xs, lo), bisect.bisect_right(xs, hi)  # a curve's x ascends
            for name, values, colour in layers:
                vx, vy = xs[start:end], values[start:end]
                if self.log_y:
                    vx, vy = [x for x, y in zip(vx, vy) if y > 0], [y for y in vy if y > 0]
                if vx:
                    bx, by = bin_means(vx, vy, bins) if s.dense else (vx, vy)
                    drawn.append(Drawn(name, bx, by, colour))
        return drawn

    def on_mount(self) -> None:
        self.replot()

    def on_resize(self) -> None:
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        legend = self.legend()
        if legend != self.border_title:  # parsing its markup costs more than the plot
            self.border_title = legend
        state = self.state()
        if state:
            plt.title(state)
        self.plotted = self._curves()
        for curve in self.plotted:
            plt.plot(curve.xs, curve.ys, marker="braille", color=curve.colour)
        self.scale = "log" if self.log_y else "linear"  # what plotext was told
        plt.yscale(self.scale)
        if self.cursor is not None:
            plt.vline(self.cursor, "white")
        lo, hi = self.view
        if self.plotted and hi - lo <= 12 and hi > lo:
            ticks = [float(e) for e in range(math.ceil(lo), math.floor(hi) + 1)]
            if len(ticks) >= 2:
                plt.xticks(ticks, [str(int(x)) for x in ticks])  # whole epochs, not 1.25
        if self.plotted:
            plt.xlim(lo, hi) if hi > lo else None
        plt.xlabel("epoch")
        self.refresh()
