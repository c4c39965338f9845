"""The home screen: pick a version, adjust its recipe, train it, and follow it live.

The screen composes the version picker, the recipe form and the dashboard (ui/widgets/) and
follows the run: which run, when, and what the user is told. Training runs in a trainer
process of its own (mnist_tui/trainer); this screen is a client that follows the run
folder, so a run outlives the app, and the app attaches to a run already training when it
starts.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Header, Label, OptionList, Static

from mnist_tui.core.events import BatchProgress, EpochFinished, Event, RunFailed, RunFinished, RunStarted
from mnist_tui.core.store import list_runs, request_stop
from mnist_tui.core.store.follow import Follower
from mnist_tui.core.store.queue import read_order
from mnist_tui.core.versions import PRESETS, VERSIONS
from mnist_tui.present.text import command_name
from mnist_tui.trainer import Launch, reserve_name
from mnist_tui.trainer.schedule import admit
from mnist_tui.ui.bell import ring_at_end
from mnist_tui.ui.screens.base import AppScreen
from mnist_tui.ui.watcher import RunNews, RunsChanged
from mnist_tui.ui.widgets.dashboard import Dashboard, end_words
from mnist_tui.ui.widgets.footer import KeyFooter
from mnist_tui.ui.widgets.recipe_form import RecipeForm
from mnist_tui.ui.widgets.version_picker import PICKS, VersionList, version_title


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
        self.picked = PICKS[0]  # the picker's entry whose recipe the form holds

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="train-body"):
            with VerticalScroll(id="recipe"):
                yield Label("Version", classes="section")
                yield VersionList(id="versions")
                yield Static("", id="version-title")
                yield RecipeForm(id="form")
            yield Dashboard(id="dashboard")
        yield KeyFooter()

    def on_mount(self) -> None:
        versions = self.query_one(VersionList)
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
        self.query_one("#version-title", Static).update(version_title(self.picked, self.query_one(RecipeForm).config))

    @on(OptionList.OptionHighlighted, "#versions")
    def version_picked(self, event: OptionList.OptionHighlighted) -> None:
        self._pick(str(event.option.id))

    def select(self, name: str) -> None:
        """Pick an entry (a preset or a version) as the arrow keys would: its recipe fills the form."""
        self.query_one(VersionList).show(name)  # the form is filled now, not when the event comes
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
                f"A run is training here: stop it first (ctrl+t), or quit and keep it training; `{command_name()} train --detach` queues more runs behind it (--now: beside it).",
                severity="warning",
                timeout=8,
            )
            return
        if config is None:
            self.notify("Fix the recipe first: " + "; ".join(self.query_one(RecipeForm).problems.values()), severity="error")
            return
        config, name = config.replace(data_dir=self.tui.data_dir), reserve_name(config.model)
        try:
            # The form's When: queue the run, or start it now, or queue it only while another
            # run trains on its device (auto); queued runs whose device is free start first.
            admission = admit(self.tui.runs_dir, config, name, self.query_one(RecipeForm).when)
            if admission.queued is not None:
                self._say_queued(admission.queued)
                return
            self.launch = self.tui.launcher.start(config, self.tui.runs_dir, name, admission.placement, admission.slot)
        except OSError as exc:  # trainer.LaunchError: a read-only runs folder, a file in its place
            self.notify(f"Cannot start: {exc.strerror or exc}", severity="error", markup=False, timeout=10)
            return
        self.attach(self.launch.run_dir, f"Starting a trainer: loading MNIST and building {config.model}…")

    def _say_queued(self, run_dir: Path) -> None:
        """A run just queued: where it stands and how to cancel it (it is not followed until
        it starts: the screen attaches to it then, as to any run that starts training)."""
        self.tui.prefetched_runs = None  # read before it was queued: Runs must read again
        order = read_order(self.tui.runs_dir)
        place = f"number {order.index(run_dir.name) + 1} in line" if run_dir.name in order else "in line"
        self.notify(
            f"Queued {run_dir.name}, {place}: it starts once its device is free. Runs (F4) lists it; K and J move it, C cancels it.",
            title="Queued",
            markup=False,
            timeout=10,
        )

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
        self.query_one(Dashboard).begin(Text(message))
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
        ending = self.follower is not None and self.follower.done  # its last points: drawn at once
        self.query_one(Dashboard).trainers = news.trainers
        self.query_one(Dashboard).show_points(news.points, news.restarted, ending)
        if any(isinstance(event, (RunFinished, RunFailed)) for event in news.events):
            self._run_over = True
            self._set_buttons()
            ring_at_end(self.app, news.events, self.run_dir)  # the bell and a desktop notification

    def _set_buttons(self) -> None:
        """Start while nothing trains and the recipe is valid; Stop while a run trains, whose
        recipe (and version) then cannot be edited: the form shows the run's own."""
        form = self.query_one(RecipeForm)
        self.query_one(Dashboard).set_buttons(can_start=not self.running and form.config is not None, can_stop=self.running)
        form.disabled = self.running
        self.query_one(VersionList).disabled = self.running

    def action_show_processes(self) -> None:
        self.query_one(RecipeForm).show_processes()
        self.query_one("#field-processes").focus()

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        if self.running and self.stop_run():
            self.query_one(Dashboard).say("Stopping after this batch…")

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

    def show_event(self, ev: Event) -> None:
        """Show one event of the followed run: on the dashboard, and what the user must hear
        of as a notification."""
        board = self.query_one(Dashboard)
        if isinstance(ev, RunStarted):
            self.run_dir = ev.run_dir
            self._show_recipe_of(ev)
            board.show_started(ev)
            if ev.warning:
                self.notify(ev.warning, severity="warning", timeout=10, markup=False)
        elif isinstance(ev, BatchProgress):
            board.show_progress(ev)
        elif isinstance(ev, EpochFinished):
            board.show_epoch(ev)
        elif isinstance(ev, RunFinished):
            board.show_end(ev)
            self.notify(f"Run {ev.status} after {end_words(ev)}.", title="Training", markup=False)
            self._ended()
        elif isinstance(ev, RunFailed):
            board.show_failure(ev)
            self.notify(ev.reason, title=f"Training {ev.status}", severity="error", timeout=10, markup=False)
            self._ended()

    def _show_recipe_of(self, ev: RunStarted) -> None:
        """The form shows the followed run's recipe (its version picked), not the last one edited."""
        self.query_one(RecipeForm).load(ev.config.model, ev.config, recipe=ev.config.recipe)
        if ev.config.model in VERSIONS:
            # The picker shows the preset the run was started from (quick), else its version.
            presets = [n for n, p in PRESETS.items() if p.model == ev.config.model and p.recipe == ev.config.recipe]
            self.picked = presets[0] if presets else ev.config.model
            self.query_one(VersionList).show(self.picked)
            self._show_version()

    def _ended(self) -> None:
        """After a run, focus is back on the version list (the form was read-only meanwhile)."""
        self.call_after_refresh(self.query_one(VersionList).focus)
