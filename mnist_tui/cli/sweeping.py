"""`sweep`: an Optuna study over a version's recipe, each trial an ordinary run started
through the run queue; in the foreground, or detached as a worker of its own."""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnist_tui.cli.common import absolute, say


class QueueStarter:
    """Starts trials' runs as `train --detach` does: admitted by the run queue (mode `auto`
    with one job: a trial waits for a busy device; `now` with several: they share the cores)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.launches: list[Any] = []

    def reserve(self, model: str) -> str:
        from mnist_tui.trainer import reserve_name

        self.launches = [launch for launch in self.launches if not launch.ended()]  # reaps the ended
        return reserve_name(model)

    def start(self, config, runs_dir: Path, name: str) -> Callable[[], str | None]:
        from mnist_tui.trainer.launch import start_new
        from mnist_tui.trainer.schedule import admit

        admission = admit(runs_dir, config, name, self.mode, sharing=self.mode == "now")  # now: several jobs
        if admission.queued is not None:
            return lambda: None  # its folder exists, queued: the queue starts it
        launch = start_new(config, runs_dir, name, admission.placement, admission.slot)
        self.launches.append(launch)
        return lambda: launch.failure() if launch.ended() and not (runs_dir / name).is_dir() else None

    def poke(self, runs_dir: Path) -> None:
        from mnist_tui.trainer.schedule import start_next

        start_next(runs_dir)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Create or resume a sweep and work it here (or detached) until its count is reached."""
    if args.show is not None:
        from mnist_tui.cli.sweep_show import cmd_show

        return cmd_show(args)
    from mnist_tui.core.store import default_runs_dir
    from mnist_tui.core.sweep.run import jobs_problem, open_sweep, target
    from mnist_tui.core.sweep.study import SweepError, check_name

    runs_dir = default_runs_dir(absolute(args.runs))
    base, wanted = _wanted(args)
    # `is None`, not truthiness: --study "" (an unset variable) is refused, never renamed.
    name = args.study if args.study is not None else f"{base.model}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    try:
        check_name(name)
    except SweepError as exc:
        args.refuse(f"--study: {exc}")
    storage = _storage(args, runs_dir, name)
    try:
        sweep = open_sweep(runs_dir, name, storage, wanted, base, args.trials)
    except SweepError as exc:
        say(str(exc), "sweep")
        return 1
    problem = jobs_problem(args.jobs, target(sweep))
    if problem:
        args.refuse(problem)
    if sweep.differs:
        say(f"the study {name} goes on with its stored settings (given options differ in: {', '.join(sweep.differs)})", "sweep")
    if args.detach:
        return _detach(args, runs_dir, name)
    return _work(args, runs_dir, sweep, storage)


def _storage(args: argparse.Namespace, runs_dir: Path, name: str) -> str | None:
    """The study's storage: --storage as given (a journal path made absolute; exits 2 on one
    that is neither a URL nor a path), else the one remembered for the study in the runs
    folder's 0600 pointer (so a resumed or detached worker never needs it on its command line)."""
    from mnist_tui.core.sweep.study import SweepError, known_studies, storage_of

    if args.storage is not None:  # --storage "" is refused, never taken as unset
        try:
            return storage_of(args.storage)
        except SweepError as exc:
            args.refuse(str(exc))
    return dict(known_studies(runs_dir)).get(name) if args.model is None else None


def _wanted(args: argparse.Namespace):
    """The trials' base config and the settings of a new study (None: the study must exist,
    and its settings are taken as stored); exits 2 naming a bad value."""
    from mnist_tui.core.sweep.run import jobs_problem, setup_for
    from mnist_tui.core.sweep.space import default_space, read_space
    from mnist_tui.core.sweep.study import SweepError, holdout_problem
    from mnist_tui.core.validate import config_problems
    from mnist_tui.core.versions import get_version

    problem = holdout_problem(args.holdout)
    if problem:
        args.refuse(f"--holdout: {problem}")
    problem = jobs_problem(args.jobs, args.trials or 10**9)
    if problem:
        args.refuse(problem)
    version = get_version(args.model or "v2")
    overrides = {"epochs": args.epochs} if args.epochs else {}
    base = version.config(
        limit=args.limit, test_limit=args.test_limit, holdout=args.holdout, seed=args.seed, precision=args.precision,
        device=args.device, data_dir=absolute(args.data), runs_dir=absolute(args.runs), **overrides,
    )  # fmt: skip
    problems = config_problems(base)
    if problems:
        args.refuse("; ".join(problems.values()))
    if args.model is None:
        return base, None
    try:
        space = read_space(Path(args.space), base) if args.space else default_space(base)
    except SweepError as exc:
        args.refuse(str(exc))
    return base, setup_for(base, args.trials or 20, args.metric, space, args.prune)


def _detach(args: argparse.Namespace, runs_dir: Path, name: str) -> int:
    """Work the sweep in a process of its own session (logging to .sweeps/NAME.log): the same
    command, resuming the study just made."""
    from mnist_tui.core.sweep.study import sweeps_dir
    from mnist_tui.present.text import command_name, printable

    command = [sys.executable, "-m", "mnist_tui", "sweep", "--study", name, "--runs", str(runs_dir), "--jobs", str(args.jobs), "--device", args.device]
    # No --storage: a database URL may hold a password, and a command line is anyone's to read
    # (ps); the worker finds the storage in the study's 0600 pointer (.sweeps/NAME.json).
    command += ["--data", absolute(args.data) or ""] if args.data else []
    log = sweeps_dir(runs_dir) / f"{name}.log"
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        say(f"cannot write {log}: {exc.strerror or exc}", "sweep")
        return 1
    try:
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    finally:
        os.close(fd)
    where = f" --runs {runs_dir}" if args.runs else ""
    print(printable(f"sweep {name} works in the background (its log: {log})", one_line=True))
    print(printable(f"see it: {command_name()} sweep --show {name}{where}", one_line=True))
    return 0


def _work(args: argparse.Namespace, runs_dir: Path, sweep, storage: str | None) -> int:
    """Drive the trials here, a line as each ends; the best at the end. 130 after Ctrl+C."""
    from mnist_tui.core.sweep.run import METRICS, Worker, target
    from mnist_tui.core.sweep.study import SweepError
    from mnist_tui.core.sweep.trial import Context
    from mnist_tui.trainer import handle_stop_signals

    stop = threading.Event()
    handle_stop_signals(stop)
    metric = str(sweep.setup.get("metric", "holdout_acc"))
    _header(sweep, storage, target(sweep))
    ctx = Context(
        sweep.study,
        runs_dir,
        sweep.base,
        METRICS.get(metric, METRICS["holdout_acc"])[0],
        QueueStarter("auto" if args.jobs == 1 else "now"),
        stop,
        functools.partial(_told, metric=metric),
    )
    try:
        Worker(sweep, ctx, runs_dir, args.jobs).work()
    except SweepError as exc:
        say(str(exc), "sweep")
        return 1
    if stop.is_set():
        say("stopped: the trials under way were stopped and do not count; resume with the same --study", "sweep")
        return 130
    return _finish(sweep, runs_dir, args.data)


def _header(sweep, storage: str | None, trials: int) -> None:
    from mnist_tui.present.text import printable

    s = sweep.setup
    where = storage and "(given storage)" or "embedded journal"
    images = f"{s.get('limit') or 60_000:,} images" if s.get("limit") else "all training images"
    print(
        printable(
            f"sweep {sweep.study.study_name} · {where} · {s.get('model')} · {trials} trial{'s' if trials != 1 else ''} of {s.get('epochs')} epoch{'s' if s.get('epochs') != 1 else ''} · {images}, "
            f"{s.get('holdout'):,} held out · scored by {s.get('metric')}",
            one_line=True,
        ),
        flush=True,
    )


def _told(end, metric: str = "holdout_acc") -> None:
    """A trial's line as it ends: number, state, score, wall seconds, settings, run."""
    from mnist_tui.present.sweeps import score_text, settings_text
    from mnist_tui.present.text import printable

    score = "" if end.value is None else f"  {score_text(end.value, metric)}"
    why = f"  ({end.why})" if end.why else ""
    line = f"trial {end.number:>3}  {end.state.lower():<8}{score}  {end.seconds:.0f}s  {settings_text(end.params)}  {end.run}{why}"
    print(printable(line, one_line=True), flush=True)


def _finish(args_sweep, runs_dir: Path, data: str | None) -> int:
    """Once every counted trial has ended: the best trial, and its test accuracy, measured
    once by whichever worker gets here first."""
    from mnist_tui.core.sweep.best import best_trial, evaluate_best, finished
    from mnist_tui.core.sweep.run import study_lock, target
    from mnist_tui.present.sweeps import score_text, settings_text
    from mnist_tui.present.text import printable

    found = args_sweep.study
    with study_lock(runs_dir, found.study_name) as held:
        done = held and finished(found, target(args_sweep))
        best_test = evaluate_best(found, runs_dir, absolute(data)) if done else None
    best = best_trial(found)
    if best is None:
        print("no trial completed", flush=True)
        return 0
    metric = str(args_sweep.setup.get("metric", "holdout_acc"))
    line = f"best: trial {best.number}, {metric} {score_text(best.value, metric)}, {settings_text(best.params)}, run {best.user_attrs.get('run')}"
    if best_test and best_test.get("trial") != best.number:
        best_test = None  # measured for another trial: never printed beside this one
    if best_test and best_test.get("test_acc") is not None:
        line += f"; test accuracy {best_test['test_acc']:.2f}% on {best_test['test_images']:,} images (the test set is looked at once, at the end)"
    elif best_test:
        line += f"; its test accuracy could not be measured: {best_test.get('problem')}"
    print(printable(line, one_line=True), flush=True)
    return 0
