"""`--detach`: start a trainer of its own and return once it owns its run (or has refused)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_tui.cli.common import say, wait_until

if TYPE_CHECKING:
    from mnist_tui.trainer import Launch

# A trainer imports torch and reads MNIST before it owns its run (8-10 s on a loaded 2-core
# CPU). Past this, `--detach` returns anyway, saying that the trainer is still starting.
START_WAIT_S = 120.0


def detached(launch: Launch, what: str, owns_run: Callable[[], bool], stop: threading.Event, new_run: bool) -> int:
    """Return once a detached trainer owns its run, so that `runs`, `follow` and `stop` find
    it: 0 with the run's id and the commands that follow and stop it, or 1 with the reason
    the trainer failed to start."""
    from mnist_tui.present.text import run_hint

    _await_start(launch, owns_run, stop)
    problem = _start_problem(launch, new_run)
    if problem:
        say(problem)
        if new_run and launch.log is not None and not launch.run_dir.exists():
            _drop_if_empty(launch.log)
        return 1
    if not owns_run() and not launch.ended():
        why = "you stopped waiting" if stop.is_set() else f"not ready after {START_WAIT_S:.0f} s"
        say(f"note: the trainer is still starting ({why}); it logs to {launch.log}")
    print(f"run {launch.run_dir.name}: {what} in the background in {launch.run_dir}")
    print(run_hint(launch.run_dir))
    return 0


def _drop_if_empty(log: Path) -> None:
    """Remove a failed trainer's starting log that holds nothing (a full disk): it would
    only stand for a run that never came; one with words is kept for whoever looks."""
    try:
        if log.stat().st_size == 0:
            log.unlink()
    except OSError:
        pass


def _await_start(launch: Launch, owns_run: Callable[[], bool], stop: threading.Event) -> None:
    """Wait until the trainer owns its run or ended, at most START_WAIT_S or until Ctrl+C,
    with a spinner on a terminal."""
    import contextlib

    spinner: contextlib.AbstractContextManager = contextlib.nullcontext()
    if sys.stderr.isatty():
        from rich.console import Console

        spinner = Console(stderr=True).status("starting the trainer: it imports torch and reads MNIST…")
    with spinner:
        wait_until(lambda: owns_run() or launch.ended(), START_WAIT_S, stop)


def _start_problem(launch: Launch, new_run: bool) -> str | None:
    """Why a detached trainer failed to start, or None: a trainer that ended in error speaks
    through its log; one that saved its new run as failed (bad data, no such device) through
    the run."""
    from mnist_tui.core.store import CONFIG, read_run

    if new_run and (launch.run_dir / CONFIG).exists():
        record = read_run(launch.run_dir)
        if record.status == "failed":
            return f"run {record.run_id} failed: {record.reason}"
    if launch.ended() and launch.process is not None and launch.process.returncode not in (0, 130):
        return launch.failure()
    return None
