"""One saved run (epochs, curves, config), or several runs' curves overlaid."""

from __future__ import annotations

import json

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from mnist_tui.core.history import row_of
from mnist_tui.core.store import read_points, read_run
from mnist_tui.core.store.provenance import stamp_of
from mnist_tui.present.compare import differing_settings, setting_text, short_labels
from mnist_tui.present.kept import notes_lines, stamp_lines
from mnist_tui.present.runs import run_cell
from mnist_tui.present.text import printable
from mnist_tui.present.training import epoch_cost
from mnist_tui.ui.screens.export import export_run
from mnist_tui.ui.screens.notes import edit_notes
from mnist_tui.ui.widgets.charts import COLOURS, RICH_COLOURS, MetricChart
from mnist_tui.ui.widgets.epoch_table import EpochTable
from mnist_tui.ui.widgets.footer import KeyFooter


class RunDetailScreen(Screen):
    BINDINGS = [
        ("escape", "app.pop_screen", "Back"),
        ("p", "predictions", "Predictions"),
        ("r", "reload", "Reload"),
        ("n", "note", "Note"),
        ("t", "tags", "Tags"),
        ("x", "export_model", "Export"),
        ("S", "sweep", "Sweep"),
    ]

    def __init__(self, records: list):
        super().__init__()
        self.records = records
        self.curves: list = [([], "")] * len(records)  # each run's per-batch points and what was wrong with them

    @property
    def comparing(self) -> bool:
        return len(self.records) > 1

    @property
    def help_name(self) -> str:
        return "Compare" if self.comparing else "Run detail"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Predictions, the note, the tags and the export are of one run: not offered (footer, `?`) while comparing."""
        if action == "sweep":  # a sweep's trial only
            return not self.comparing and self.records[0].study is not None
        return not (action in ("predictions", "note", "tags", "export_model") and self.comparing)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static("", id="detail-title")
            if self.comparing:
                yield DataTable(id="compare-runs", cursor_type="row")
                yield Static("", id="compare-legend")
            else:
                yield EpochTable(id="detail-epochs")
            with Horizontal(id="detail-charts"):
                legend = not self.comparing  # comparing, one legend serves the three charts
                yield MetricChart("training loss" if self.comparing else "loss", id="detail-loss", legend=legend)
                yield MetricChart("test accuracy %" if self.comparing else "accuracy %", id="detail-acc", legend=legend)
                yield MetricChart("learning rate", id="detail-lr", legend=legend)
            if not self.comparing:
                yield Static("", id="detail-cost")
                yield Static("", id="detail-kept")
                yield Static("", id="detail-config")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#detail-title", Static).update(Text(f"Reading {self.records[0].run_id}…" if not self.comparing else "Reading the runs…"))
        self.read([r.path for r in self.records], again=False)

    def action_reload(self) -> None:
        self.read([r.path for r in self.records], again=True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail-read")
    def read(self, paths: list, again: bool) -> None:
        """The runs' per-batch curves (and, `again`, their records) read off the UI thread, then shown."""
        records = [read_run(path) for path in paths] if again else self.records
        curves = [read_points(r.path) for r in records]
        self.app.call_from_thread(self._read, records, [(points, problem) for points, _offset, problem in curves])

    def _read(self, records: list, curves: list) -> None:
        self.records, self.curves = records, curves
        self.show()

    def show(self) -> None:
        charts = [self.query_one(f"#detail-{name}", MetricChart) for name in ("loss", "acc", "lr")]
        for chart in charts:
            chart.lines = {}
        if self.comparing:
            self._show_comparison(*charts)
        else:
            self._show_run(*charts)
        for chart in charts:
            chart.replot()

    def _show_comparison(self, loss: MetricChart, acc: MetricChart, lr: MetricChart) -> None:
        """Every run a colour of its own (its place among the marked runs) and a short label;
        the table lists the results and only the settings that differ."""
        self.query_one("#detail-title", Static).update(f"Comparing {len(self.records)} runs")
        table = self.query_one("#compare-runs", DataTable)
        table.clear(columns=True)
        differ = differing_settings(self.records)
        # What tells the runs apart first, then how they did, the run ids last (the widest).
        table.add_columns("label", *differ, "final acc", "best acc @epoch", "min loss @epoch", "epochs", "s/epoch", "status", "run")
        labels = short_labels(self.records)
        legend = []
        for i, (r, label, (points, _problem)) in enumerate(zip(self.records, labels, self.curves)):
            row = row_of(r)
            colour = COLOURS[i % len(COLOURS)]
            style = RICH_COLOURS.get(colour, colour)
            legend.append(Text.assemble(("━━ ", style), (label, style)))
            settings = [Text(setting_text(v[i])) for v in differ.values()]
            cells = [run_cell(row, key) for key in ("final_acc", "best_acc", "min_loss")]
            table.add_row(
                Text(label, style=style), *settings, *cells, f"{r.epochs_done}/{r.epochs_total}", run_cell(row, "epoch_s"), Text(r.status), Text(r.run_id)
            )
            if points:
                loss.set_series(label, [(p.x, p.loss) for p in points], colour, dense=True)
            else:  # a run made before the per-batch curve was recorded
                loss.set_series(label, [(m.epoch, m.train_loss) for m in r.metrics], colour)
            acc.set_series(label, [(m.epoch, m.test_acc) for m in r.metrics], colour)
            lr.set_series(label, [(m.epoch, m.lr) for m in r.metrics], colour)
        # One legend for the three charts (a run has the same colour in each), above them.
        self.query_one("#compare-legend", Static).update(Text("   ").join(legend))

    def _show_run(self, loss: MetricChart, acc: MetricChart, lr: MetricChart) -> None:
        r = self.records[0]
        # Text, not markup: names read from files may hold brackets.
        # Control characters and escapes taken out: they would reach the terminal as they are.
        title = Text.assemble((printable(r.run_id), "bold"), printable(f" · {r.model} · {r.status} · {r.epochs_done}/{r.epochs_total} epochs · {r.device}"))
        if r.reason and r.status != "finished":  # why it failed, diverged or is damaged
            title.append(printable(f"\n{r.status}: {r.reason}"), style="red" if r.status in ("failed", "diverged", "damaged") else "")
        self.query_one("#detail-title", Static).update(title)
        self.query_one(EpochTable).set_epochs(r.metrics)
        points, problem = self.curves[0]
        if points:
            loss.set_series("train", [(p.x, p.loss) for p in points], dense=True)
            acc.set_series("train", [(p.x, p.acc) for p in points], dense=True)
        else:  # a run made before the per-batch curve was recorded: its epochs
            loss.set_series("train", [(m.epoch, m.train_loss) for m in r.metrics])
            acc.set_series("train", [(m.epoch, m.train_acc) for m in r.metrics])
        loss.set_series("test", [(m.epoch, m.test_loss) for m in r.metrics])
        acc.set_series("test", [(m.epoch, m.test_acc) for m in r.metrics])
        lr.set_series("lr", [(m.epoch, m.lr) for m in r.metrics])
        cost = [epoch_cost(m) for m in r.metrics[-1:]]
        if r.metrics:
            cost.insert(0, f"mean {r.epoch_seconds:.1f} s/epoch, {r.images_per_s:,.0f} img/s")
        if problem and r.metrics:
            cost.append(f"per-batch curve: {problem}")
        self.query_one("#detail-cost", Static).update(Text("cost: " + " · ".join(cost) if cost else ""))
        self.query_one("#detail-kept", Static).update(Text("\n".join(notes_lines(r.notes) + stamp_lines(*stamp_of(r.config)))))
        # A renderable, not markup: JSON brackets show as they are, indentation is kept.
        config_text = Syntax(json.dumps(r.config, indent=2), "json", theme="ansi_dark", background_color="default")
        self.query_one("#detail-config", Static).update(Group(Text("config.json", style="bold"), config_text))

    def action_note(self) -> None:
        if not self.comparing:
            edit_notes(self, self.records[0], "note", self.action_reload)

    def action_tags(self) -> None:
        if not self.comparing:
            edit_notes(self, self.records[0], "tags", self.action_reload)

    def action_export_model(self) -> None:
        if not self.comparing:
            export_run(self, self.records[0])

    def action_sweep(self) -> None:
        study = None if self.comparing else self.records[0].study
        from mnist_tui.ui.app import MnistTuiApp

        if study is not None and isinstance(self.app, MnistTuiApp):
            self.app.action_sweep(study)

    def action_predictions(self) -> None:
        if self.comparing:
            return
        r = self.records[0]
        if not (r.path / "checkpoint.pt").exists():
            self.notify("This run has no checkpoint yet.", severity="warning")
            return
        from mnist_tui.ui.screens.predictions import PredictionsScreen

        self.app.push_screen(PredictionsScreen(r.path))
