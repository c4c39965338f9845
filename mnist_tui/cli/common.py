"""What every command shares: folders made absolute, runs found, errors said in one safe
line, and waiting until something is true."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path


def absolute(path: str | None) -> str | None:
    """A folder given on the command line, made absolute so it means the same later."""
    return str(Path(path).expanduser().resolve()) if path else None


def say(message: str, command: str | None = None, error: bool = False) -> None:
    """One line on stderr, 'mnist-tui COMMAND: error: ...': arguments and file text in it are
    echoed without escape sequences, control characters or lone surrogates."""
    from mnist_tui.present.text import printable

    where = f"mnist-tui {command}" if command else "mnist-tui"
    print(f"{where}: {'error: ' if error else ''}{printable(message, one_line=True)}", file=sys.stderr)


def silence_stdout() -> None:
    """A reader that went away (`| head -1`): the rest of the output goes nowhere, and Python's
    own flush at exit has nothing to complain of."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def closed_streams_to_devnull() -> None:
    """A process started with its output or errors closed (`mnist-tui runs >&-`) has None for
    sys.stdout or sys.stderr, and anything that asks them isatty() fails: they go to
    /dev/null instead, as the user asked nothing to be seen."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115  # open for the process's life


def find(args: argparse.Namespace, command: str, starting: bool = False) -> Path:
    """The run an argument names, or exit 2 saying why none (or several) match."""
    from mnist_tui.core.store import default_runs_dir, find_run

    try:
        return find_run(default_runs_dir(absolute(args.runs)), args.run, starting)
    except LookupError as exc:
        say(str(exc), command, error=True)
        raise SystemExit(2) from None


def wait_until(done: Callable[[], bool], seconds: float, stop: threading.Event | None = None, every: float = 0.1) -> bool:
    """Poll `done` until it is true, `seconds` have passed or `stop` is set; whether it came true."""
    deadline = time.monotonic() + seconds
    stop = stop or threading.Event()
    while not done():
        if stop.is_set() or time.monotonic() > deadline:
            return False
        stop.wait(every)
    return True
