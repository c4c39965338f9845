"""The app as a command: open it on a terminal, and when it crashes, keep the traceback in a log."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import TextIO

from mnist_tui import __version__
from mnist_tui.cli.common import absolute


def _terminal(stream: TextIO | None) -> bool:
    """Whether `stream` is a terminal; a closed one (`mnist-tui <&-`: Python's is None) is not."""
    return stream is not None and stream.isatty()


def cmd_tui(runs: str | None, data_dir: str | None, screen: str) -> int:
    if not (_terminal(sys.stdin) and _terminal(sys.stdout)):
        from mnist_tui.present.text import command_name

        which = "output" if _terminal(sys.stdin) else "input"
        print(
            f"mnist-tui: error: the app needs a terminal (its {which} is not one); for scripts and pipes use the headless commands: {command_name()} --help",
            file=sys.stderr,
        )
        return 2
    from mnist_tui.ui.app import MnistTuiApp

    return run_app(MnistTuiApp(runs_dir=absolute(runs), data_dir=absolute(data_dir), start_mode=screen))


def run_app(app, log_dir: Path | None = None, **run_options) -> int:
    """Run a Textual app to its end and return the process's exit status: the app's own, and
    after a crash 1, with the full traceback saved to a log whose path is printed (Textual's
    own report on the terminal is as wide as the terminal and scrolls away).
    `run_options` go to App.run (tests pass headless=True)."""
    try:
        app.run(**run_options)
    except Exception as exc:  # raised past Textual's own handling (its driver, say)
        error: BaseException | None = exc
        traceback.print_exception(exc)
    else:
        if not app.return_code:
            return 0
        # Textual keeps the first unhandled exception of a handler, a worker or a timer here
        # (App._handle_exception, which also sets return_code 1) to re-raise it under run_test.
        error = getattr(app, "_exception", None)
        if error is None:
            return app.return_code  # app.exit(return_code=N): an exit status, not a crash
    path = _save_crash(error, log_dir or crash_log_dir())
    where = f"the full traceback is in {path}" if path else "its traceback could not be saved"
    print(f"mnist-tui: the app crashed ({type(error).__name__}: {str(error)[:200]}); {where}", file=sys.stderr)
    return app.return_code or 1


def crash_log_dir() -> Path:
    """Where the app's crash logs go: $MNIST_TUI_LOGS, else the user's log folder
    (~/.local/state/mnist-tui/log on Linux, ~/Library/Logs/mnist-tui on macOS)."""
    from mnist_tui.core.paths import log_location

    return log_location().path


def _save_crash(error: BaseException, folder: Path) -> Path | None:
    """Write the crash's report (version, command, traceback) to a new file in `folder`."""
    from datetime import datetime, timezone

    import textual

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        f"mnist-tui {__version__} (textual {textual.__version__}, Python {sys.version.split()[0]}) crashed at {stamp}",
        f"command: {' '.join(sys.argv)}",
        "",
        *traceback.format_exception(error),
    ]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{stamp}-{os.getpid()}.log"
        path.write_text("\n".join(line.rstrip("\n") for line in lines) + "\n")
    except OSError:
        return None
    return path
