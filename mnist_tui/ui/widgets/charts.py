"""Line charts of per-epoch series; each chart keeps its own data and replots it."""

from __future__ import annotations

from textual_plotext import PlotextPlot

# Distinct plotext colours for up to eight overlaid series.
COLOURS = ("cyan", "orange", "green", "magenta", "red", "blue", "yellow", "white")


class MetricChart(PlotextPlot):
    """Named series over epochs, e.g. train and test loss."""

    def __init__(self, title: str, *, log_y: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.title = title
        self.log_y = log_y
        self.series: dict[str, list[tuple[float, float]]] = {}

    @property
    def point_counts(self) -> dict[str, int]:
        return {name: len(points) for name, points in self.series.items()}

    def clear(self) -> None:
        self.series = {}
        self.replot()

    def set_series(self, name: str, points: list[tuple[float, float]]) -> None:
        self.series[name] = list(points)
        self.replot()

    def add_point(self, x: float, values: dict[str, float]) -> None:
        for name, y in values.items():
            self.series.setdefault(name, []).append((x, y))
        self.replot()

    def on_mount(self) -> None:
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        if self.log_y:
            plt.yscale("log")
        for colour, (name, points) in zip(COLOURS, self.series.items()):
            if points:
                xs, ys = zip(*points)
                plt.plot(list(xs), list(ys), label=name, marker="braille", color=colour)
        epochs = sorted({x for points in self.series.values() for x, _ in points})
        if 0 < len(epochs) <= 12:
            plt.xticks(epochs, [str(int(x)) for x in epochs])  # whole epochs, not 1.25
        plt.xlabel("epoch")
        self.refresh()
