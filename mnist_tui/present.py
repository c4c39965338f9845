"""Words and figures shown by both front ends (the headless commands and the app)."""

from __future__ import annotations

from pathlib import Path

from mnist_tui.core.events import BatchProgress, EpochFinished
from mnist_tui.core.store import default_runs_dir


def clock(seconds: float) -> str:
    """'0:54', '1:05:07'."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def time_left(ev: BatchProgress, done: list[EpochFinished], train_size: int) -> str:
    """'0:12 left, run 1:05' (the epoch's time left, then the whole run's): later epochs take as long as the finished
    ones did (test pass included), or, in the first, as long as this one's pace says."""
    if done:
        per_epoch = sum(e.seconds for e in done) / len(done)
    elif ev.images_per_s > 0 and train_size:
        per_epoch = train_size / ev.images_per_s
    else:
        return ""
    run = ev.seconds_left + per_epoch * (ev.epochs - ev.epoch)
    return f"{clock(ev.seconds_left)} left, run {clock(run)}"  # short: it shares a line at 80 columns


def run_hint(run_dir: Path) -> str:
    """The commands that follow and stop a run, ready to paste (with its runs folder when
    that is not the default one)."""
    short = run_dir.name[-6:]
    where = "" if Path(run_dir).parent.resolve() == default_runs_dir().resolve() else f" --runs {run_dir.parent}"
    return f"follow it: mnist-tui follow {short}{where} · stop it: mnist-tui stop {short}{where}"
