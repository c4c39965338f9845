"""One saved run (epochs, curves, config), or several runs' curves overlaid."""

from __future__ import annotations

import json

from rich.console import Group
from rich.syntax import Syntax
from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from mnist_tui.core.store import read_run
from mnist_tui.ui.widgets.charts import MetricChart
from mnist_tui.ui.widgets.epoch_table import EpochTable


class RunDetailScreen(Screen):
    BINDINGS = [("escape", "app.pop_screen", "Back"), ("p", "predictions", "Predictions"), ("r", "reload", "Reload")]

    def __init__(self, records: list):
        super().__init__()
        self.records = records

    @property
    def comparing(self) -> bool:
        return len(self.records) > 1

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static("", id="detail-title")
            if self.comparing:
                yield DataTable(id="compare-runs", cursor_type="row")
            else:
                yield EpochTable(id="detail-epochs")
            with Horizontal(id="detail-charts"):
                yield MetricChart("test accuracy %" if self.comparing else "accuracy %", id="detail-acc")
                yield MetricChart("test loss" if self.comparing else "loss", id="detail-loss")
            if not self.comparing:
                yield Static("", id="detail-config")
        yield Footer()

    def on_mount(self) -> None:
        self.show()

    def action_reload(self) -> None:
        self.records = [read_run(r.path) for r in self.records]
        self.show()

    def show(self) -> None:
        acc, loss = self.query_one("#detail-acc", MetricChart), self.query_one("#detail-loss", MetricChart)
        acc.series, loss.series = {}, {}
        if self.comparing:
            self.query_one("#detail-title", Static).update(f"Comparing {len(self.records)} runs")
            table = self.query_one("#compare-runs", DataTable)
            table.clear(columns=True)
            table.add_columns("run", "model", "epochs", "final acc", "best acc", "status")
            for r in self.records:
                final = "-" if r.final_test_acc is None else f"{r.final_test_acc:.2f}%"
                best = "-" if r.best_test_acc is None else f"{r.best_test_acc:.2f}%"
                table.add_row(r.run_id, r.model, f"{r.epochs_done}/{r.epochs_total}", final, best, r.status)
                acc.series[r.run_id] = [(m["epoch"], m["test_acc"]) for m in r.metrics]
                loss.series[r.run_id] = [(m["epoch"], m["test_loss"]) for m in r.metrics]
        else:
            r = self.records[0]
            self.query_one("#detail-title", Static).update(
                f"[b]{escape(r.run_id)}[/b] · {escape(r.model)} · {r.status} · {r.epochs_done}/{r.epochs_total} epochs · {escape(r.device)}"
            )
            self.query_one(EpochTable).set_epochs(r.metrics)
            for name in ("train", "test"):
                acc.series[name] = [(m["epoch"], m[f"{name}_acc"]) for m in r.metrics]
                loss.series[name] = [(m["epoch"], m[f"{name}_loss"]) for m in r.metrics]
            # A renderable, not markup: JSON brackets show as they are, indentation is kept.
            config_text = Syntax(json.dumps(r.config, indent=2), "json", theme="ansi_dark", background_color="default")
            self.query_one("#detail-config", Static).update(Group(Text("config.json", style="bold"), config_text))
        acc.replot()
        loss.replot()

    def action_predictions(self) -> None:
        if self.comparing:
            return
        r = self.records[0]
        if not (r.path / "checkpoint.pt").exists():
            self.notify("This run has no checkpoint yet.", severity="warning")
            return
        from mnist_tui.ui.screens.predictions import PredictionsScreen

        self.app.push_screen(PredictionsScreen(r.path))
