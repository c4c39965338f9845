"""Command line: the TUI by default, and the user's headless commands.

parser.py    the grammar: every command and option, shared options declared once
common.py    what every command shares: runs found, one-line errors, wait_until
training.py  train and resume (foreground, --nproc, --detach)
detach.py    --detach: return once the trainer owns its run, or say why it did not start
runs.py      runs, stop, follow, delete
queueing.py  queue (list, --move), a queued run's start line, stop of a queued run
models.py    eval, predict, layers
notes.py     note and tag; --notify
sweeping.py  sweep: an Optuna study over a recipe, each trial a run
exporting.py export
app.py       the app as a command, and its crash log

The trainers' own entry point is `python -m mnist_tui.trainer` (mnist_tui/trainer/entry.py).
"""

from __future__ import annotations

import sys
from typing import NoReturn

# The rest of mnist-tui is imported where it is used: until main() runs, a Ctrl+C can only
# end the process with Python's traceback, so the package imports as little as it can.
from mnist_tui.cli.app import cmd_tui, crash_log_dir, run_app
from mnist_tui.cli.common import WRITE_ERRORS, cannot_write, closed_streams_to_devnull, silence_stdout
from mnist_tui.cli.exporting import cmd_export
from mnist_tui.cli.models import cmd_eval, cmd_layers, cmd_predict
from mnist_tui.cli.notes import cmd_note, cmd_tag
from mnist_tui.cli.parser import build_parser
from mnist_tui.cli.queueing import cmd_queue
from mnist_tui.cli.runs import cmd_delete, cmd_follow, cmd_runs, cmd_stop
from mnist_tui.cli.sweeping import cmd_sweep
from mnist_tui.cli.training import cmd_resume, cmd_train, config_of

__all__ = ["build_parser", "config_of", "crash_log_dir", "main", "run", "run_app"]


def run() -> NoReturn:
    """The `mnist-tui` command (and `python -m mnist_tui`): main(), then the end of the
    process (trainer.end_process says why it may skip Python's teardown)."""
    code = main()  # first: until main() has set its handlers, a Ctrl+C must find its except
    try:
        sys.stdout.flush()  # what is still buffered, while a reader that went away can be answered quietly
    except BrokenPipeError:
        silence_stdout()
    except OSError as exc:  # a full disk (> /dev/full): the output is lost, and the status says so
        cannot_write(exc)
        code = code or 1
    from mnist_tui.trainer.process import end_process

    end_process(code)


def main(argv: list[str] | None = None) -> int:
    """The command's exit status. A Ctrl+C that comes before the command has set its own
    handlers (while Python imports what it needs: a train's handlers come within a second)
    or in a command that has none ends it with one line and status 130, as a stop would.
    A reader that goes away (`mnist-tui runs | head -1`) ends the output quietly, not with a
    traceback, and the status is 1, as rich's console (the tables) and Python's own recipe
    end it (a foreground train trains on: headless._say); a full disk (`> /dev/full`) says so
    in one line, with status 1."""
    closed_streams_to_devnull()
    try:
        return _command(argv)
    except BrokenPipeError:
        silence_stdout()
        return 1
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        cannot_write(exc)
        return 1
    except KeyboardInterrupt:
        # CPython remembers a KeyboardInterrupt that left code run from a string (an import's
        # namedtuple runs eval) and ends the process by SIGINT however it exits; running a
        # string to its end clears that (pythonrun.c, run_eval_code_obj).
        eval("None")
        print("mnist-tui: interrupted", file=sys.stderr)
        return 130


def _where(runs: str | None, data: str | None) -> int:
    """`mnist-tui --where`: one line per folder in use, with what chose it."""
    from mnist_tui.core.paths import where
    from mnist_tui.present.text import printable

    print("\n".join(printable(loc.line(), one_line=True) for loc in where(runs, data)))
    return 0


def _command(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # `mnist-tui --runs DIR runs` means the same as `mnist-tui runs --runs DIR`.
    for name in ("runs", "data"):
        if getattr(args, name, "absent") is None:
            setattr(args, name, getattr(args, f"app_{name}"))
    if args.where:
        return _where(args.app_runs, args.app_data)
    # Looked up when called, so that a test may stand in for one.
    commands = {
        "train": cmd_train,
        "runs": cmd_runs,
        "resume": cmd_resume,
        "layers": cmd_layers,
        "stop": cmd_stop,
        "follow": cmd_follow,
        "delete": cmd_delete,
        "eval": cmd_eval,
        "predict": cmd_predict,
        "export": cmd_export,
        "note": cmd_note,
        "tag": cmd_tag,
        "queue": cmd_queue,
        "sweep": cmd_sweep,
    }
    if args.command in commands:
        return commands[args.command](args)
    if args.command == "tui":
        return cmd_tui(args.runs or args.app_runs, args.data or args.app_data, args.open)
    return cmd_tui(args.app_runs, args.app_data, args.app_open)
