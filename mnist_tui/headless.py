"""Terminal output for the headless commands: rich on a terminal, plain lines in logs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from mnist_tui.core.events import (
    BatchProgress,
    EpochFinished,
    RunFailed,
    RunFinished,
    RunStarted,
)
from mnist_tui.present.layers import LAYER_HEADERS, LAYER_RIGHT, layer_cells
from mnist_tui.present.text import printable
from mnist_tui.present.times import clock, time_left
from mnist_tui.present.training import EPOCH_COLUMNS, best_line, epoch_cells, epoch_marks, pct, started_facts, target_words

if TYPE_CHECKING:  # insight imports torch, which `mnist-tui runs` must not pay for
    from mnist_tui.core.insight import Confusion, Outputs


def epoch_line(e: EpochFinished) -> str:
    """The one plain line a log gets per epoch."""
    return (
        f"epoch {e.epoch}/{e.epochs}  train loss {e.train_loss:.4f} acc {e.train_acc:.2f}%  "
        f"test loss {e.test_loss:.4f} acc {e.test_acc:.2f}%  lr {e.lr:.2e}  "
        f"{e.seconds:.1f}s  {e.images_per_s:,.0f} img/s"
    )


def _shown(text: str) -> str:
    """Text from a run's files or its folder's name, as a line may print it (no escapes)."""
    return printable(text, one_line=True)


def start_line(e: RunStarted) -> str:
    """The first line `train` prints: 'run ID: v2 · 99,746 params · ...', and any warning.
    Every word comes from a run's files and folder name (`follow` reads them): none may send
    the terminal an escape."""
    line = f"run {_shown(e.run_id)}: {_shown(e.config.model)} · {_shown(started_facts(e))}"
    return line + (f"\nwarning: {_shown(e.warning)}" if e.warning else "")


def _finished_line(e: RunFinished) -> str:
    acc = f"final test acc {e.final_test_acc:.2f}% (best {e.best_test_acc:.2f}%)" if e.final_test_acc is not None else "no epoch finished"
    target = f"; {target_words(e)}" if e.target is not None else ""
    return f"{e.status}: {e.epochs_done} epoch{'' if e.epochs_done == 1 else 's'}, {acc}, {e.seconds:.1f}s{target}; saved in {_shown(str(e.run_dir))}"


def epoch_table(rows: list[EpochFinished]) -> Table:
    table = Table(title="Epochs", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, caption=best_line(rows), caption_justify="left")
    for col in EPOCH_COLUMNS:  # the table fits 80 columns
        table.add_column(col, justify="right")
    best, lowest = epoch_marks(rows)
    for r in rows:
        table.add_row(*epoch_cells(r, best, lowest))
    return table


def report(events: Iterable, interactive: bool, console: Console | None = None, notify: bool | None = False) -> str:
    """Show a run's events as they come; return its final status. `notify`: ring and notify
    when the run ends (True: asked for; None: by default, see notify_end)."""
    ended: list[RunFinished | RunFailed] = []

    def watched() -> Iterator:
        for ev in events:
            if isinstance(ev, (RunFinished, RunFailed)):
                ended.append(ev)
            yield ev

    status = _report_live(watched(), console or Console()) if interactive else _report_plain(watched())
    if ended and notify is not False:
        notify_end(ended[-1], asked=notify)
    return status


def _report_live(events: Iterable, console: Console) -> str:
    rows: list[EpochFinished] = []
    progress = Progress(
        TextColumn("{task.fields[epoch]}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[line]}"),
        console=console,
    )
    task = progress.add_task("train", total=None, epoch="", line="preparing the first batches…")
    status, last_words, train_size = "failed", "", 0
    with Live(Group(epoch_table(rows), progress), console=console, refresh_per_second=8) as live:
        for ev in events:
            if isinstance(ev, RunStarted):
                console.print(start_line(ev), markup=False, highlight=False)
                train_size = ev.train_size
            elif isinstance(ev, BatchProgress):
                if ev.phase == "evaluating":  # short: the line fits 80 columns
                    line = f"testing, {clock(ev.seconds_left)} left"
                else:
                    line = f"loss {ev.loss:.4f}  acc {ev.accuracy:.2f}%  {ev.images_per_s:,.0f} img/s  {time_left(ev, rows, train_size)}"
                progress.update(task, total=ev.batches, completed=ev.batch, epoch=f"epoch {ev.epoch}/{ev.epochs}", line=line)
            elif isinstance(ev, EpochFinished):
                rows.append(ev)
                live.update(Group(epoch_table(rows), progress))
            elif isinstance(ev, RunFinished):
                live.update(epoch_table(rows))
                status, last_words = ev.status, _finished_line(ev)
            elif isinstance(ev, RunFailed):
                live.update(epoch_table(rows))
                status, last_words = ev.status, Text(_failed_line(ev), style="red")
    console.print(last_words, markup=False, highlight=False)  # below the final table, once the live display has ended
    return status


def _say(text: str, stream=None) -> None:
    """Print one line; a reader that went away (`| head -1`) silences the output, and the run
    trains on to its end."""
    stream = stream or sys.stdout
    try:
        print(text, file=stream, flush=True)
    except OSError:  # EPIPE from a closed pipe, EIO from a terminal that went away
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # also spares Python's own flush at exit
        os.close(devnull)


def _report_plain(events: Iterable) -> str:
    status = "failed"
    for ev in events:
        if isinstance(ev, RunStarted):
            _say(start_line(ev))
        elif isinstance(ev, EpochFinished):
            _say(epoch_line(ev))
        elif isinstance(ev, RunFinished):
            _say(_finished_line(ev))
            status = ev.status
        elif isinstance(ev, RunFailed):
            _say(f"mnist-tui: {_failed_line(ev)}", sys.stderr)
            status = ev.status
    return status


def _failed_line(e: RunFailed) -> str:
    """A refusal before any run folder (cannot resume: ...) reads as itself; a run that
    ended badly says how (failed, diverged, interrupted)."""
    reason = _shown(e.reason)  # a damaged run's reason quotes its files; an error, its folder
    return reason if e.run_dir is None and reason.startswith("cannot ") else f"{e.status}: {reason}"


def _console() -> Console:
    # Logs and pipes are not 80 columns wide: keep table rows on one line there.
    return Console() if sys.stdout.isatty() else Console(width=160)


def print_runs(records: list, runs_dir: Path, console: Console | None = None) -> None:
    """The runs table, with the columns that fit the terminal (run ids always whole), and
    below it why each damaged or failed run is so, wrapped."""
    from mnist_tui.core.history import row_of
    from mnist_tui.present.runs import run_table

    console = console or _console()
    if not records:
        console.print(f"No runs in {runs_dir}.", markup=False, highlight=False)
        return
    console.print(run_table([row_of(r) for r in records], console.width - 1, f"Runs in {runs_dir}"), no_wrap=True, overflow="ignore", crop=False)
    why = [rec for rec in records if rec.reason and rec.status not in ("finished", "running")]
    if why:
        console.print()  # the reasons stand apart from the table
    for rec in why:
        console.print(Text(printable(f"{rec.run_id} {rec.status}: {rec.reason}", one_line=True)), overflow="fold")


def print_breakdown(model: str, console: Console | None = None) -> None:
    from mnist_tui.core.layers import breakdown
    from mnist_tui.core.versions import get_version

    console = console or Console()
    b = breakdown(model)
    version = get_version(model)
    table = Table(title=f"{model}: {version.title}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for header, right in zip(LAYER_HEADERS, LAYER_RIGHT):
        table.add_column(header, justify="right" if right else "left", no_wrap=True)
    for row in b.rows:
        table.add_row(*layer_cells(row))
    console.print(table)
    console.print(f"Total params: {b.total_params:,}  Trainable: {b.trainable_params:,}  Size: {b.param_mb:.2f} MB  MACs per image: {b.mult_adds / 1e6:.2f} M")


def print_versions(console: Console | None = None) -> None:
    from mnist_tui.core.versions import VERSIONS

    console = console or Console()
    table = Table(title="Model versions", title_justify="left")
    for col, justify in (
        ("version", "left"),
        ("title", "left"),
        ("params", "right"),
        ("seed's final acc", "right"),
        ("our final acc", "right"),
        ("recipe", "left"),
    ):
        table.add_column(col, justify=justify)
    for v in VERSIONS.values():
        r = v.recipe
        recipe = f"{r.optimizer} lr {r.lr:g}, {r.scheduler} schedule, batch {r.batch_size}, {r.epochs} epochs"
        table.add_row(v.name, v.title, f"{v.params:,}", pct(v.seed_accuracy), pct(v.measured_mean), recipe)
    console.print(table)


def eval_record(outputs: Outputs, matrix: Confusion) -> dict[str, object]:
    """What `mnist-tui eval --json` prints: the run, its accuracy, each class, the matrix."""
    return {
        "run": outputs.run_id,
        "model": outputs.model,
        "epoch": outputs.epoch,
        "precision": outputs.precision,
        "images": matrix.total,
        "accuracy": matrix.accuracy,
        "classes": [{"digit": c.digit, "images": c.images, "correct": c.correct, "recall": c.recall, "precision": c.precision} for c in matrix.classes()],
        "confusion": matrix.matrix,  # rows: true digit, columns: predicted digit
    }


def print_eval(outputs: Outputs, matrix: Confusion, console: Console | None = None) -> None:
    """The run's test accuracy, per-class table and confusion matrix, for a terminal or a log."""
    console = console or Console(highlight=False)
    console.print(f"run {outputs.run_id}: {outputs.model} · epoch {outputs.epoch} · {outputs.precision} · {matrix.total:,} test images")
    console.print(f"test accuracy {pct(matrix.accuracy)} ({matrix.correct:,} of {matrix.total:,})")
    classes = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Per digit", title_justify="left")
    for col in ("digit", "images", "correct", "recall", "precision"):
        classes.add_column(col, justify="right")
    for c in matrix.classes():
        classes.add_row(str(c.digit), f"{c.images:,}", f"{c.correct:,}", pct(c.recall), pct(c.precision))
    console.print(classes)
    worst = set(matrix.worst())
    grid = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Confusion (rows: true digit, columns: predicted)", title_justify="left")
    grid.add_column("true", justify="right")
    for d in range(10):
        grid.add_column(str(d), justify="right")
    for t, row in enumerate(matrix.matrix):
        cells = [Text(f"{n:,}" if n else "·", style="bold green" if t == p else "bold red" if (t, p) in worst else "") for p, n in enumerate(row)]
        grid.add_row(str(t), *cells)
    console.print(grid)


def notify_end(ev: RunFinished | RunFailed, asked: bool | None) -> None:
    """The bell and a desktop notification that a run ended (present/notify.py): asked for
    (--notify: True), or by default (None: `follow`) unless MNIST_TUI_NOTIFY=off. Written
    to the first of stdout and stderr that is a terminal; asked for, to stdout whatever it
    is; by default never into a log or a pipe. Never a failure of the command."""
    from mnist_tui.present.notify import NOTIFY_ENV, TITLE, event_words, sequences, setting

    if asked is None and setting() == "off":
        return
    stream = next((s for s in (sys.stdout, sys.stderr) if s.isatty()), None)
    if stream is None and not asked:
        return
    environ = {**os.environ, NOTIFY_ENV: "auto"} if asked and setting() == "off" else dict(os.environ)
    run_id = ev.run_dir.name if ev.run_dir is not None else "the run"
    try:
        (stream or sys.stdout).write(sequences(TITLE, event_words(ev, run_id), environ))
        (stream or sys.stdout).flush()
    except OSError:
        pass
