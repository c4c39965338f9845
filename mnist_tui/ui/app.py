"""The mnist-tui application: three modes (Train, Layers, Runs), bindings and palette commands."""

from __future__ import annotations

import contextvars
import threading
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import App
from textual.await_complete import AwaitComplete
from textual.binding import Binding
from textual.command import CommandPalette, Hit, Hits, Provider

from mnist_tui.core.store import changed_since, default_runs_dir, list_runs
from mnist_tui.core.versions import PRESETS, VERSIONS
from mnist_tui.trainer import Launcher, ProcessLauncher
from mnist_tui.ui.screens.confirm import ChoiceScreen
from mnist_tui.ui.screens.layers import LayersScreen
from mnist_tui.ui.screens.runs import RunsScreen
from mnist_tui.ui.screens.train import TrainScreen
from mnist_tui.ui.watcher import RunsChanged, Watcher
from mnist_tui.ui.widgets.version_picker import PICKS


class MnistCommands(Provider):
    """Palette entries for every screen and for training each version."""

    def commands(self) -> list[tuple[str, object, str]]:
        app = self.app
        entries = [
            ("Open Train", partial(app.switch_mode, "train"), "The home screen: pick a version and train it"),
            ("Open Layers", partial(app.switch_mode, "layers"), "Layer-by-layer breakdown of each version"),
            ("Open Runs", partial(app.switch_mode, "runs"), "Browse, compare and delete saved runs"),
            ("Start training", partial(app.run_on_train_screen, "action_start"), "Train the version picked on the Train screen with its recipe"),
            ("Stop training", partial(app.run_on_train_screen, "action_stop"), "Stop after the current batch; finished epochs are kept"),
            ("Predictions of the current run", app.action_predictions, "Test digits classified by the model being trained"),
            ("Draw a digit", app.action_draw, "Draw a digit and see a saved run read it, live"),
            ("Open Sweep", app.action_sweep, "A sweep's trials, best recipe, objective and parameter importances"),
            ("Mistakes of the current run", app.action_mistakes, "Confusion matrix, per-digit precision and recall, the digits it gets wrong"),
            (
                "Show the Processes field",
                partial(app.run_on_train_screen, "action_show_processes"),
                "Train one run on several processes (DDP); hidden on 2 cores",
            ),
            ("Toggle dark / light theme", app.action_toggle_dark, "Switch between textual-dark and textual-light"),
        ]
        for name in PICKS:
            about = PRESETS[name].title if name in PRESETS else f"{VERSIONS[name].title}, {VERSIONS[name].params:,} parameters"
            entries.append((f"Train {name}", partial(app.train_version, name, True), f"Start {name} with its recipe: {about}"))
            entries.append((f"Select {name}", partial(app.train_version, name), f"Pick {name} on the Train screen, its recipe in the form"))
        return entries

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self.commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)

    async def discover(self) -> Hits:
        for text, callback, help_text in self.commands():
            yield Hit(1.0, text, callback, help=help_text)


class Palette(CommandPalette):
    """Textual's command palette, dismissed at most once.

    A click outside the palette dismisses it at once, while a command chosen a moment
    before (Enter with one match while hits still arrive) dismisses it again from a queued
    message; the second dismissal popped the screen beneath (`ScreenStackError: Can't pop
    screen`, seen on a loaded CPU). Here the second one does nothing.

    The flag's name must not be one of Textual's own: `_closed` is the message pump's, and
    setting it made the palette's removal wait forever (Escape froze the app).
    """

    _dismissed_once = False

    def dismiss(self, result=None) -> AwaitComplete:
        if self._dismissed_once or not self.is_current:
            return AwaitComplete()
        self._dismissed_once = True
        return super().dismiss(result)


class MnistTuiApp(App):
    TITLE = "mnist-tui"
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses may live elsewhere
    # Installed by name so that the training screen can be found while another mode shows.
    SCREENS = {"train": TrainScreen, "layers": LayersScreen, "runs": RunsScreen}
    MODES = {"train": "train", "layers": "layers", "runs": "runs"}
    COMMANDS = App.COMMANDS | {MnistCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding("question_mark,f1", "help", "Keys", key_display="?"),
        # Tab moves focus before any later key is handed out: keys typed after Tab in one
        # burst land in the next field, not in the one being left.
        Binding("tab", "focus_next", show=False, priority=True),
        Binding("shift+tab", "focus_previous", show=False, priority=True),
        ("ctrl+q", "quit", "Quit"),
        ("f2", "open('train')", "Train"),
        ("f3", "open('layers')", "Layers"),
        ("f4", "open('runs')", "Runs"),
        ("f5", "predictions", "Predict"),
        ("f6", "draw", "Draw"),
        ("f7", "sweep", "Sweep"),
    ]

    def __init__(self, runs_dir: Path | None = None, data_dir: str | None = None, start_mode: str = "train", launcher: Launcher | None = None):
        super().__init__()
        self.runs_dir = default_runs_dir(runs_dir)
        self.data_dir = data_dir
        self.start_mode = start_mode
        # Each run trains in a trainer process of its own; tests pass one that trains in a thread.
        self.launcher = launcher or ProcessLauncher()
        self.prefetched_runs: tuple[float, list] | None = None
        self.runs_changes = 0  # changes the watcher has seen in the runs folder
        self.watcher = Watcher(self.runs_dir)  # the one reader of run folders for the screens

    def on_mount(self) -> None:
        # A daemon thread rather than a worker: it lives as long as the app, and waiting for
        # the app's workers to finish (tests, scripts) must not wait for it.
        # It runs in the app's context (as a worker would), so that it may post messages.
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self.watcher.run,), name="run watcher", daemon=True).start()
        self.watcher.subscribe(self)  # a change makes the prefetched runs out of date
        self.switch_mode(self.start_mode)

    def on_unmount(self) -> None:
        self.watcher.stop()

    def on_ready(self) -> None:
        self.prefetch_runs()

    @work(thread=True, exclusive=True, exit_on_error=False, group="prefetch-runs")
    def prefetch_runs(self) -> None:
        """Read the run store once the first screen is drawn, so that the first F4 shows a
        long history at once (the Runs screen takes it if nothing changed since)."""
        changes = self.runs_changes
        stamp = changed_since(self.runs_dir, 0.0) or 0.0
        records = list_runs(self.runs_dir)
        if changes == self.runs_changes:  # else the watcher saw a change meanwhile: out of date
            self.prefetched_runs = (stamp, records)

    def on_runs_changed(self, _message: RunsChanged) -> None:
        self.runs_changes += 1
        self.prefetched_runs = None  # the watcher saw a change since: read again

    def take_prefetched_runs(self) -> tuple[float, list] | None:
        """The prefetched (stamp, records), once, if the watcher has seen no change since."""
        prefetched, self.prefetched_runs = self.prefetched_runs, None
        return prefetched

    @property
    def train_screen(self) -> TrainScreen | None:
        try:
            screen = self.get_screen("train")
        except KeyError:
            return None
        return screen if isinstance(screen, TrainScreen) else None

    async def train_version(self, name: str, start: bool = False) -> None:
        """Pick a version (or preset) on the Train screen; with `start`, train it with its recipe."""
        await self.switch_mode("train")
        screen = self.train_screen
        if screen is not None:
            screen.select(name)
            if start:
                screen.action_start()

    async def run_on_train_screen(self, action: str) -> None:
        await self.switch_mode("train")
        screen = self.train_screen
        if screen is not None:
            getattr(screen, action)()

    async def action_open(self, mode: str) -> None:
        """Show a mode's own screen, closing what was opened over it (Predictions, a run)."""
        await self.switch_mode(mode)
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_command_palette(self) -> None:
        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(Palette(id="--command-palette"))

    def get_system_commands(self, screen):
        """Textual's palette commands, with "Keys" opening this app's own keys screen: Textual's
        help panel in its place crashed the app's shutdown (its bindings ask for a screen
        when none is left; found by the UI walk, seed 19)."""
        from textual.app import SystemCommand

        for command in super().get_system_commands(screen):
            if command.title != "Keys":
                yield command
        yield SystemCommand("Keys", "Every key of the current screen", self.action_help)

    def action_help(self) -> None:
        from mnist_tui.ui.screens.help import HelpScreen, screen_keys

        if isinstance(self.screen, HelpScreen):
            return
        name = getattr(self.screen, "help_name", None) or type(self.screen).__name__.removesuffix("Screen")
        self.push_screen(HelpScreen(f"the {name} screen", screen_keys(self.screen)))

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def _current_checkpoint(self, key: str) -> Path | None:
        """The run the Train screen follows, once it has a finished epoch (else say so)."""
        screen = self.train_screen
        run_dir = screen.run_dir if screen is not None else None
        if run_dir is None or not (Path(run_dir) / "checkpoint.pt").exists():
            self.notify(f"No epoch of a run started here has finished yet; open a saved run from Runs ({key}).", severity="warning")
            return None
        return Path(run_dir)

    def action_predictions(self) -> None:
        from mnist_tui.ui.screens.predictions import PredictionsScreen

        if (run_dir := self._current_checkpoint("p")) is not None:
            self.push_screen(PredictionsScreen(run_dir))

    def action_draw(self) -> None:
        from mnist_tui.ui.screens.draw import DrawScreen

        if not isinstance(self.screen, DrawScreen):
            self.push_screen(DrawScreen())

    def action_sweep(self, name: str | None = None) -> None:
        """The Sweep screen: study `name`, else the newest in the runs folder."""
        from mnist_tui.ui.screens.sweep import SweepScreen

        def showing(screen: object) -> bool:
            return isinstance(screen, SweepScreen) and (name is None or screen.wanted == name or (screen.report is not None and screen.report.name == name))

        if showing(self.screen):
            return
        if len(self.screen_stack) > 1 and showing(self.screen_stack[-2]):
            self.pop_screen()  # a trial opened from that sweep: back to it, not a second one
            return
        self.push_screen(SweepScreen(name))

    def action_mistakes(self) -> None:
        from mnist_tui.ui.screens.mistakes import MistakesScreen

        if (run_dir := self._current_checkpoint("m")) is not None:
            self.push_screen(MistakesScreen(run_dir))

    async def action_quit(self) -> None:
        screen = self.train_screen
        if screen is None or not screen.running:
            self.exit()
            return

        def answered(choice: str | None) -> None:
            if choice == "stop" and screen.run_dir is not None:
                screen.stop_run()
                self.exit(message=Text(f"Asked {screen.run_dir.name} to stop after its current batch; its finished epochs are kept."))
            elif choice == "keep":
                from mnist_tui.present.text import command_name, run_hint

                hint = f"; {run_hint(screen.run_dir)}" if screen.run_dir is not None else ""
                default = self.runs_dir.resolve() == default_runs_dir().resolve()
                again = command_name() if default else f"{command_name()} --runs {self.runs_dir}"
                self.exit(message=Text(f"The run keeps training in the background; `{again}` shows it again{hint}"))

        self.push_screen(
            ChoiceScreen(
                "A run is training in its own process. Keep it training in the background, stop it (its finished epochs are kept), or go back?",
                [("keep", "Keep training", "k"), ("stop", "Stop it", "s"), ("cancel", "Cancel", "escape")],
            ),
            answered,
        )
