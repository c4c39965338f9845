"""Line charts of per-epoch series; each chart keeps its own data and replots it."""

from __future__ import annotations

from textual_plotext import PlotextPlot

# Distinct plotext colours for up to eight overlaid series.
COLOURS = ("cyan", "orange", "green", "magenta", "red", "blue", "yellow", "white")


class MetricChart(PlotextPlot):
    """Named series over epochs, e.g. train and test loss."""

    def __init__(self, title: str, **kwargs: str) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # id=..., classes=...
        self.title = title
        self.series: dict[str, list[tuple[float, float]]] = {}

    @property
    def point_counts(self) -> dict[str, int]:
        return {name: len(points) for name, points in self.series.items()}

    def clear(self) -> None:
        self.series = {}
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
        for colour, (name, points) in zip(COLOURS, self.series.items()):
            if points:
                xs, ys = zip(*points)
                plt.plot(list(xs), list(ys), label=name, marker="braille", color=colour)
        epochs = sorted({x for points in self.series.values() for x, _ in points})
        if 0 < len(epochs) <= 12:
            plt.xticks(epochs, [str(int(x)) for x in epochs])  # whole epochs, not 1.25
        plt.xlabel("epoch")
        self.refresh()
