"""Spans of time for people: one formatter, in the forms the lines and tables need."""

from __future__ import annotations

from typing import Literal

from mnist_tui.core.events import BatchProgress, EpochFinished
from mnist_tui.core.store.records import mean

Form = Literal["words", "compact", "clock"]

MAX_HOURS = 10_000  # words and compact: past this '>9999 h' (a sum of schema-valid 1e308 s is infinite)
CLOCK_HOURS = 999  # the longest time a clock shows; longer is "> 999 h" (the width of 999:59:59)


def duration(seconds: float, form: Form = "words") -> str:
    """How long. `words` at the precision people plan with: '40 s', '8 min', '1 h 05 min';
    `compact` for a narrow column: '40s', '8m', '1h05'; `clock` for a countdown to the
    second: '0:54', '1:05:07'. Past the longest a form shows '>9999 h' ('> 999 h' on a
    clock); '?' for what is not a time at all (NaN, negative)."""
    if not seconds >= 0:  # NaN too
        return "?"
    if form == "clock":
        if seconds >= CLOCK_HOURS * 3600 + 3599.5:
            return f"> {CLOCK_HOURS} h"
        whole = int(round(seconds))
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}" if whole >= 3600 else f"{whole // 60}:{whole % 60:02d}"
    s, m, h = ("s", "m", "h") if form == "compact" else (" s", " min", " h ")
    if seconds < 90:
        return f"{seconds:.0f}{s}"
    if seconds < 3600:
        return f"{seconds / 60:.0f}{m}"
    if seconds >= MAX_HOURS * 3600:
        return f">{MAX_HOURS - 1}{h.rstrip()}"
    return f"{int(seconds // 3600)}{h}{int(seconds % 3600 // 60):02d}{'' if form == 'compact' else ' min'}"


def clock(seconds: float) -> str:
    """A countdown's time left: duration(seconds, "clock")."""
    return duration(seconds, "clock")


def time_left(ev: BatchProgress, done: list[EpochFinished], train_size: int) -> str:
    """'0:12 left, run 1:05' (the epoch's time left, then the whole run's): later epochs take as long as the finished
    ones did (test pass included), or, in the first, as long as this one's pace says. Any float gives a line (an
    inf or NaN sum shows as clock shows it)."""
    if done:
        per_epoch = mean([e.seconds for e in done]) or 0.0
    elif ev.images_per_s > 0 and train_size:
        per_epoch = train_size / ev.images_per_s  # inf for a pace of 1e-310 images a second
    else:
        return ""
    later = max(0, ev.epochs - ev.epoch)
    run = ev.seconds_left + (per_epoch * later if later else 0.0)  # inf * 0 would be NaN
    return f"{clock(ev.seconds_left)} left, run {clock(run)}"  # short: it shares a line at 80 columns
