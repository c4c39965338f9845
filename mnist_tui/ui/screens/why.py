"""Why a model gave its answer for one digit: where the answer is sensitive to the pixels
(input gradients as a heat map over the digit), the first convolution's filters, and the
maps they make of this digit."""

from __future__ import annotations

from pathlib import Path

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Header, Static

from mnist_tui.ui.screens.base import AppScreen
from mnist_tui.ui.widgets.footer import KeyFooter


def _blocks(rows: list[list[Color]]) -> list[Text]:
    """Rows of colours as half-block lines (two rows of colours per line)."""
    lines = []
    for r in range(0, len(rows), 2):
        line = Text()
        for c, top in enumerate(rows[r]):
            bottom = rows[r + 1][c] if r + 1 < len(rows) else Color.from_rgb(0, 0, 0)
            line.append("▀", Style(color=top, bgcolor=bottom))
        lines.append(line)
    return lines


def heat_over_digit(digit, saliency) -> list[Text]:
    """The digit in gray, with the saliency laid over it in red to yellow."""
    rows = []
    for r in range(28):
        row = []
        for c in range(28):
            g, s = int(digit[r][c]) // 3, float(saliency[r][c])
            row.append(Color.from_rgb(min(255, g + int(255 * s)), min(255, g + int(200 * max(0.0, s - 0.5) * 2)), g))
        rows.append(row)
    return _blocks(rows)


def signed_map(values, scale: int = 1) -> list[Text]:
    """A map of signed values: red positive, blue negative, black zero (scaled up by `scale`)."""
    top = max(float(abs(values).max()), 1e-12)
    rows = []
    for r in range(values.shape[0] * scale):
        row = []
        for c in range(values.shape[1] * scale):
            v = float(values[r // scale][c // scale]) / top
            row.append(Color.from_rgb(int(255 * max(v, 0)), 0, int(255 * max(-v, 0))))
        rows.append(row)
    return _blocks(rows)


def side_by_side(blocks: list[list[Text]], gap: int = 2, per_row: int = 8) -> Text:
    out = Text()
    for start in range(0, len(blocks), per_row):
        group = blocks[start : start + per_row]
        for i in range(max(len(b) for b in group)):
            for b in group:
                out.append_text(b[i] if i < len(b) else Text(" " * len(b[0].plain)))
                out.append(" " * gap)
            out.append("\n")
        out.append("\n")
    return out


class WhyScreen(AppScreen):
    BINDINGS = [("escape", "app.pop_screen", "Back")]

    def __init__(self, run_dir: Path, digit, what: str, weights: tuple[int, dict] | None = None) -> None:
        """weights: (epoch, state dict) of the checkpoint the opening screen showed, so that a
        run that saved a later epoch meanwhile is explained as that screen read it."""
        super().__init__()
        self.run_dir, self.digit, self.what, self.weights = Path(run_dir), digit, what, weights
        self.explanation = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="why-body"):
            yield Static(Text(f"Why {self.run_dir.name} reads {self.what} as it does…"), id="why-title")
            yield Static("", id="why-saliency")
            yield Static("", id="why-filters")
            yield Static("", id="why-maps")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.explain()

    @work(thread=True, exclusive=True, exit_on_error=False, group="why")
    def explain(self) -> None:
        from mnist_tui.core.insight import explain, network

        net = network(self.run_dir, shown=self.weights)
        self.app.call_from_thread(self.show, net, explain(net, self.digit))

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group == "why" and event.worker.error is not None:
            self.query_one("#why-title", Static).update(Text(f"Cannot explain: {event.worker.error}", style="red"))

    def show(self, net, e) -> None:
        self.explanation = e
        top = e.probs.topk(3)
        guesses = ", ".join(f"{c} {100 * p:.1f}%" for p, c in zip(top.values.tolist(), top.indices.tolist()))
        self.query_one("#why-title", Static).update(
            Text.assemble(
                (f"{net.model} (run {net.run_id}, epoch {net.epoch}) reads {self.what} as ", ""),
                (str(e.predicted), "bold green"),
                f": {guesses} (in fp32, for the gradients)",
            )
        )
        digit = self.digit.tolist()
        plain = _blocks([[Color.from_rgb(v, v, v) for v in row] for row in digit])
        saliency = Text("Input gradients: where changing a pixel would change the answer most (red to yellow)\n", style="bold")
        self.query_one("#why-saliency", Static).update(saliency + side_by_side([plain, heat_over_digit(digit, e.saliency.tolist())]))
        k = e.filters.shape[-1]
        scale = max(1, 8 // k)
        filters = Text(f"The first convolution's {e.filters.shape[0]} filters ({k}x{k}; red adds, blue takes away)\n", style="bold")
        self.query_one("#why-filters", Static).update(filters + side_by_side([signed_map(f, scale) for f in e.filters], per_row=12))
        maps = Text("What each filter makes of this digit\n", style="bold")
        self.query_one("#why-maps", Static).update(maps + side_by_side([signed_map(a) for a in e.activations], per_row=4))
