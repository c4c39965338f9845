"""The trainer's one entry point, `python -m mnist_tui.trainer`: what the detached launcher,
`--nproc` (each rank, through torchrun) and a plain torchrun start.

    python -m mnist_tui.trainer [--nproc N] CONFIG.json RUN_DIR
    python -m mnist_tui.trainer [--nproc N] --resume RUN_DIR [--data DIR] [--force]

CONFIG.json is a training config as a run's config.json stores it under "config" (`mnist-tui
train ... --print-config` writes one); RUN_DIR names the new run's folder, directly in the
config's runs folder, and must not exist yet. With --nproc N this process starts N trainers
of this machine through torchrun and settles the run when they end.

Its arguments are untrusted: a config file that is not JSON, nested deep, of wrong types or
values, or a run folder outside the runs folder are refused in one line on stderr, exit 2,
and nothing is written. Otherwise the exit status is the run's: 0 finished, 130 stopped,
1 failed (a failed start of a new run is recorded in RUN_DIR; trainer.start).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import NoReturn

from mnist_tui.core.config import MAX_PROCESSES, ConfigError, TrainConfig
from mnist_tui.trainer.process import REFUSED, handle_stop_signals

PROG = "mnist-tui trainer"


class Refused(ValueError):
    """An argument the trainer will not start with; the message says which and why."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise Refused(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mnist_tui.trainer", description="A trainer: one run, owned by this process (see the module's docstring).")
    parser.add_argument("config", nargs="?", metavar="CONFIG.json", help="the new run's config (not with --resume)")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the new run's folder in the runs folder, or with --resume the run to continue")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR from its last checkpoint")
    parser.add_argument("--data", metavar="DIR", help="with --resume: the dataset root (never the folder stored in the run)")
    parser.add_argument("--force", action="store_true", help="with --resume: take over a run another host has been silent on for 10 minutes")
    parser.add_argument("--nproc", type=int, default=1, metavar="N", help="start N trainers of this machine through torchrun")
    return parser


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    args = _parser().parse_args(argv)
    if not 1 <= args.nproc <= MAX_PROCESSES:
        raise Refused(f"--nproc must be from 1 to {MAX_PROCESSES}")
    if args.resume == (args.config is not None):
        raise Refused("give CONFIG.json RUN_DIR for a new run, or --resume RUN_DIR")
    if not args.resume and (args.data or args.force):
        raise Refused("--data and --force go with --resume (a new run's config names its data)")
    return args


def read_config(path: Path) -> TrainConfig:
    """A config file as untrusted input: a regular file of at most a MiB, JSON no deeper than
    the run files may be, every field of its type, every value one a run can start with."""
    from mnist_tui.core.store.files import FileProblem, read_json_object
    from mnist_tui.core.validate import config_problems

    try:
        config = TrainConfig.from_dict(read_json_object(path))
    except (FileProblem, ConfigError) as exc:
        raise Refused(f"{path}: {exc}") from None
    problems = config_problems(config)
    if problems:
        raise Refused(f"{path}: {'; '.join(problems.values())}")
    return config


def new_run_folder(config: TrainConfig, given: str) -> Path:
    """RUN_DIR as a new run's folder: a plain name directly in the config's runs folder, not
    there yet."""
    from mnist_tui.core.store import default_runs_dir

    runs_dir = default_runs_dir(config.runs_dir).resolve()
    path = Path(given)
    if ".." in path.parts or path.name.startswith(".") or path.name in ("", "exports"):
        raise Refused(f"RUN_DIR {given} is not a plain folder name (no '..', no leading '.')")
    if path.absolute().parent.resolve() != runs_dir:
        raise Refused(f"RUN_DIR {given} is not directly in the runs folder {runs_dir}")
    if (runs_dir / path.name).exists() or (runs_dir / path.name).is_symlink():
        raise Refused(f"RUN_DIR {given} already exists: a new run needs a folder of its own")
    return runs_dir / path.name


def run_folder(given: str) -> Path:
    """RUN_DIR to resume: a folder that is a run (it holds config.json, a regular file)."""
    from mnist_tui.core.store import CONFIG
    from mnist_tui.core.store.files import FileProblem, open_regular

    path = Path(given)
    try:
        if path.is_symlink() or not path.is_dir():
            raise Refused(f"RUN_DIR {given} is not a folder")
        import os

        os.close(open_regular(path / CONFIG))
    except FileProblem as exc:
        raise Refused(f"RUN_DIR {given} is not a run ({exc})") from None
    except OSError as exc:
        raise Refused(f"RUN_DIR {given} cannot be read ({exc.strerror})") from None
    return path.resolve()


def _start(args: argparse.Namespace):
    """The new run's Start: its checked config (with its runs folder made explicit), its
    folder, and the config file if a launcher handed it over (removed once used)."""
    from mnist_tui.trainer.launch import handed_config
    from mnist_tui.trainer.start import Start

    config = read_config(Path(args.config))
    run_dir = new_run_folder(config, args.run_dir)
    config = config.replace(runs_dir=str(run_dir.parent))
    given = Path(args.config).absolute()
    handed = given if given == handed_config(run_dir.parent, run_dir.name) else None
    return Start(config, run_dir, handed)


def _run(args: argparse.Namespace, stop: threading.Event) -> int:
    """The run, counted among the live trainers (the slot its launcher handed it, or one of
    its own) and, when it ends however it ends, the next queued runs started."""
    from mnist_tui.core.store.queue import run_config
    from mnist_tui.trainer import schedule

    if args.resume:
        run_dir = run_folder(args.run_dir)
        admission = schedule.own_slot(run_dir.parent, run_config(run_dir), run_dir.name)
        try:
            return _resume(args, run_dir, stop, admission)
        finally:
            schedule.trainer_ended(admission, run_dir.parent, run_dir.name)
    start = _start(args)
    assert start.run_dir is not None
    admission = schedule.own_slot(start.runs_dir, start.config, start.run_dir.name)
    try:
        return _train(args, start, stop, admission)
    finally:
        schedule.trainer_ended(admission, start.runs_dir, start.run_dir.name)


def _resume(args: argparse.Namespace, run_dir: Path, stop: threading.Event, admission) -> int:
    from mnist_tui.trainer import run

    if admission is not None and admission.placement is not None:
        admission.apply_here()
    data = str(Path(args.data).absolute()) if args.data else None
    if args.nproc > 1:
        return run.resume_world(run_dir, args.nproc, data, args.force)
    return run.resume_here(run_dir, stop, data, args.force)


def _train(args: argparse.Namespace, start, stop: threading.Event, admission) -> int:
    import dataclasses

    from mnist_tui.trainer import run

    if admission is not None and admission.placement is not None:  # a slot of its own
        admission.apply_here()
        start = dataclasses.replace(start, config=start.config.replace(threads=admission.placement.threads))
    if args.nproc > 1:
        return run.train_world(start, args.nproc)
    return run.train_here(start, stop)


def main(argv: list[str] | None = None) -> int:
    """The trainer's exit status; a refused argument is one line on stderr and status 2."""
    from mnist_tui.present.text import printable

    stop = threading.Event()
    try:
        handle_stop_signals(stop)  # before the slow imports: an early Ctrl+C ends quietly too
        return _run(_arguments(argv), stop)
    except Refused as exc:
        print(f"{PROG}: error: {printable(str(exc), one_line=True)}", file=sys.stderr)
        return REFUSED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
