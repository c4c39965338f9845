"""The trainer process: how a run is launched (detached or in this process) and how the
process that owns a run reacts to signals.

A detached trainer is `python -m mnist_tui train --config-json ... --run-name NAME` started
in a session of its own: no controlling terminal, so a closed terminal, a dropped SSH
connection or a quit TUI do not reach it. Its output goes to `trainer.log` in its run
folder (before the folder exists, to `<runs>/.<name>.log`). Clients (the TUI, `follow`,
`stop`) talk to it only through the run folder.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mnist_tui.core.config import TrainConfig
from mnist_tui.core.store.files import FileProblem, open_regular
from mnist_tui.core.store.lock import LAUNCH_ENV
from mnist_tui.core.store.records import TRAINER_LOG, starting_log

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
            said = [line for line in lines if line.startswith("mnist-tui: ")] or lines
            if said:
                return said[-1].removeprefix("mnist-tui: ")[:500]
        return f"the trainer ended without saying why{_no_space(self.log or self.run_dir / LOG)}"


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


DETACHED_ENV = "MNIST_TUI_DETACHED"  # set for a trainer started by ProcessLauncher


def _spawn(args: list[str], run_dir: Path, log_path: Path) -> Launch:
    """Start `python -m mnist_tui <args>` detached, its output appended to log_path; a
    LaunchError (one line) if that log cannot be made: a read-only or full runs folder, a
    regular file where the folder should be."""
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        raise LaunchError(_unwritable(log_path.parent, exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LaunchError(f"{log_path} is not a regular file")
        launch = Launch(run_dir, log_path, token=secrets.token_hex(8), since_ns=time.time_ns(), log_offset=os.fstat(fd).st_size)
        launch.process = subprocess.Popen(
            [sys.executable, "-m", "mnist_tui", *args],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: no terminal's SIGHUP, no Ctrl+C
            close_fds=True,
            env={**os.environ, DETACHED_ENV: "1", LAUNCH_ENV: launch.token},
        )
        return launch
    finally:
        os.close(fd)


def _unwritable(folder: Path, exc: OSError) -> str:
    """'cannot write into DIR: Read-only file system', or what is in the folder's place."""
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                return f"cannot write into {folder}: {place} is a file, not a folder"
            break
    return f"cannot write into {folder}: {exc.strerror or exc}"


class ProcessLauncher:
    """Starts each run as a detached trainer process (what the app and `--detach` use)."""

    def train(self, config: TrainConfig, runs_dir: Path) -> Launch:
        name = reserve_name(config.model)
        config = config.replace(runs_dir=str(runs_dir))
        args = ["train", "--config-json", json.dumps(config.to_dict()), "--run-name", name, "--runs", str(runs_dir)]
        return _spawn(args, Path(runs_dir) / name, starting_log(runs_dir, name))

    def resume(self, run_dir: Path, data_dir: str | None, force: bool = False, processes: int | None = None) -> Launch:
        args = ["resume", str(run_dir)] + (["--data", data_dir] if data_dir else []) + (["--force"] if force else [])
        args += ["--nproc", str(processes)] if processes else []
        return _spawn(args, Path(run_dir), Path(run_dir) / LOG)


class InProcessLauncher:
    """Runs the same engine, writer and lock in a thread of this process: for tests and
    benchmarks that must not pay a process start. Clients follow the folder either way."""

    def __init__(self) -> None:
        self.launches: list[Launch] = []

    def _start(self, run_dir: Path, events: Callable[[threading.Event], Iterable]) -> Launch:
        from mnist_tui.core.events import RunFailed

        launch = Launch(run_dir, stop_event=threading.Event())

        def consume() -> None:
            for ev in events(launch.stop_event):
                if isinstance(ev, RunFailed):
                    launch.error = ev.reason

        launch.thread = threading.Thread(target=consume, daemon=True, name=f"trainer {run_dir.name}")
        launch.thread.start()
        self.launches.append(launch)
        return launch

    def train(self, config: TrainConfig, runs_dir: Path) -> Launch:
        from mnist_tui.core.engine import train

        name = reserve_name(config.model)
        config = config.replace(runs_dir=str(runs_dir))
        return self._start(Path(runs_dir) / name, lambda stop: train(config, stop, run_name=name))

    def resume(self, run_dir: Path, data_dir: str | None, force: bool = False) -> Launch:
        from mnist_tui.core.engine import resume

        return self._start(Path(run_dir), lambda stop: resume(run_dir, stop, data_dir=data_dir, force=force))

    def join(self, timeout: float = 120.0) -> None:
        """Wait for every trainer this launcher started to end."""
        for launch in self.launches:
            if launch.thread is not None:
                launch.thread.join(timeout)


def handle_stop_signals(stop: threading.Event) -> None:
    """Ctrl+C and SIGTERM end the run after the current batch (a second Ctrl+C too, quietly).

    SIGHUP (a closed terminal, a dropped SSH session) stops a foreground run, unless it was
    ignored when the process started (`nohup`) or the process has no terminal (detached):
    then it stays ignored and the run goes on.
    """

    def handler(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    hup = getattr(signal, "SIGHUP", None)
    if hup is not None and signal.getsignal(hup) != signal.SIG_IGN:
        detached = os.environ.get(DETACHED_ENV) == "1"  # started by ProcessLauncher, terminal-less
        signal.signal(hup, signal.SIG_IGN if detached else handler)


def run_over() -> None:
    """The run is saved: a late Ctrl+C or SIGTERM (a second, impatient one) must not kill the
    process while it exits (Python restores the default handlers during finalization)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def adopt_starting_log(runs_dir: Path, run_dir: Path) -> None:
    """Move the log a detached trainer started into its run folder, once that exists."""
    try:
        os.replace(starting_log(runs_dir, run_dir.name), run_dir / LOG)
    except OSError:
        pass  # not detached, or nothing to move


def record_failed_start(runs_dir: Path, name: str, config: TrainConfig, reason: str) -> Path | None:
    """A detached trainer that fails before its run folder exists still leaves one, `failed`
    with the reason, so that whoever started it (and `mnist-tui runs`) can read why."""
    from mnist_tui.core.store import RunWriter

    try:
        writer = RunWriter.create(Path(runs_dir), config.model, {"config": config.to_dict(), "seed": config.seed}, name=name)
    except OSError:
        return None
    writer.close("failed", reason)
    adopt_starting_log(runs_dir, writer.path)
    return writer.path


def in_world() -> bool:
    """Whether this process is one of a distributed run's, started by torchrun."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def leader() -> bool:
    """Whether this process speaks for the run: rank 0, or a process on its own."""
    return os.environ.get("RANK", "0") == "0"


def run_world(nproc: int, rank_args: list[str], run_dir: Path) -> int:
    """Run `mnist_tui <rank_args>` on `nproc` processes of this machine through torchrun's
    launcher (standalone rendezvous), and settle the run once they have all ended: a
    process that died marks the run failed, naming its rank (the run resumes from its
    last checkpoint). Returns the exit status of the run, as a one-process trainer would."""
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # The cores split between the processes, said before torchrun would pick 1 per process.
    cores = os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(max(1, cores // nproc))
    if nproc > cores:
        print(f"mnist-tui: note: {nproc} processes share {cores} cores: each waits for the others (slower, same result)", file=sys.stderr)
    args = torchrun.get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "mnist_tui", *rank_args])
    died = None
    try:
        torchrun.run(args)
    except ChildFailedError as exc:
        died = _who_died(exc.failures)
    except SignalException:
        pass  # Ctrl+C or SIGTERM: the processes got it too, and stop after their batch
    return _settle(run_dir, died)


def _who_died(failures: dict) -> str:
    """The process that ended the run: one killed by a signal other than the launcher's
    SIGTERM, else one that exited with an error, else the first."""

    def how(code: int) -> str:
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"

    ranked = sorted(
        failures.items(), key=lambda item: (not (item[1].exitcode < 0 and item[1].exitcode != -signal.SIGTERM), item[1].exitcode in (0, 1, 130), item[0])
    )
    rank, failure = ranked[0]
    return f"rank {rank} {how(failure.exitcode)}"


def _settle(run_dir: Path, died: str | None) -> int:
    from mnist_tui.core.store import mark_failed, read_run

    if not (run_dir / "config.json").exists():
        if died:
            print(f"mnist-tui: failed: {died} before the run began", file=sys.stderr)
        return 1 if died else 130
    record = read_run(run_dir)
    if record.status in ("finished", "stopped"):
        return 0 if record.status == "finished" else 130
    if died and record.status in ("interrupted", "failed") and mark_failed(run_dir, f"{died}; its other processes were stopped"):
        from mnist_tui.present.text import command_name

        print(f"mnist-tui: failed: {died}; {command_name()} resume {record.run_id[-6:]} continues from epoch {record.epochs_done}", file=sys.stderr)
    return 1
