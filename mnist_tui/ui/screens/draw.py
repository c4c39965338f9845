"""Draw a digit and watch a run's model read it: the pad, the 28x28 input the model receives
(prepared as MNIST's digits were), and the probability of every class, updated after each
stroke; a key asks every version's latest run at once."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Header, Select, Static

from mnist_tui.core.store import list_runs
from mnist_tui.core.versions import VERSIONS
from mnist_tui.ui.screens.base import AppScreen
from mnist_tui.ui.widgets.digit_grid import digit_lines
from mnist_tui.ui.widgets.draw_pad import DrawPad, half_block_lines
from mnist_tui.ui.widgets.footer import KeyFooter

BAR = 20  # characters of a full probability bar, where there is room


def bars(probs: list[float], width: int = BAR + 10) -> Text:
    """One line per class: the digit, a bar, the probability; the most probable in bold. The
    bars fit `width` columns."""
    bar = max(4, min(BAR, width - 10))
    best = max(range(len(probs)), key=probs.__getitem__) if probs else -1
    out = Text()
    for digit, p in enumerate(probs):
        style = "bold green" if digit == best else ""
        out.append(f"{digit} ", style=style)
        out.append("█" * round(p * bar), style="green" if digit == best else "blue")
        out.append(" " * (bar - round(p * bar)))
        out.append(f" {100 * p:5.1f}%\n", style=style)
    return out


def runs_with_checkpoints(runs_dir: Path) -> list:
    """Runs that can predict (a run still training with its last finished epoch), newest first."""
    records = [r for r in list_runs(runs_dir) if (r.path / "checkpoint.pt").exists() and r.status != "damaged"]
    return sorted(records, key=lambda r: r.created, reverse=True)


class DrawScreen(AppScreen):
    BINDINGS = [
        ("escape", "app.pop_screen", "Back"),
        ("v", "versions", "All versions"),
        ("w", "why", "Why this answer"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.records: list = []
        self.run_dir: Path | None = None
        self.probs: list[float] = []
        self.seen = None  # the 28x28 uint8 input the model received last
        self.latency = 0.0  # seconds from the stroke's end to the bars, the last time

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="draw-scroll"):
            yield from self._parts()
        yield KeyFooter()

    def _parts(self) -> ComposeResult:
        yield Static("Draw a digit: drag the mouse, or arrows + space (e erase, c clear).", id="draw-help")
        yield Select[str]([], prompt="Run that predicts", id="draw-run", allow_blank=True)
        with Horizontal(id="draw-body"):
            with Vertical(classes="draw-column"):
                yield Static("Your drawing", classes="draw-label")
                yield DrawPad(id="pad")
            with Vertical(classes="draw-column"):
                yield Static("Model input", classes="draw-label")
                yield Static("", id="seen")
            with Vertical(id="draw-result"):
                yield Static("Prediction", classes="draw-label")
                yield Static("", id="bars")
        yield Static("", id="draw-versions")

    def on_mount(self) -> None:
        self.query_one("#seen", Static).update(Text("\n").join(half_block_lines([[0.0] * 28 for _ in range(28)])))
        self.set_class(self.app.size.width < 100, "-narrow")
        self.query_one(DrawPad).focus()
        self.find_runs()

    @work(thread=True, exclusive=True, exit_on_error=False, group="draw-runs")
    def find_runs(self) -> None:
        """The runs to predict with, read off the UI thread (a long history takes a while)."""
        records = runs_with_checkpoints(self.tui.runs_dir)
        self.app.call_from_thread(self._runs_found, records)

    def _runs_found(self, records: list) -> None:
        self.records = records
        select = self.query_one("#draw-run", Select)
        select.set_options([(Text(f"{r.run_id} · {r.model} · {r.final_test_acc or 0:.2f}%"), str(r.path)) for r in records])
        if records:
            select.value = str(records[0].path)
        else:
            self.query_one("#bars", Static).update(Text("No saved run to predict with yet: train one first (F2).", style="yellow"))

    @on(Select.Changed, "#draw-run")
    def run_chosen(self, event: Select.Changed) -> None:
        self.run_dir = Path(str(event.value)) if event.value != Select.BLANK else None
        self.predict()

    @on(DrawPad.Drawn)
    def drawn(self) -> None:
        self.query_one("#draw-versions", Static).update("")  # about the drawing before this stroke
        self.predict()

    def predict(self) -> None:
        if self.run_dir is not None:
            self._predict(self.run_dir, [row[:] for row in self.query_one(DrawPad).ink], time.perf_counter())

    @work(thread=True, exclusive=True, exit_on_error=False, group="draw")
    def _predict(self, run_dir: Path, ink: list[list[float]], asked: float) -> None:
        import torch

        from mnist_tui.core.insight import network
        from mnist_tui.core.preprocess import to_mnist

        seen = to_mnist(torch.tensor(ink))
        net = network(run_dir)
        probs = net.probabilities(seen[None])[0].tolist() if seen.any() else []
        self.app.call_from_thread(self.show, net, seen, probs, asked)

    def show(self, net, seen, probs: list[float], asked: float) -> None:
        self.seen, self.probs = seen, probs
        self.latency = time.perf_counter() - asked
        self.query_one("#seen", Static).update(self.seen_text(seen))
        title = Text(f"{net.model} · epoch {net.epoch} · {net.precision}\n", style="dim")
        room = (self.query_one("#bars", Static).size.width or BAR + 12) - 2  # a scrollbar may come
        self.query_one("#bars", Static).update(title + (bars(probs, room) if probs else Text("Draw a digit on the pad.")))

    def seen_text(self, seen) -> Text:
        """The model's input, whole (28x14 cells), or halved where the terminal is narrow."""
        if self.has_class("-narrow"):
            return Text("\n").join(digit_lines(seen))
        return Text("\n").join(half_block_lines((seen.float() / 255).tolist()))

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group in ("draw", "versions") and event.worker.error is not None:
            self.query_one("#bars", Static).update(Text(f"Cannot predict with this run: {event.worker.error}", style="red"))

    def action_versions(self) -> None:
        """Every version's latest run reads the drawing, side by side."""
        latest = {}
        for r in self.records:
            latest.setdefault(r.model, r)
        self._versions([latest[v] for v in VERSIONS if v in latest], [row[:] for row in self.query_one(DrawPad).ink])

    @work(thread=True, exclusive=True, exit_on_error=False, group="versions")
    def _versions(self, records: list, ink: list[list[float]]) -> None:
        import torch

        from mnist_tui.core.insight import network
        from mnist_tui.core.preprocess import to_mnist

        seen = to_mnist(torch.tensor(ink))
        rows = []
        for r in records:
            probs = network(r.path).probabilities(seen[None])[0] if seen.any() else None
            rows.append((r, probs))
        self.app.call_from_thread(self.show_versions, rows)

    def show_versions(self, rows: list) -> None:
        out = Text("Every version's latest run:\n", style="bold")
        if not rows:
            out.append("no saved runs yet", style="yellow")
        for r, probs in rows:
            if probs is None:
                out.append(f"  {r.model}  (draw a digit first)\n")
                continue
            top = probs.topk(3)
            guesses = "  ".join(f"{c} {100 * p:4.1f}%" for p, c in zip(top.values.tolist(), top.indices.tolist()))
            out.append(f"  {r.model}  ", style="bold")
            out.append(f"{int(top.indices[0])}", style="bold green")
            out.append(f"   {guesses}   ({r.run_id})\n")
        self.query_one("#draw-versions", Static).update(out)

    def action_why(self) -> None:
        if self.run_dir is None or self.seen is None or not self.seen.any():
            self.notify("Draw a digit first.", severity="warning")
            return
        from mnist_tui.ui.screens.why import WhyScreen

        self.app.push_screen(WhyScreen(self.run_dir, self.seen, "your drawing"))
