"""The run lock: the trainer that owns a run folder holds an exclusive flock on its lock file.

The operating system releases the lock when the process ends, however it ends (Ctrl+C,
kill -9, a crash, a closed terminal), so "running" means "locked" and nothing has to guess
from process ids. Readers test the lock without taking it for longer than a moment. flock
locks belong to one machine: on a disk shared between hosts another host's lock is not seen
(see `status.json`'s host and heartbeat for that case).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK = "lock"
# Set by whoever launched this trainer (trainer.ProcessLauncher) to a token of its own, which
# the lock records: the launcher can then tell its own trainer's hold on a run from another's
# (a second `resume --detach` of a run that a first one has just taken over).
LAUNCH_ENV = "MNIST_TUI_LAUNCH"


def flock_within(fd: int, wait_s: float, pause_s: float = 0.02) -> bool:
    """Take an exclusive flock on fd, retrying for up to wait_s (a reader's shared test of it
    lasts a moment); False when it stayed held. Errors other than "held" are raised."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause_s)


class RunBusy(RuntimeError):
    """Another process holds the run's lock; the message names it."""


def _written(run_dir: Path) -> dict[str, object]:
    """What the lock file says of its holder ({} when it says nothing readable)."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            info = json.loads(os.read(fd, 4096) or b"{}")
        finally:
            os.close(fd)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def holder(run_dir: Path) -> str:
    """Who holds (or last held) the lock, in words: 'pid 123 on host gpu-1'."""
    info = _written(run_dir)  # a lock file is untrusted too: anything odd names no one
    pid, host = info.get("pid"), info.get("host")
    if isinstance(pid, int) and not isinstance(pid, bool) and isinstance(host, str):
        return f"pid {pid} on host {host[:64]}"
    return "another process"


def held_by(run_dir: Path, launch: str) -> bool:
    """Whether the trainer launched with this token (LAUNCH_ENV) holds the run's lock now."""
    return bool(launch) and is_locked(run_dir) and _written(run_dir).get("launch") == launch


def is_locked(run_dir: Path) -> bool:
    """True while a trainer holds the run's lock (on this machine)."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False  # no lock file: nobody has ever trained it under a lock
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)  # releases the shared lock at once
    return False


class RunLock:
    """An exclusive lock on one run folder, held until release() or the process ends."""

    def __init__(self, run_dir: Path, fd: int):
        self.run_dir = run_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run_dir: Path, wait_s: float = 1.0) -> RunLock:
        """Take the lock, or raise RunBusy naming its holder.

        Readers take a shared lock for a moment to test it, so a free lock may be briefly
        refused: retry for up to wait_s before deciding someone else owns the run.
        """
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            taken = flock_within(fd, wait_s)
        except OSError:
            os.close(fd)
            raise
        if not taken:
            os.close(fd)
            raise RunBusy(f"{run_dir.name} is being trained by {holder(run_dir)}")
        try:
            os.ftruncate(fd, 0)
            launch = {"launch": os.environ[LAUNCH_ENV]} if os.environ.get(LAUNCH_ENV) else {}
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), **launch}).encode(), 0)
        except OSError:
            pass  # who holds it is information only; holding it is what counts
        return cls(run_dir, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
