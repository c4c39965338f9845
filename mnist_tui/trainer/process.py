"""How a process that owns a run reacts to signals, and how it ends: one exit-code table."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import NoReturn

# The exit status of every command and trainer, by how its run ended: 0 finished, 130 stopped
# (Ctrl+C, SIGTERM, `mnist-tui stop`: 128 + SIGINT, as a shell reports an interrupted
# program), 1 anything else (failed, diverged, interrupted, damaged). A refused argument is 2.
EXIT_CODES = {"finished": 0, "stopped": 130}
REFUSED = 2


def exit_code(status: str | None) -> int:
    """The exit status for a run that ended with `status`."""
    return EXIT_CODES.get(status or "failed", 1)


def _detached() -> bool:
    """Whether this process leads a session of its own, as the launcher starts a detached
    trainer (start_new_session): no terminal's hangup is meant for it."""
    try:
        return os.getsid(0) == os.getpid()
    except OSError:
        return False


def handle_stop_signals(stop: threading.Event) -> None:
    """Ctrl+C and SIGTERM end the run after the current batch (a second Ctrl+C too, quietly).

    SIGHUP (a closed terminal, a dropped SSH session) stops a foreground run, unless it was
    ignored when the process started (`nohup`) or the process leads a session of its own
    (detached): then it stays ignored and the run goes on.
    """

    def handler(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    hup = getattr(signal, "SIGHUP", None)
    if hup is not None and signal.getsignal(hup) != signal.SIG_IGN:
        signal.signal(hup, signal.SIG_IGN if _detached() else handler)


def run_over() -> None:
    """The run is saved: a late Ctrl+C or SIGTERM (a second, impatient one) must not kill the
    process while it exits (Python restores the default handlers during finalization)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def end_process(code: int) -> NoReturn:
    """End the process with `code` once its command has returned.

    Why not simply sys.exit: Python's shutdown, once torch has been loaded (with
    torch._dynamo, which torch.optim imports), tears the modules down one by one, which took
    1-2 s on the 2-core CPU (5fb4936; still 0.3-1 s in this session's measurement), paid by
    every command and every trainer that trained. A command has closed its files and
    released its lock by now, so where torch is loaded and no thread Python would wait for
    is alive, the atexit handlers run (what os._exit alone would skip), the output is
    flushed, and the process ends without the teardown. Anywhere else: sys.exit."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if "torch" not in sys.modules or others:
        sys.exit(code)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
