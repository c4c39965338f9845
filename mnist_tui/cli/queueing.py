"""`queue` (list, --move), a queued run's start line, and `stop` of a queued run (cancel)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_tui.cli.common import absolute, find, say


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def queued(run_dir: Path, forced: bool) -> int:
    """Say where a run just queued stands, start what may start, and return 0."""
    from mnist_tui.core.store.queue import queued_runs
    from mnist_tui.present.text import command_name, printable, run_hint
    from mnist_tui.trainer.schedule import start_next

    if run_dir.name in start_next(run_dir.parent):
        print(f"run {printable(run_dir.name, one_line=True)}: training in the background in {printable(str(run_dir), one_line=True)}")
    else:
        order = [p.name for p in queued_runs(run_dir.parent)]
        place = _ordinal(order.index(run_dir.name) + 1) if run_dir.name in order else "last"
        why = "" if forced else "; another run trains on its device (add --now to start it anyway, sharing the device)"
        print(f"run {printable(run_dir.name, one_line=True)}: queued, {place} in line{why}")
        where = _runs_option(run_dir.parent)
        print(printable(f"see the queue: {command_name()} queue{where} · cancel it: {command_name()} stop {run_dir.name[-6:]}{where}", one_line=True))
        return 0
    print(run_hint(run_dir))
    return 0


def _runs_option(runs_dir: Path) -> str:
    """' --runs DIR' where the runs folder is not the default one (as present.run_hint says)."""
    import shlex

    from mnist_tui.core.store import default_runs_dir

    return "" if runs_dir.resolve() == default_runs_dir().resolve() else f" --runs {shlex.quote(str(runs_dir))}"


def cancel_queued(run_dir: Path) -> bool:
    """`stop` of a queued run: it leaves the queue, and its folder goes (nothing was trained);
    False if it is not queued (any more)."""
    from mnist_tui.core.store.queue import cancel
    from mnist_tui.core.store.trainers import queue_lock
    from mnist_tui.present.text import printable

    with queue_lock(run_dir.parent):
        if not cancel(run_dir):
            return False
    print(f"cancelled {printable(run_dir.name, one_line=True)}: it was queued, and nothing had been trained")
    return True


def _rows(runs_dir: Path) -> list[str]:
    """The queue's lines: what trains now, then each queued run in order."""
    from mnist_tui.core.store.queue import queued_runs, run_config
    from mnist_tui.core.store.trainers import live_trainers
    from mnist_tui.present.text import printable

    lines = []
    for live in live_trainers(runs_dir):
        where = (
            f"GPU {','.join(live.gpus)}"
            if live.gpus
            else live.device.upper() + (f", {live.threads} thread{'s' if live.threads != 1 else ''}" if live.threads else "")
        )
        lines.append(f"  training  {printable(live.run or '(a trainer)', one_line=True)}  ({where})")
    for i, run_dir in enumerate(queued_runs(runs_dir), start=1):
        config = run_config(run_dir)
        what = (
            f"{config.model}, {config.recipe.epochs} epoch{'s' if config.recipe.epochs != 1 else ''}, --device {config.device}"
            if config
            else "config.json unreadable"
        )
        lines.append(f"  {i:>8}  {printable(run_dir.name, one_line=True)}  ({printable(what, one_line=True)})")
    return lines


def cmd_queue(args: argparse.Namespace) -> int:
    """List the queue in order (starting what may start first), or move a queued run."""
    from mnist_tui.core.store import default_runs_dir
    from mnist_tui.core.store.queue import move
    from mnist_tui.core.store.trainers import QueueBusy, queue_lock
    from mnist_tui.trainer.schedule import start_next

    runs_dir = default_runs_dir(absolute(args.runs))
    if args.move is not None:
        run_dir = find(argparse.Namespace(runs=args.runs, run=args.move), "queue")
        try:
            with queue_lock(runs_dir):
                move(runs_dir, run_dir.name, args.to)
        except (LookupError, QueueBusy, OSError) as exc:
            say(str(exc), "queue", error=isinstance(exc, LookupError))
            return 1
    elif runs_dir.is_dir():
        start_next(runs_dir)  # a trainer killed with -9 started nothing: look now
    rows = _rows(runs_dir)
    print("\n".join(rows) if rows else f"Nothing trains or waits in {runs_dir}.")
    return 0
