"""Launching a trainer: a detached process of its own (what the app and `--detach` use).

A detached trainer is `python -m mnist_tui.trainer CONFIG.json RUN_DIR` (or `--resume
RUN_DIR`) started in a session of its own: no controlling terminal, so a closed terminal, a
dropped SSH connection or a quit TUI do not reach it. The config it is handed is written to
`<runs>/.<name>.config.json`; its output goes to `<runs>/.<name>.log` until its run folder
exists, then to `trainer.log` inside it. Clients (the TUI, `follow`, `stop`) talk to it only
through the run folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from mnist_tui.core import hardware
from mnist_tui.core.config import MAX_PROCESSES, TrainConfig
from mnist_tui.core.store.files import FileProblem, open_regular, write_json_atomic
from mnist_tui.core.store.lock import LAUNCH_ENV
from mnist_tui.core.store.queue import Placement
from mnist_tui.core.store.records import TRAINER_LOG, read_run, starting_log
from mnist_tui.core.store.trainers import Slot

LOG = TRAINER_LOG


def reserve_name(model: str) -> str:
    """A fresh run folder name: UTC time, version, 6 random hex digits (the short id)."""
    return f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{model}-{secrets.token_hex(3)}"


class LaunchError(OSError):
    """A trainer could not be started (its log cannot be written); the message says where."""


@dataclass
class Launch:
    """A trainer just started: the folder to follow, and how to tell if it ended early."""

    run_dir: Path  # appears once the trainer has set up (a resumed run's already exists)
    log: Path | None = None
    process: subprocess.Popen | None = None
    thread: threading.Thread | None = None
    error: str | None = None  # an in-process trainer's refusal or failure
    stop_event: threading.Event | None = None  # an in-process trainer's stop
    token: str = ""  # recorded with the run's lock by this trainer (lock.LAUNCH_ENV)
    since_ns: int = 0  # time.time_ns() just before it started
    log_offset: int = 0  # where its output begins in a log shared with earlier trainers

    def stop(self) -> None:
        """Stop a trainer that has no run folder yet to ask through (it is still starting)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the trainer stops as after Ctrl+C
        if self.stop_event is not None:
            self.stop_event.set()

    def ended(self) -> bool:
        if self.process is not None:
            return self.process.poll() is not None
        return self.thread is not None and not self.thread.is_alive()

    def failure(self) -> str:
        """Why the trainer ended before its run could be followed, in its own last words: the
        last line it said as mnist-tui (a trainer resuming the run may share its log)."""
        if self.error:
            return self.error
        for log in (self.log, self.run_dir / LOG):
            lines = [line for line in _tail(log, self.log_offset).splitlines() if line.strip()] if log else []
            # A trainer that holds the run appends to the same log, and its line may still lack
            # its end when this one's last words follow: what counts is after the last prefix.
            said = [line.rpartition(SAYS)[2] for line in lines if SAYS in line] or lines
            if said:
                return said[-1][:500]
        return f"the trainer ended without saying why{_no_space(self.log or self.run_dir / LOG)}"


SAYS = "mnist-tui: "  # how a trainer's own words begin in its log


def _no_space(log: Path) -> str:
    """' (no space is left on the device of DIR for its log)' where that disk is full, else ''."""
    try:
        full = shutil.disk_usage(log.parent).free < (1 << 16)  # not even room for a log line or two
    except OSError:
        return ""
    return f" (no space is left on the device of {log.parent} for its log)" if full else ""


def _tail(path: Path, start: int = 0, size: int = 4096) -> str:
    """The end of a log from byte `start` on, read without following a link or blocking on a FIFO."""
    try:
        fd = open_regular(path)
    except FileProblem:
        return ""
    try:
        end = os.fstat(fd).st_size
        return os.pread(fd, size, max(start, end - size)).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def handed_config(runs_dir: Path, name: str) -> Path:
    """Where a launcher leaves the config of the new run `name` for its trainer (hidden, as
    the starting log is; the trainer removes it once the run exists or has failed)."""
    return Path(runs_dir) / f".{name}.config.json"


def hand_over(config: TrainConfig, runs_dir: Path, name: str) -> Path:
    """Write the config a trainer will be started with; a LaunchError (one line) if the runs
    folder cannot be written."""
    path = handed_config(runs_dir, name)
    try:
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, config.replace(runs_dir=str(runs_dir)).to_dict())
    except OSError as exc:
        raise LaunchError(_unwritable(Path(runs_dir), exc)) from None
    return path


def trainer_command(*args: str) -> list[str]:
    """The trainer's entry point with its arguments, as a process to start."""
    return [sys.executable, "-m", "mnist_tui.trainer", *args]


def _spawn(args: list[str], run_dir: Path, log_path: Path, place: Placement | None = None, slot: Slot | None = None) -> Launch:
    """Start `python -m mnist_tui.trainer <args>` detached, its output appended to log_path,
    in its place (threads, GPUs) and handed its slot (this process lets go of its own copy);
    a LaunchError (one line) if that log cannot be made: a read-only or full runs folder, a
    regular file where the folder should be."""
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if slot is not None:
            slot.release()
        raise LaunchError(_unwritable(log_path.parent, exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LaunchError(f"{log_path} is not a regular file")
        launch = Launch(run_dir, log_path, token=secrets.token_hex(8), since_ns=time.time_ns(), log_offset=os.fstat(fd).st_size)
        launch.process = subprocess.Popen(
            trainer_command(*args),
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: no controlling terminal, no SIGHUP, no Ctrl+C
            close_fds=True,
            pass_fds=(slot.fd,) if slot is not None and slot.fd is not None else (),
            env={**hardware.applied(os.environ, place.environment() if place else {}), LAUNCH_ENV: launch.token, **(slot.handed() if slot else {})},
        )
        return launch
    except BaseException:
        if slot is not None:
            slot.release()  # no trainer holds it
            slot = None
        raise
    finally:
        os.close(fd)
        if slot is not None:
            slot.close_here()  # the trainer holds the slot now, for its life


def _unwritable(folder: Path, exc: OSError) -> str:
    """'cannot write into DIR: Read-only file system', or what is in the folder's place."""
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                return f"cannot write into {folder}: {place} is a file, not a folder"
            break
    return f"cannot write into {folder}: {exc.strerror or exc}"


def processes_of(run_dir: Path) -> int:
    """How many processes a run was started on (1 if its config does not say)."""
    config = read_run(run_dir).config.get("config")
    n = config.get("processes") if isinstance(config, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_PROCESSES else 1


def _world(processes: int) -> list[str]:
    return ["--nproc", str(processes)] if processes > 1 else []


class Launcher(Protocol):
    """What starts a run's trainer for the app: ProcessLauncher, or a test's stand-in."""

    def train(self, config: TrainConfig, runs_dir: Path) -> Launch: ...

    def start(self, config: TrainConfig, runs_dir: Path, name: str, place: Placement | None = None, slot: Slot | None = None) -> Launch:
        """Start the new run `name`, admitted already (schedule.admit: its place and slot)."""
        ...

    def resume(self, run_dir: Path, data_dir: str | None, force: bool = False) -> Launch: ...


def start_new(config: TrainConfig, runs_dir: Path, name: str, place: Placement | None = None, slot: Slot | None = None) -> Launch:
    """Start a detached trainer of the new run `name`, in its place and handed its slot."""
    if place is not None:
        config = config.replace(threads=place.threads)
    try:
        handed = hand_over(config, runs_dir, name)
    except LaunchError:
        if slot is not None:
            slot.release()
        raise
    try:
        return _spawn([*_world(config.processes), str(handed), str(Path(runs_dir) / name)], Path(runs_dir) / name, starting_log(runs_dir, name), place, slot)
    except LaunchError:
        handed.unlink(missing_ok=True)
        raise


class ProcessLauncher:
    """Starts each run as a detached trainer process (what the app and `--detach` use), at
    once: beside trainers already live, it takes its share of the CPU's cores or a free GPU
    (trainer/schedule.py; queueing is the caller's choice, schedule.admit)."""

    def train(self, config: TrainConfig, runs_dir: Path) -> Launch:
        from mnist_tui.trainer.schedule import admit

        name = reserve_name(config.model)
        admitted = admit(runs_dir, config, name, "now")
        return self.start(config, runs_dir, name, admitted.placement, admitted.slot)

    def start(self, config: TrainConfig, runs_dir: Path, name: str, place: Placement | None = None, slot: Slot | None = None) -> Launch:
        return start_new(config, runs_dir, name, place, slot)

    def resume(self, run_dir: Path, data_dir: str | None, force: bool = False, processes: int | None = None) -> Launch:
        """Continue a run on `processes` processes (default: as many as it started with)."""
        from mnist_tui.trainer.schedule import resume_slot

        args = [*_world(processes or processes_of(run_dir)), "--resume", str(run_dir)]
        args += (["--data", data_dir] if data_dir else []) + (["--force"] if force else [])
        admitted = resume_slot(Path(run_dir))
        return _spawn(args, Path(run_dir), Path(run_dir) / LOG, admitted.placement if admitted else None, admitted.slot if admitted else None)
