"""The home screen: pick a version, adjust its recipe, train it live."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from mnist_tui.core.events import BatchProgress, EpochFinished, RunFailed, RunFinished, RunStarted
from mnist_tui.core.versions import VERSIONS
from mnist_tui.ui.widgets.charts import MetricChart
from mnist_tui.ui.widgets.epoch_table import EpochTable
from mnist_tui.ui.widgets.recipe_form import RecipeForm


def _engine():
    """The training engine, imported when first needed: torch loads then, not at startup."""
    from mnist_tui.core import engine

    return engine


def version_label(name: str) -> str:
    v = VERSIONS[name]
    acc = v.measured_mean if v.measured_mean is not None else v.seed_accuracy
    return f"{name:<3}{v.params:>8,}  {'-' if acc is None else f'{acc:.2f}%'}"


class TrainScreen(Screen):
    BINDINGS = [
        ("ctrl+s", "start", "Start"),
        ("ctrl+t", "stop", "Stop"),
        ("ctrl+f", "toggle_recipe", "Recipe"),
    ]

    @dataclass
    class EngineEvent(Message):
        """One event from the training worker, delivered on the UI thread."""

        event: object

        def can_replace(self, message: Message) -> bool:
            # Progress arrives faster than anyone reads it: keep only the newest.
            return isinstance(message, TrainScreen.EngineEvent) and isinstance(self.event, BatchProgress) and isinstance(message.event, BatchProgress)

    def __init__(self):
        super().__init__()
        self.stop_event = threading.Event()
        self.worker: Worker | None = None
        self.run_dir = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="train-body"):
            with VerticalScroll(id="recipe"):
                yield Label("Version", classes="section")
                yield OptionList(*[Option(version_label(n), id=n) for n in VERSIONS], id="versions")
                yield Static("", id="version-title")
                yield RecipeForm(id="form")
                with Horizontal(id="buttons"):
                    yield Button("Start", variant="success", id="start")
                    yield Button("Stop", variant="error", id="stop", disabled=True)
            with Vertical(id="dashboard"):
                yield Static("Pick a version and press Start (ctrl+s).", id="device-line")
                with Vertical(id="progress-row"):
                    yield ProgressBar(total=1, id="epoch-progress", show_eta=False)
                    yield Static("", id="speed")
                yield EpochTable(id="epochs")
                with Horizontal(id="charts"):
                    yield MetricChart("loss", id="loss-chart")
                    yield MetricChart("accuracy %", id="acc-chart")
                    yield MetricChart("learning rate", id="lr-chart")
        yield Footer()

    def on_mount(self) -> None:
        versions = self.query_one("#versions", OptionList)
        versions.highlighted = list(VERSIONS).index("v2")
        self.query_one(RecipeForm).load("v2")
        self._show_version("v2")

    def on_unmount(self) -> None:
        # However the app ends, a training thread must not outlive it: stop it cleanly.
        self.stop_event.set()

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def _show_version(self, name: str) -> None:
        v = VERSIONS[name]
        facts = []
        if v.measured:
            facts.append(f"measured {v.measured_mean:.2f}% (mean of {len(v.measured)} seeds)")
        if v.seed_accuracy is not None:
            facts.append(f"seed reported {v.seed_accuracy:.2f}%")
        self.query_one("#version-title", Static).update(f"[b]{v.name}[/b]: {v.title}" + "".join(f" · {f}" for f in facts))

    @on(OptionList.OptionHighlighted, "#versions")
    def version_picked(self, event: OptionList.OptionHighlighted) -> None:
        form = self.query_one(RecipeForm)
        form.load(event.option.id, form.config)
        self._show_version(event.option.id)

    @on(RecipeForm.Changed)
    def recipe_changed(self, event: RecipeForm.Changed) -> None:
        self.query_one("#start", Button).disabled = self.running or event.form.config is None

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        config = self.query_one(RecipeForm).config
        if self.running or config is None:
            if config is None:
                self.notify("Fix the recipe first: " + "; ".join(self.query_one(RecipeForm).problems.values()), severity="error")
            return
        runs_dir = getattr(self.app, "runs_dir", None)
        data_dir = getattr(self.app, "data_dir", None)
        config = config.replace(runs_dir=str(runs_dir) if runs_dir else None, data_dir=data_dir)
        self._launch(f"Loading MNIST and building {config.model}…", [], lambda stop: _engine().train(config, stop))

    def resume_run(self, record) -> None:
        """Continue a stopped or interrupted run, its finished epochs shown first."""
        if self.running:
            self.notify("A run is already training here; stop it first.", severity="warning")
            return
        data_dir = getattr(self.app, "data_dir", None)
        self._launch(f"Resuming {record.run_id}…", record.metrics, lambda stop: _engine().resume(record.path, stop, data_dir))

    def _launch(self, message: str, past_epochs: list[dict], events) -> None:
        self.stop_event = threading.Event()
        self._reset_dashboard()
        for epoch in past_epochs:
            self._show_epoch(epoch)
        self.query_one("#device-line", Static).update(message)
        # On a narrow terminal the dashboard takes the whole width from now on (ctrl+f shows
        # the recipe again).
        self.add_class("-has-run")
        self.remove_class("-recipe-toggled")
        self.query_one("#start", Button).disabled = True
        self.query_one("#stop", Button).disabled = False
        self.worker = self.train_in_background(events)

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        if self.running:
            self.stop_event.set()
            self.query_one("#device-line", Static).update("Stopping after this batch…")

    def action_toggle_recipe(self) -> None:
        self.toggle_class("-recipe-toggled")

    def _reset_dashboard(self) -> None:
        self.query_one(EpochTable).set_epochs([])
        for chart in self.query(MetricChart):
            chart.clear()
        self.query_one("#epoch-progress", ProgressBar).update(total=1, progress=0)
        self.query_one("#speed", Static).update("")

    @work(thread=True, exclusive=True, exit_on_error=False, group="train")
    def train_in_background(self, events) -> None:
        """Iterate the engine (`events(stop)`) in a thread, posting each event to the UI."""
        for event in events(self.stop_event):
            self.post_message(self.EngineEvent(event))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self.worker:
            return
        if event.state == WorkerState.ERROR:
            self.notify(f"Training crashed: {event.worker.error}", severity="error", timeout=10)
        if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self.query_one("#stop", Button).disabled = True
            self.query_one("#start", Button).disabled = self.query_one(RecipeForm).config is None

    def _show_epoch(self, e: dict) -> None:
        self.query_one(EpochTable).add_epoch(e)
        self.query_one("#loss-chart", MetricChart).add_point(e["epoch"], {"train": e["train_loss"], "test": e["test_loss"]})
        self.query_one("#acc-chart", MetricChart).add_point(e["epoch"], {"train": e["train_acc"], "test": e["test_acc"]})
        self.query_one("#lr-chart", MetricChart).add_point(e["epoch"], {"lr": e["lr"]})

    def on_train_screen_engine_event(self, message: EngineEvent) -> None:
        ev = message.event
        if isinstance(ev, RunStarted):
            self.run_dir = ev.run_dir
            self.query_one("#device-line", Static).update(
                f"[b]{ev.config.model}[/b] · {ev.params:,} params · {ev.device_name} · {ev.precision}{' · CUDA graph' if ev.cuda_graph else ''} · "
                f"{ev.train_size:,} train / {ev.test_size:,} {'held-out' if ev.evaluated_on == 'holdout' else 'test'} images · {ev.run_id}"
            )
            self.query_one("#epoch-progress", ProgressBar).update(total=ev.batches_per_epoch, progress=0)
            if ev.warning:
                self.notify(ev.warning, severity="warning", timeout=10)
        elif isinstance(ev, BatchProgress):
            self.query_one("#epoch-progress", ProgressBar).update(total=ev.batches, progress=ev.batch)
            # Repaint only: a layout pass over this screen costs ~40 ms of the UI thread, taken
            # from the training threads on a small machine, and the line keeps its size.
            self.query_one("#speed", Static).update(
                f"epoch {ev.epoch}/{ev.epochs} · loss {ev.loss:.4f} · {ev.accuracy:.1f}% · "
                f"{ev.images_per_s:,.0f} img/s · {ev.seconds_left:.0f}s left",
                layout=False,
            )
        elif isinstance(ev, EpochFinished):
            self._show_epoch(ev.to_dict())
            if ev.memory_mb is not None:
                self.query_one("#speed", Static).update(f"{ev.images_per_s:,.0f} img/s · {ev.memory_mb:,.0f} MiB in use")
        elif isinstance(ev, RunFinished):
            acc = f", final test accuracy {ev.final_test_acc:.2f}%" if ev.final_test_acc is not None else ""
            self.notify(f"Run {ev.status} after {ev.epochs_done} epochs{acc}.", title="Training")
            self.query_one("#speed", Static).update(f"{ev.status}: {ev.epochs_done} epochs{acc} · saved in {ev.run_dir.name}")
        elif isinstance(ev, RunFailed):
            self.notify(ev.reason, title=f"Training {ev.status}", severity="error", timeout=10)
            self.query_one("#speed", Static).update(f"[red]{ev.status}: {ev.reason}[/]")
