"""What every command shares: folders made absolute, runs found, errors said in one safe
line, and waiting until something is true."""

from __future__ import annotations

import argparse
import errno
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
    """A process started with stdin, its output or its errors closed (`mnist-tui runs >&-`)
    has None for that stream, and anything that asks it isatty() fails; worse, the next file
    it opens takes the free descriptor, and text meant for the terminal would land in it. Each
    closed one of descriptors 0, 1 and 2 is opened on /dev/null instead, in that order (a new
    descriptor takes the lowest number free), as the user asked nothing to be seen or read."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115  # for the process's life


# What writing the output can fail with besides a reader that went away (`> /dev/full`).
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


def cannot_write(exc: OSError) -> None:
    """Say in one line that the output could not be written, and write no more of it."""
    silence_stdout()
    try:
        say(f"cannot write: {exc.strerror}" + (f" ({exc.filename})" if exc.filename else ""))
    except OSError:
        pass  # the errors cannot be written either: the status says it


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
