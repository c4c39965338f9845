"""`train` and `resume`: a run in the foreground, on N processes, or detached."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

from mnist_tui.cli.common import absolute, find, say
from mnist_tui.cli.detach import detached

RECIPE_OPTIONS = ("epochs", "batch_size", "lr", "optimizer", "scheduler", "dropout", "weight_decay", "momentum", "rotate", "translate", "scale")


def config_of(args: argparse.Namespace):
    """The run's config from the arguments."""
    from mnist_tui.core.config import ConfigError
    from mnist_tui.core.versions import QUICK, get_version

    overrides = {k: getattr(args, k) for k in RECIPE_OPTIONS if getattr(args, k) is not None}
    if args.quick:
        if args.model not in (None, QUICK.model):
            raise ConfigError(f"--quick trains {QUICK.model}; leave out --model, or give the recipe's options instead")
        base = QUICK
    else:
        base = get_version(args.model or "v2")
    return base.config(
        seed=args.seed,
        device=args.device,
        limit=args.limit,
        test_limit=args.test_limit,
        data_dir=absolute(args.data),
        runs_dir=absolute(args.runs),
        precision=args.precision,
        cuda_graph=args.cuda_graph,
        holdout=args.holdout,
        processes=args.nproc,
        target=args.target,
        **overrides,
    )


def _checked_config(args: argparse.Namespace):
    """The config, or exit 2 the argparse way naming every bad value."""
    from mnist_tui.core.config import ConfigError
    from mnist_tui.core.validate import config_problems

    try:
        config = config_of(args)
    except ConfigError as exc:
        args.refuse(str(exc))
    problems = config_problems(config)
    if problems:
        args.refuse("; ".join(problems.values()))
    return config


def cmd_train(args: argparse.Namespace) -> int:
    """Train now (alone, or sharing the CPU with --now), or queue the run: with --queue, or
    by default when another run trains on its device."""
    from mnist_tui.cli.queueing import queued
    from mnist_tui.core.store import CONFIG, default_runs_dir
    from mnist_tui.trainer import LaunchError, handle_stop_signals, reserve_name
    from mnist_tui.trainer.launch import start_new
    from mnist_tui.trainer.schedule import admit, trainer_ended

    config = _checked_config(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=1))
        return 0
    stop = threading.Event()
    handle_stop_signals(stop)  # before the slow imports: an early Ctrl+C ends quietly too
    runs_dir = default_runs_dir(config.runs_dir)
    name = reserve_name(config.model)
    try:
        admission = admit(runs_dir, config, name, "queue" if args.queue else "now" if args.now else "auto")
    except OSError as exc:
        say(f"cannot write into {runs_dir}: {exc.strerror or exc}")
        return 1
    if admission.queued is not None:
        return queued(admission.queued, forced=args.queue)
    if args.detach:
        try:
            launch = start_new(config, runs_dir, name, admission.placement, admission.slot)
        except LaunchError as exc:
            say(str(exc))
            return 1
        return detached(launch, "training", lambda: (launch.run_dir / CONFIG).exists(), stop, new_run=True)
    try:
        admission.apply_here()
        assert admission.placement is not None
        return _train_in_foreground(config.replace(threads=admission.placement.threads), runs_dir, name, stop, notify=args.notify is True)
    finally:
        trainer_ended(admission, runs_dir, None)


def _train_in_foreground(config, runs_dir: Path, name: str, stop: threading.Event, notify: bool = False) -> int:
    """Train here (one process) or on N processes of this machine, each a trainer of a run
    named now and handed its config."""
    from mnist_tui.trainer import LaunchError, hand_over, run
    from mnist_tui.trainer.start import Start

    if config.processes == 1:
        return run.train_here(Start(config), stop, notify)
    try:
        handed = hand_over(config, runs_dir, name)
    except LaunchError as exc:
        say(str(exc))
        return 1
    return run.train_world(Start(config.replace(runs_dir=str(runs_dir)), runs_dir / name, handed), config.processes)


def cmd_resume(args: argparse.Namespace) -> int:
    from mnist_tui.trainer import handle_stop_signals, processes_of, run

    stop = threading.Event()
    handle_stop_signals(stop)
    run_dir = find(args, "resume")
    if args.detach:
        return _resume_detached(run_dir, args, stop)
    from mnist_tui.trainer.schedule import resume_slot, trainer_ended

    admission = resume_slot(run_dir)  # counted among the live trainers, with its share of the cores
    try:
        if admission is not None:
            admission.apply_here()
        nproc = args.nproc or processes_of(run_dir)
        if nproc > 1:
            return run.resume_world(run_dir, nproc, absolute(args.data), args.force)
        return run.resume_here(run_dir, stop, absolute(args.data), args.force)
    finally:
        trainer_ended(admission, run_dir.parent, None)


def _resume_detached(run_dir: Path, args: argparse.Namespace, stop: threading.Event) -> int:
    """Start a resuming trainer of its own and return once it owns the run (or refused)."""
    from mnist_tui.core.store import RESUMABLE, RESUMABLE_WORDS, read_run, taken_over
    from mnist_tui.trainer import LaunchError, ProcessLauncher

    record = read_run(run_dir)
    if record.status not in RESUMABLE and not (record.status == "stale" and args.force):
        say(f"cannot resume {record.run_id}: it is {record.status}; only {RESUMABLE_WORDS} runs can be resumed")
        return 1
    try:
        launch = ProcessLauncher().resume(run_dir, absolute(args.data), args.force, args.nproc)
    except LaunchError as exc:
        say(f"cannot resume {record.run_id}: {exc}")
        return 1
    # Its own trainer, not another resume's, past every check that could refuse it.
    return detached(launch, "resuming", lambda: taken_over(run_dir, launch.token, launch.since_ns), stop, new_run=False)
