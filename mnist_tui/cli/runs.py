"""`runs`, `stop`, `follow` and `delete`: clients of the run store."""

from __future__ import annotations

import argparse
import sys

from mnist_tui.cli.common import absolute, find, say, wait_until

# How long `stop` waits for a starting trainer's folder, and then for the run to stop.
STOP_WAIT_S = 120.0


def _training(run_dir):
    """(whether a trainer owns the run, its record): the lock decides on this host, whatever
    status.json says (it may be damaged); another host's run by its heartbeat (read_run)."""
    from mnist_tui.core.store import is_locked, read_run

    record = read_run(run_dir)
    return is_locked(run_dir) or record.status == "running", record


def cmd_stop(args: argparse.Namespace) -> int:
    from mnist_tui.cli.queueing import cancel_queued
    from mnist_tui.core.store import request_stop
    from mnist_tui.core.store.follow import folder_to_come
    from mnist_tui.present.text import printable

    run_dir = find(args, "stop", starting=True)
    if cancel_queued(run_dir):
        return 0
    wait_until(lambda: not folder_to_come(run_dir), STOP_WAIT_S)  # a detached trainer still setting up: its folder comes in a few seconds
    live, record = _training(run_dir)
    name = printable(record.run_id, one_line=True)
    if not live:
        say(f"{name} is not training (it is {record.status})", "stop")
        return 1
    try:
        request_stop(run_dir)
    except OSError as exc:
        say(f"cannot ask {name} to stop: {exc.strerror or exc}", "stop")
        return 1
    if not args.wait:
        print(f"asked {name} to stop after its current batch")
        return 0
    wait_until(lambda: not _training(run_dir)[0], STOP_WAIT_S)
    live, record = _training(run_dir)
    print(f"{name}: {'still training' if live else record.status} after {record.epochs_done} epoch{'s' if record.epochs_done != 1 else ''}")
    return 1 if live else 0


def cmd_follow(args: argparse.Namespace) -> int:
    import time

    from mnist_tui.core.store import read_run
    from mnist_tui.core.store.follow import Follower
    from mnist_tui.headless import report
    from mnist_tui.present.text import printable
    from mnist_tui.trainer import exit_code

    run_dir = find(args, "follow", starting=True)
    if read_run(run_dir).status == "queued":
        # No daemon starts the queue (a trainer that ends, or a train, queue or runs that looks
        # does): waiting here could be for ever, so say where it stands instead.
        say(f"{run_dir.name} is queued and has not started; `mnist-tui queue` shows its place; follow it once it trains", "follow")
        return 1
    follower = Follower(run_dir)

    def events():
        while not follower.done:
            yield from follower.poll()
            time.sleep(0.25)

    try:
        status = report(events(), interactive=sys.stdout.isatty(), notify=args.notify)
    except KeyboardInterrupt:
        print(f"\nstopped following; {printable(run_dir.name, one_line=True)} trains on", file=sys.stderr)
        return 0
    return exit_code(status)


# An answer is a word: a line longer than this (`< /dev/zero`) is read no further.
ANSWER_CHARS = 1024


def _confirmed(name: str) -> bool:
    """Whether the user answers yes to deleting run `name`. The question goes to stderr and the
    answer is read from stdin whatever it is, as `rm -i` does: `echo n | mnist-tui delete RUN`
    keeps the run, and a script with nothing to say (stdin empty or closed) keeps it too,
    naming --yes; an answer that is no text (bytes the locale cannot decode) is no yes."""
    try:
        print(f"Delete run {name} and all its files? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline(ANSWER_CHARS) if sys.stdin is not None else ""
    except ValueError:  # bytes that are no text (UnicodeDecodeError): no yes
        answer = "?"
    except OSError:  # a stdin that cannot be read: no answer
        answer = ""
    except KeyboardInterrupt:
        print(file=sys.stderr)  # the line main() says it on starts after the question
        raise
    if not answer:  # end of file at once, or nothing to read: no answer at all
        print(file=sys.stderr)
        say("kept: no answer was given (--yes deletes without asking)", "delete")
        return False
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("kept")
    return False


def cmd_delete(args: argparse.Namespace) -> int:
    from mnist_tui.core.store import RunBusy, busy_problem, delete_run, deletion_problem
    from mnist_tui.present.text import printable

    run_dir = find(args, "delete")
    name = printable(run_dir.name, one_line=True)
    # Asked again under the run's lock; here before asking, so that no answer is asked for nothing.
    problem = deletion_problem(run_dir) or busy_problem(run_dir, args.force)
    if problem:
        say(problem, "delete")
        return 1
    if not args.yes and not _confirmed(name):
        return 1
    try:
        delete_run(run_dir, force=args.force)
    except (RunBusy, OSError) as exc:
        say(str(exc), "delete")
        return 1
    print(f"deleted {name}")
    return 0


def _runs_folder_problem(runs_dir, given: str | None) -> str | None:
    """Why a --runs folder given cannot be listed (None: it can, or none was given)."""
    try:
        what = "" if not given or runs_dir.is_dir() else "is not a folder" if runs_dir.exists() else "does not exist"
    except OSError as exc:  # a path too long for the system (is_dir passes ENAMETOOLONG on)
        what = f"cannot be read: {exc.strerror}"
    return f"{runs_dir} {what}" if what else None


def cmd_runs(args: argparse.Namespace) -> int:
    from mnist_tui.core.history import QueryError, parse_query, select
    from mnist_tui.core.store import default_runs_dir, list_runs
    from mnist_tui.headless import print_runs

    runs_dir = default_runs_dir(absolute(args.runs))
    problem = _runs_folder_problem(runs_dir, args.runs)
    if problem:
        say(problem, "runs", error=True)
        return 2
    try:
        parse_query(args.filter)
    except QueryError as exc:
        say(f"--filter {exc}", "runs", error=True)
        return 2
    from mnist_tui.trainer.schedule import start_next

    if runs_dir.is_dir():
        start_next(runs_dir)  # a trainer killed with -9 started nothing: look now
    everything = list_runs(runs_dir)
    records = [row.record for row in select(everything, args.filter)]
    if everything and not records:
        from mnist_tui.present.text import printable

        shown = printable(f"No runs in {runs_dir} match {args.filter!r}", one_line=True)
        print(f"{shown} ({len(everything):,} run{'' if len(everything) == 1 else 's'} in all).")
        return 0
    print_runs(records, runs_dir)
    return 0
