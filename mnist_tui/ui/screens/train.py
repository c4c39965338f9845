"""The home screen: pick a version, adjust its recipe, train it, and follow it live.

Training runs in a trainer process of its own (see mnist_tui/trainer.py); this screen is a
client that follows the run folder, so a run outlives the app, and the app attaches to a
run that is already training when it starts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Header, Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from mnist_tui.core.events import (
    BatchProgress,
    EpochFinished,
    Event,
    RunFailed,
    RunFinished,
    RunStarted,
)
from mnist_tui.core.hardware import auto_precision
from mnist_tui.core.store import list_runs, request_stop
from mnist_tui.core.store.follow import Follower
from mnist_tui.core.store.records import BATCHES
from mnist_tui.core.versions import PRESETS, VERSIONS
from mnist_tui.present.text import command_name
from mnist_tui.present.times import clock, duration, time_left
from mnist_tui.present.training import epoch_cost, started_line, target_words, usage_line
from mnist_tui.trainer import Launch
from mnist_tui.ui.screens.base import AppScreen
from mnist_tui.ui.watcher import RunNews, RunsChanged
from mnist_tui.ui.widgets.charts import MetricChart
from mnist_tui.ui.widgets.epoch_table import EpochTable
from mnist_tui.ui.widgets.footer import KeyFooter
from mnist_tui.ui.widgets.recipe_form import RecipeForm

CHARTS_S = 3.0  # how often the per-batch curves are redrawn while a run trains


def version_label(name: str) -> str:
    """One line of the picker: name, parameters, measured accuracy, expected time here."""
    preset = PRESETS.get(name)
    v = VERSIONS[preset.model if preset else name]
    pick = preset or v
    if preset is not None:
        acc: float | None = sum(preset.measured) / len(preset.measured) if preset.measured else None
    else:
        acc = v.measured_mean if v.measured_mean is not None else v.seed_accuracy
    params = f"{v.params / 1000:.0f}k" if v.params >= 100_000 else f"{v.params / 1000:.1f}k"
    took = pick.expected_seconds(pick.recipe.epochs, auto_precision("auto"))
    return f"{name:<5} {params:>5} {'-' if acc is None else f'{acc:.2f}%':>6} {'?' if took is None else duration(took, 'compact'):>4}"


PICKS = [*PRESETS, *VERSIONS]  # the picker's entries: the quick first run, then each version


class VersionList(OptionList):
    """The version picker. Page keys move by the lines laid out; while the list has not been
    laid out at its current size (the recipe panel hidden on a narrow terminal, a resize
    under way) Textual's OptionList raised KeyError and ended the app (found by the slow
    walk, seed 18): then they go to the first or last entry instead."""

    def _move_page(self, direction: Literal[-1, 1]) -> None:
        if (self.highlighted or 0) not in self._index_to_line or not self._lines:
            self.highlighted = 0 if direction < 0 else len(self._options) - 1
            return
        super()._move_page(direction)


class TrainScreen(AppScreen):
    BINDINGS = [
        ("ctrl+s", "start", "Start"),
        ("ctrl+t", "stop", "Stop"),
        ("ctrl+f", "toggle_recipe", "Recipe"),
    ]

    def __init__(self):
        super().__init__()
        self.follower: Follower | None = None
        self.launch: Launch | None = None
        self.run_dir: Path | None = None
        self._run_over = False  # the followed run's end has been shown
        self._run_line: Text | str = ""  # the followed run's line: model, size, device, id
        self._epochs_done: list[EpochFinished] = []  # the followed run's, for the time left
        self._train_size = 0
        self._per_batch = False  # the followed run records a per-batch curve
        self._charts_drawn = 0.0  # when the per-batch curves were last redrawn (monotonic)
        self.picked = PICKS[0]  # the picker's entry whose recipe the form holds

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="train-body"):
            with VerticalScroll(id="recipe"):
                yield Label("Version", classes="section")
                yield VersionList(*[Option(version_label(n), id=n) for n in PICKS], id="versions")
                yield Static("", id="version-title")
                yield RecipeForm(id="form")
            with Vertical(id="dashboard"):
                yield Static("Pick a version and press Start (ctrl+s).", id="device-line")
                with Horizontal(id="progress-row"):  # Start and Stop stay in sight, recipe shown or not
                    yield Button("Start", variant="success", id="start", compact=True)
                    yield Button("Stop", variant="error", id="stop", disabled=True, compact=True)
                    yield ProgressBar(total=1, id="epoch-progress", show_eta=False)
                yield Static("", id="speed")
                yield Static("", id="usage")
                yield EpochTable(id="epochs")
                with Horizontal(id="charts"):
                    yield MetricChart("loss", id="loss-chart")
                    yield MetricChart("accuracy %", id="acc-chart")
                    yield MetricChart("learning rate", id="lr-chart")
        yield KeyFooter()

    def on_mount(self) -> None:
        versions = self.query_one("#versions", OptionList)
        versions.highlighted = 0  # the quick first run
        self._pick(PICKS[0])
        versions.focus()  # the arrow keys move through the picker from the start
        self.tui.watcher.subscribe(self)  # a run started elsewhere is followed too
        self.find_live_run()

    def on_runs_changed(self, _message: RunsChanged) -> None:
        """While nothing is followed, look for a live run when the runs folder changes."""
        if not self.running:
            self.find_live_run()

    @work(thread=True, exclusive=True, exit_on_error=False, group="find-live")
    def find_live_run(self) -> None:
        """Attach to the newest run that is training in this runs folder, if any."""
        live = [r for r in list_runs(self.tui.runs_dir) if r.status == "running" and not r.host_is_remote]
        if live:
            self.app.call_from_thread(self._attach_if_idle, live[-1].path)

    def _attach_if_idle(self, run_dir: Path) -> None:
        if not self.running:
            self.attach(run_dir, f"Following {run_dir.name}, which is training…")

    @property
    def running(self) -> bool:
        """Whether this screen follows a run that has not ended yet."""
        return self.follower is not None and not self._run_over

    def _pick(self, name: str) -> None:
        """Load a preset's or a version's recipe into the form (keeping seed, device, ...)."""
        form = self.query_one(RecipeForm)
        preset = PRESETS.get(name)
        if preset is not None:
            form.load(preset.model, form.config, recipe=preset.recipe)
        else:
            form.load(name, form.config)
        self.picked = name
        self._show_version()

    def _show_version(self) -> None:
        name = self.picked
        preset = PRESETS.get(name)
        v = VERSIONS[preset.model if preset else name]
        facts = []
        if preset is not None:
            title = f"[b]{name}[/b]: {preset.title}"
            if preset.measured:
                facts.append(f"measured {sum(preset.measured) / len(preset.measured):.2f}% (mean of {len(preset.measured)} seeds, fp32)")
        else:
            title = f"[b]{v.name}[/b]: {v.title}"
            if v.measured:
                facts.append(f"measured {v.measured_mean:.2f}% (mean of {len(v.measured)} seeds)")
            if v.seed_accuracy is not None:
                facts.append(f"seed reported {v.seed_accuracy:.2f}%")
        config = self.query_one(RecipeForm).config
        if config is not None:
            mode = auto_precision(config.precision)
            images = min(config.limit or 60_000, 60_000 - config.holdout)
            took = (preset or v).expected_seconds(config.recipe.epochs, mode, images, config.test_limit or 10_000)
            facts.append(f"about {duration(took)} on a 2-core CPU ({mode})" if took else f"time not measured in {mode}")
        self.query_one("#version-title", Static).update(title + "".join(f" · {f}" for f in facts))

    @on(OptionList.OptionHighlighted, "#versions")
    def version_picked(self, event: OptionList.OptionHighlighted) -> None:
        self._pick(str(event.option.id))

    def select(self, name: str) -> None:
        """Pick an entry (a preset or a version) as the arrow keys would: its recipe fills the form."""
        versions = self.query_one("#versions", OptionList)
        with self.prevent(OptionList.OptionHighlighted):  # the form is filled now, not when the event comes
            versions.highlighted = versions.get_option_index(name)
        self._pick(name)

    @on(RecipeForm.Changed)
    def recipe_changed(self, event: RecipeForm.Changed) -> None:
        self.query_one("#start", Button).disabled = self.running or event.form.config is None
        self._show_version()  # the expected time follows the epochs and images

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        config = self.query_one(RecipeForm).config
        if self.running:
            self.notify(
                f"A run is training here: stop it first (ctrl+t), or quit and keep it training; `{command_name()} train --detach` starts more runs side by side.",
                severity="warning",
                timeout=8,
            )
            return
        if config is None:
            self.notify("Fix the recipe first: " + "; ".join(self.query_one(RecipeForm).problems.values()), severity="error")
            return
        config = config.replace(data_dir=self.tui.data_dir)
        try:
            self.launch = self.tui.launcher.train(config, self.tui.runs_dir)
        except OSError as exc:  # trainer.LaunchError: a read-only runs folder, a file in its place
            self.notify(f"Cannot start: {exc.strerror or exc}", severity="error", markup=False, timeout=10)
            return
        self.attach(self.launch.run_dir, f"Starting a trainer: loading MNIST and building {config.model}…")

    def resume_run(self, record) -> None:
        """Continue a stopped or interrupted run in a trainer of its own, its finished epochs
        shown first."""
        if self.running:
            self.notify("A run is already being followed here; stop it first.", severity="warning")
            return
        since = time.time_ns()
        try:
            self.launch = self.tui.launcher.resume(record.path, self.tui.data_dir)
        except OSError as exc:  # trainer.LaunchError: the run folder cannot be written
            self.notify(f"Cannot resume {record.run_id}: {exc.strerror or exc}", severity="error", markup=False, timeout=10)
            return
        self.attach(record.path, f"Resuming {record.run_id}…", since_ns=since)

    def attach(self, run_dir: Path, message: str, since_ns: int = 0) -> None:
        """Follow a run folder: its epochs so far, then its progress until it ends (the
        app's watcher reads the folder and posts RunNews here)."""
        if self.follower is not None:
            self.tui.watcher.unfollow(self.follower)
        self.run_dir = Path(run_dir)
        self.follower = Follower(run_dir, since_ns=since_ns)
        self._run_over = False
        self._run_line = ""
        self._reset_dashboard()
        self.query_one("#device-line", Static).update(Text(message))
        # On a narrow terminal the dashboard takes the whole width from now on (ctrl+f shows
        # the recipe again).
        self.add_class("-has-run")
        self.remove_class("-recipe-toggled")
        self._set_buttons()
        launch = self.launch if self.launch is not None and self.launch.run_dir == self.run_dir else None
        self.tui.watcher.follow(self.follower, self, launch)

    def on_run_news(self, news: RunNews) -> None:
        """Show what the followed run wrote since the watcher's last look."""
        if news.follower is not self.follower:
            return  # news of a run no longer followed here
        for event in news.events:
            self.show_event(event)
        self._show_points(news.points, news.restarted)
        if any(isinstance(event, (RunFinished, RunFailed)) for event in news.events):
            self._run_over = True
            self._set_buttons()

    def _set_buttons(self) -> None:
        """Start while nothing trains and the recipe is valid; Stop while a run trains, whose
        recipe (and version) then cannot be edited: the form shows the run's own."""
        form = self.query_one(RecipeForm)
        self.query_one("#start", Button).disabled = self.running or form.config is None
        self.query_one("#stop", Button).disabled = not self.running
        form.disabled = self.running
        self.query_one("#versions", OptionList).disabled = self.running

    def action_show_processes(self) -> None:
        self.query_one(RecipeForm).show_processes()
        self.query_one("#field-processes").focus()

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        if self.running and self.stop_run():
            self.query_one("#device-line", Static).update("Stopping after this batch…")

    def stop_run(self) -> bool:
        """Ask the followed run's trainer to stop after its current batch: through its run
        folder, or, while it is still starting and has none, through its process."""
        if self.run_dir is None:
            return False
        if (self.run_dir / "config.json").exists():
            try:
                request_stop(self.run_dir)
                return True
            except OSError as exc:
                self.notify(f"Could not ask the trainer to stop: {exc.strerror or exc}", severity="error")
                return False
        if self.launch is not None and self.launch.run_dir == self.run_dir:
            self.launch.stop()
            return True
        return False

    def action_toggle_recipe(self) -> None:
        self.toggle_class("-recipe-toggled")

    def _reset_dashboard(self) -> None:
        self.query_one(EpochTable).set_epochs([])
        self._per_batch = False
        for chart in self.query(MetricChart):
            chart.clear()
        for name in ("#loss-chart", "#acc-chart"):  # the legend's order: train, then test
            chart = self.query_one(name, MetricChart)
            chart.set_series("train", [], dense=True)
            chart.set_series("test", [])
        self.query_one("#usage", Static).update("")
        bar = self.query_one("#epoch-progress", ProgressBar)
        bar.update(total=1, progress=0)
        bar.display = True
        self.query_one("#speed", Static).update("")

    def _show_points(self, points: list, restarted: bool) -> None:
        """The per-batch training curve's new points (batches.csv), drawn with the epochs'."""
        loss, acc = self.query_one("#loss-chart", MetricChart), self.query_one("#acc-chart", MetricChart)
        if restarted:
            for chart in (loss, acc):
                chart.set_series("train", [], dense=True)
        if points:
            loss.add_points("train", [(p.x, p.loss) for p in points], dense=True)
            acc.add_points("train", [(p.x, p.acc) for p in points], dense=True)
        # A chart's redraw is the costliest thing the screen does while a run trains: at most
        # once every CHARTS_S, at once after an epoch (which replots with its point) and at the end.
        ending = self.follower is not None and self.follower.done  # the last points at once
        due = time.monotonic() - self._charts_drawn >= CHARTS_S or ending
        if (points or restarted) and due:
            self._charts_drawn = time.monotonic()
            loss.replot()
            acc.replot()

    def _show_epoch(self, e: EpochFinished) -> None:
        self.query_one(EpochTable).add_epoch(e)
        # The training curve is per batch; a run made before batches.csv existed has epochs only.
        train = {} if self._per_batch else {"train": (e.train_loss, e.train_acc)}
        self.query_one("#loss-chart", MetricChart).add_point(e.epoch, {**{k: v[0] for k, v in train.items()}, "test": e.test_loss})
        self.query_one("#acc-chart", MetricChart).add_point(e.epoch, {**{k: v[1] for k, v in train.items()}, "test": e.test_acc})
        self.query_one("#lr-chart", MetricChart).add_point(e.epoch, {"lr": e.lr})

    def show_event(self, ev: Event) -> None:
        handler = {
            RunStarted: self._show_started,
            BatchProgress: self._show_progress,
            EpochFinished: self._show_finished_epoch,
            RunFinished: self._show_end,
            RunFailed: self._show_failure,
        }[type(ev)]
        handler(ev)  # type: ignore[operator]

    def _show_started(self, ev: RunStarted) -> None:
        self._reset_dashboard()
        self.run_dir = ev.run_dir
        self._per_batch = (ev.run_dir / BATCHES).exists()  # runs made before it have none
        self._epochs_done = []
        self._train_size = ev.train_size
        # The form shows the followed run's recipe (its version picked), not the last one edited.
        self.query_one(RecipeForm).load(ev.config.model, ev.config, recipe=ev.config.recipe)
        if ev.config.model in VERSIONS:
            # The picker shows the preset the run was started from (quick), else its version.
            presets = [n for n, p in PRESETS.items() if p.model == ev.config.model and p.recipe == ev.config.recipe]
            self.picked = presets[0] if presets else ev.config.model
            versions = self.query_one("#versions", OptionList)
            with self.prevent(OptionList.OptionHighlighted):
                versions.highlighted = versions.get_option_index(self.picked)
            self._show_version()
        self._run_line = started_line(ev)
        self.query_one("#device-line", Static).update(self._run_line)
        self.query_one("#epoch-progress", ProgressBar).update(total=ev.batches_per_epoch, progress=0)
        self.query_one("#speed", Static).update("training: preparing the first batches…")  # until the first progress
        if ev.warning:
            self.notify(ev.warning, severity="warning", timeout=10, markup=False)

    def _show_progress(self, ev: BatchProgress) -> None:
        self.query_one("#epoch-progress", ProgressBar).update(total=ev.batches, progress=ev.batch)
        doing = (
            f"evaluating on the test set, {clock(ev.seconds_left)} left"
            if ev.phase == "evaluating"
            else f"{ev.images_per_s:,.0f} img/s · {time_left(ev, self._epochs_done, self._train_size)}"
        )
        # Repaint only: a layout pass over this screen costs ~40 ms of the UI thread, and the
        # line keeps its size.
        self.query_one("#speed", Static).update(f"epoch {ev.epoch}/{ev.epochs} · loss {ev.loss:.4f} · {ev.accuracy:.1f}% · {doing}", layout=False)
        self.query_one("#usage", Static).update(usage_line(ev), layout=False)

    def _show_finished_epoch(self, ev: EpochFinished) -> None:
        self._epochs_done.append(ev)
        self._show_epoch(ev)
        bar = self.query_one("#epoch-progress", ProgressBar)
        bar.update(progress=bar.total)  # the epoch is done, whatever progress was last seen
        self.query_one("#usage", Static).update(epoch_cost(ev), layout=False)

    def _ended(self) -> None:
        """After a run: no live use of the machine (what its last epoch cost, if one finished)
        nor a progress bar of a run that no longer trains; focus back on the version list
        (the form was read-only meanwhile)."""
        self.query_one("#usage", Static).update(epoch_cost(self._epochs_done[-1]) if self._epochs_done else "")
        self.query_one("#epoch-progress", ProgressBar).display = False
        self.call_after_refresh(self.query_one("#versions", OptionList).focus)

    def _show_end(self, ev: RunFinished) -> None:
        self._ended()
        acc = f", final test accuracy {ev.final_test_acc:.2f}%" if ev.final_test_acc is not None else ""
        acc += f"; {target_words(ev)}" if ev.target is not None else ""
        epochs = f"{ev.epochs_done} epoch{'s' if ev.epochs_done != 1 else ''}"
        self.notify(f"Run {ev.status} after {epochs}{acc}.", title="Training", markup=False)
        self.query_one("#speed", Static).update(Text(f"{ev.status}: {epochs}{acc} · saved in {ev.run_dir.name} · ctrl+s trains again"))
        self.query_one("#device-line", Static).update(self._run_line)  # no longer "Stopping…"

    def _show_failure(self, ev: RunFailed) -> None:
        self._ended()
        self.notify(ev.reason, title=f"Training {ev.status}", severity="error", timeout=10, markup=False)
        self.query_one("#speed", Static).update(Text(f"{ev.status}: {ev.reason}", style="red"))
        if ev.run_dir is None or not self._run_line:  # it never started: the line says "Starting…"
            self.query_one("#device-line", Static).update("Nothing is training. Change the recipe if needed and press Start (ctrl+s).")
        else:
            self.query_one("#device-line", Static).update(self._run_line)
