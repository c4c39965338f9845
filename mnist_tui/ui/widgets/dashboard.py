"""The Train screen's dashboard: the followed run's line, Start and Stop, its progress, use
of the machine, epoch table and curves, drawn from the events and points it is given."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, ProgressBar, Static

from mnist_tui.core.events import BatchProgress, EpochFinished, RunFailed, RunFinished, RunStarted
from mnist_tui.core.hardware import redraw_seconds
from mnist_tui.core.store.records import BATCHES
from mnist_tui.present.times import clock, time_left
from mnist_tui.present.training import epoch_cost, started_line, target_words, usage_line
from mnist_tui.ui.widgets.charts import MetricChart
from mnist_tui.ui.widgets.epoch_table import EpochTable

CHARTS_S = 3.0  # how often the per-batch curves are redrawn while a run trains (alone)


def end_words(ev: RunFinished) -> str:
    """'finished after 3 epochs, final test accuracy 99.12%; reached 99.00% at epoch 2...'
    without the status (the notification and the speed line put it in their own places)."""
    acc = f", final test accuracy {ev.final_test_acc:.2f}%" if ev.final_test_acc is not None else ""
    acc += f"; {target_words(ev)}" if ev.target is not None else ""
    return f"{ev.epochs_done} epoch{'s' if ev.epochs_done != 1 else ''}{acc}"


class Dashboard(Vertical):
    """What the followed run is doing; the screen decides which run and when."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run_line: Text | str = ""  # the followed run's line: model, size, device, id
        self._epochs_done: list[EpochFinished] = []  # the followed run's, for the time left
        self._train_size = 0
        self._per_batch = False  # the followed run records a per-batch curve
        self._charts_drawn = 0.0  # when the per-batch curves were last redrawn (monotonic)
        self.trainers = 0  # trainers live in the runs folder, as the app's watcher last saw

    def compose(self) -> ComposeResult:
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

    def say(self, line: Text | str) -> None:
        """The line above the buttons: what is being followed, or what happens now."""
        self.query_one("#device-line", Static).update(line)

    def set_buttons(self, can_start: bool, can_stop: bool) -> None:
        self.query_one("#start", Button).disabled = not can_start
        self.query_one("#stop", Button).disabled = not can_stop

    def begin(self, line: Text | str) -> None:
        """A new run is followed: nothing of the last one, and `line` until it starts."""
        self.run_line = ""
        self.reset()
        self.say(line)

    def reset(self) -> None:
        """Empty: no epochs, curves, use of the machine nor progress (a new run is followed)."""
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

    def show_points(self, points: list, restarted: bool, ending: bool) -> None:
        """The per-batch training curve's new points (batches.csv), drawn with the epochs'."""
        loss, acc = self.query_one("#loss-chart", MetricChart), self.query_one("#acc-chart", MetricChart)
        if restarted:
            for chart in (loss, acc):
                chart.set_series("train", [], dense=True)
        if points:
            loss.add_points("train", [(p.x, p.loss) for p in points], dense=True)
            acc.add_points("train", [(p.x, p.acc) for p in points], dense=True)
        # A chart's redraw is the costliest thing the screen does while a run trains: at most
        # once every CHARTS_S, at once after an epoch (which replots with its point) and at
        # the end (`ending`: the run's last points); less often still where the redraws
        # would take cores the trainers need (hardware.redraw_seconds).
        due = time.monotonic() - self._charts_drawn >= self.charts_every() or ending
        if (points or restarted) and due:
            self._charts_drawn = time.monotonic()
            loss.replot()
            acc.replot()

    def charts_every(self) -> float:
        """Seconds between redraws of the per-batch curves, beside the trainers live now."""
        return redraw_seconds(CHARTS_S, self.trainers)

    def show_started(self, ev: RunStarted) -> None:
        self.reset()
        self._per_batch = (ev.run_dir / BATCHES).exists()  # runs made before it have none
        self._epochs_done = []
        self._train_size = ev.train_size
        self.run_line = started_line(ev)
        self.say(self.run_line)
        self.query_one("#epoch-progress", ProgressBar).update(total=ev.batches_per_epoch, progress=0)
        self.query_one("#speed", Static).update("training: preparing the first batches…")  # until the first progress

    def show_progress(self, ev: BatchProgress) -> None:
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

    def show_epoch(self, e: EpochFinished) -> None:
        self._epochs_done.append(e)
        self.query_one(EpochTable).add_epoch(e)
        # The training curve is per batch; a run made before batches.csv existed has epochs only.
        train = {} if self._per_batch else {"train": (e.train_loss, e.train_acc)}
        self.query_one("#loss-chart", MetricChart).add_point(e.epoch, {**{k: v[0] for k, v in train.items()}, "test": e.test_loss})
        self.query_one("#acc-chart", MetricChart).add_point(e.epoch, {**{k: v[1] for k, v in train.items()}, "test": e.test_acc})
        self.query_one("#lr-chart", MetricChart).add_point(e.epoch, {"lr": e.lr})
        bar = self.query_one("#epoch-progress", ProgressBar)
        bar.update(progress=bar.total)  # the epoch is done, whatever progress was last seen
        self.query_one("#usage", Static).update(epoch_cost(e), layout=False)

    def _ended(self) -> None:
        """After a run: no live use of the machine (what its last epoch cost, if one finished)
        nor a progress bar of a run that no longer trains."""
        self.query_one("#usage", Static).update(epoch_cost(self._epochs_done[-1]) if self._epochs_done else "")
        self.query_one("#epoch-progress", ProgressBar).display = False

    def show_end(self, ev: RunFinished) -> None:
        self._ended()
        self.query_one("#speed", Static).update(Text(f"{ev.status}: {end_words(ev)} · saved in {ev.run_dir.name} · ctrl+s trains again"))
        self.say(self.run_line)  # no longer "Stopping…"

    def show_failure(self, ev: RunFailed) -> None:
        self._ended()
        self.query_one("#speed", Static).update(Text(f"{ev.status}: {ev.reason}", style="red"))
        if ev.run_dir is None or not self.run_line:  # it never started: the line says "Starting…"
            self.say("Nothing is training. Change the recipe if needed and press Start (ctrl+s).")
        else:
            self.say(self.run_line)
