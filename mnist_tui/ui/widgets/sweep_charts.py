"""The Sweep screen's two charts: the objective over trials (each trial's score a point, the
best so far a line) and one parameter against the score (a log axis for a parameter sampled
on a log scale, the choices in order for a categorical one).

A chart keeps its points and redraws them with its own `plt` on a resize; `plotted` holds
what it last handed plotext (the tests read that). The report is checked in the core: every
value here is finite."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual_plotext import PlotextPlot

from mnist_tui.core.sweep.report import Param, SweepReport
from mnist_tui.present.sweeps import param_text, safe
from mnist_tui.ui.widgets.chart_values import log_ticks, spread

MOST_TICKS = 6  # category labels under a scatter: more would run together
# plotext's tick labels overflow to NaN on values near float's limit (1e308): a point past
# this is left out of the chart (the table still lists it).
DRAWABLE = 1e15


@dataclass(frozen=True)
class Scatter:
    """What the parameter chart draws: xs on the axis's scale, and how to label it."""

    name: str
    xs: list[float]
    ys: list[float]
    scale: str  # linear, log or categories
    ticks: tuple[list[float], list[str]] | None = None


def scatter_of(report: SweepReport, name: str) -> Scatter:
    """The complete trials' (parameter, score) for `name`; a log parameter's xs are its
    log10, a categorical one's the index of its choice (in order of first appearance)."""
    pairs: list[tuple[Param, float]] = [(r.params[name], r.value) for r in report.trials if r.value is not None and name in r.params]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v, _ in pairs)
    if numeric and name in report.log_params:
        kept = [(math.log10(float(v)), y) for v, y in pairs if isinstance(v, (int, float)) and v > 0]
        xs = [x for x, _ in kept]
        ticks = log_ticks(*spread(min(xs), max(xs)), most=MOST_TICKS) if xs else None
        return Scatter(name, xs, [y for _, y in kept], "log", ticks)
    if numeric:
        return Scatter(name, [float(v) for v, _ in pairs if isinstance(v, (int, float))], [y for _, y in pairs], "linear")
    choices = list(dict.fromkeys(param_text(v) for v, _ in pairs))
    xs = [float(choices.index(param_text(v))) for v, _ in pairs]
    shown = choices if len(choices) <= MOST_TICKS else []
    return Scatter(name, xs, [y for _, y in pairs], "categories", ([float(i) for i in range(len(shown))], shown))


def whole_ticks(xs: list[float], most: int = MOST_TICKS) -> tuple[list[float], list[str]] | None:
    """Whole-number ticks (trial numbers) over xs, at most `most`, evenly stepped."""
    if not xs:
        return None
    lo, hi = math.floor(min(xs)), math.ceil(max(xs))
    step = max(1, math.ceil((hi - lo) / max(1, most - 1)))
    ticks = [float(x) for x in range(lo, hi + 1, step)]
    return ticks, [str(int(x)) for x in ticks]


def drawable(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """The (x, y) pairs plotext can draw: both finite and within DRAWABLE."""
    kept = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y) and abs(x) <= DRAWABLE and abs(y) <= DRAWABLE]
    return [x for x, _ in kept], [y for _, y in kept]


class SweepChart(PlotextPlot):
    """A scatter of points with, optionally, a line through others; empty says so."""

    def __init__(self, title: str, **kwargs: str) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # id=..., classes=...
        self.title = title
        self.points: tuple[list[float], list[float]] = ([], [])
        self.line: tuple[list[float], list[float]] = ([], [])
        self.xlabel = ""
        self.ticks: tuple[list[float], list[str]] | None = None
        self.pad = 0.0  # room either side of the x range (categories sit half a step in)
        self.empty_note = "no complete trial yet"
        self.plotted: list[tuple[str, list[float], list[float]]] = []

    def show(
        self,
        title: str,
        points: tuple[list[float], list[float]],
        line: tuple[list[float], list[float]] = ([], []),
        xlabel: str = "",
        ticks=None,
        pad: float = 0.0,
    ) -> None:
        self.title, self.points, self.line, self.xlabel, self.ticks, self.pad = title, points, line, xlabel, ticks, pad
        self.replot()

    def on_mount(self) -> None:
        self.replot()

    def on_resize(self) -> None:
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        xs, ys = drawable(*self.points)
        line = drawable(*self.line)
        self.border_title = Text(safe(self.title if xs else f"{self.title}: {self.empty_note}"), style="bold")
        self.plotted = []
        if xs:
            if line[0]:  # first, so that the points are drawn over it
                plt.plot(*line, marker="braille", color="orange")
            plt.scatter(xs, ys, marker="dot", color="cyan")
            self.plotted.append(("points", list(xs), list(ys)))
            if line[0]:
                self.plotted.append(("line", list(line[0]), list(line[1])))
            every_x = xs + line[0]
            every_y = ys + line[1]
            plt.xlim(*spread(min(every_x) - self.pad, max(every_x) + self.pad))
            plt.ylim(*spread(min(every_y), max(every_y)))
            if self.ticks and self.ticks[0]:
                plt.xticks(*self.ticks)
        plt.xlabel(safe(self.xlabel))
        self.refresh()
