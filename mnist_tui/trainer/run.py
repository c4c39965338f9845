"""Training in this process, or on N processes of this machine: what the trainer's entry
point and the CLI's foreground `train` and `resume` share."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from mnist_tui.trainer import world
from mnist_tui.trainer.process import exit_code, run_over
from mnist_tui.trainer.start import Start


def _speaks() -> bool:
    """Whether this process speaks for its run: rank 0 of a world torchrun started (torchrun
    numbers its processes in RANK), or a process on its own."""
    return os.environ.get("RANK", "0") == "0"


def report(events: Iterable, notify: bool = False) -> int:
    """Show the run's events (rank 0 or a process on its own) or train quietly (another
    rank, which speaks only of its own failure); the exit status of the run. `notify`: ring
    the terminal's bell and notify when it ends (`train --notify`)."""
    from mnist_tui.core.events import RunFailed, RunFinished

    if _speaks():
        from mnist_tui.headless import report as show

        status = show(events, interactive=sys.stdout.isatty(), notify=notify)
    else:
        status = "failed"
        for ev in events:
            if isinstance(ev, RunFailed):
                print(f"mnist-tui: rank {os.environ.get('RANK')}: {ev.reason}", file=sys.stderr)
            elif isinstance(ev, RunFinished):
                status = ev.status
    run_over()
    return exit_code(status)


def train_here(start: Start, stop: threading.Event, notify: bool = False) -> int:
    """Train a new run in this process (one trainer, or one rank of a world)."""
    if not start.prepare_data():
        return 1
    from mnist_tui.core.train import train

    return report(start.watch(train(start.config, stop, run_name=start.run_name)), notify)


def resume_here(run_dir: Path, stop: threading.Event, data_dir: str | None, force: bool) -> int:
    """Continue a run in this process (one trainer, or one rank of a world)."""
    from mnist_tui.core.train import resume

    return report(resume(run_dir, stop, data_dir=data_dir, force=force))


def train_world(start: Start, nproc: int) -> int:
    """Train a new run on `nproc` processes of this machine, each a trainer of the run
    `start` names, handed its config (trainer.launch.hand_over)."""
    assert start.run_dir is not None and start.handed is not None
    if not start.prepare_data():  # once, here: not raced by every rank
        return 1
    return world.run_world(nproc, [str(start.handed), str(start.run_dir)], start.run_dir, start)


def resume_world(run_dir: Path, nproc: int, data_dir: str | None, force: bool) -> int:
    """Continue a run on `nproc` processes of this machine."""
    return world.run_world(nproc, ["--resume", str(run_dir)] + (["--data", data_dir] if data_dir else []) + (["--force"] if force else []), run_dir)
