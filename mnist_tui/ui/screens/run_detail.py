"""One saved run (epochs, curves, config), or several runs' curves overlaid."""

from __future__ import annotations

import json

from rich.console import Group
from rich.markup import escape
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from mnist_tui.core.store import read_run
from mnist_tui.present import as_epoch, differing_settings, setting_text, short_labels
from mnist_tui.ui.widgets.charts import MetricChart
from mnist_tui.ui.widgets.epoch_table import EpochTable
from mnist_tui.ui.widgets.footer import KeyFooter


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
        yield KeyFooter()

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
            # The legend's short label, the results, then only the settings that differ.
            differ = differing_settings(self.records)
            table.add_columns("label", "run", "epochs", "final acc", "best acc", "status", *differ)
            labels = short_labels(self.records)
            for i, (r, label) in enumerate(zip(self.records, labels)):
                final = "-" if r.final_test_acc is None else f"{r.final_test_acc:.2f}%"
                best = "-" if r.best_test_acc is None else f"{r.best_test_acc:.2f}%"
                settings = [Text(setting_text(v[i])) for v in differ.values()]
                table.add_row(Text(label), Text(r.run_id), f"{r.epochs_done}/{r.epochs_total}", final, best, Text(r.status), *settings)
                acc.series[label] = [(m["epoch"], m["test_acc"]) for m in r.metrics]
                loss.series[label] = [(m["epoch"], m["test_loss"]) for m in r.metrics]
        else:
            r = self.records[0]
            self.query_one("#detail-title", Static).update(
                f"[b]{escape(r.run_id)}[/b] · {escape(r.model)} · {r.status} · {r.epochs_done}/{r.epochs_total} epochs · {escape(r.device)}"
            )
            self.query_one(EpochTable).set_epochs([as_epoch(m) for m in r.metrics])
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
