"""Live trainers of a runs folder, one slot file each, and the queue's lock.

Both live in the user's cache folder, in a folder of each runs folder (`state_dir`): they
describe processes alive now, so a reboot may lose them, and the runs folder holds runs only.
Every trainer holds an exclusive flock on a slot file `slots/<host>-<pid>-<hex>.json` there
for its life; the file says which run it trains, on which device and GPUs, with how many
threads. The operating system drops the flock when the process ends however it ends (kill -9
included), so "live" means "locked", as for a run's own lock. A launcher makes the slot and
hands its descriptor to the trainer it starts (SLOT_ENV names it), so that the trainer counts
from the moment it is launched, before it has imported torch or made its run folder.

Decisions that read the slots and act on them (start a queued run, split the cores) are made
under the queue's lock (`queue.lock` there), so that two commands never decide at once.
Trainers are counted per runs folder, by one user: runs of another runs folder or another
user's trainers are not seen.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.core.paths import cache_dir
from mnist_tui.core.store import files
from mnist_tui.core.store.lock import flock_within

QUEUE_LOCK = "queue.lock"
SLOTS = "slots"
SLOT_ENV = "MNIST_TUI_SLOT"  # "<fd>:<path>": the slot a launcher handed this trainer
LOCK_WAIT_S = 30.0  # the queue's lock is held for milliseconds; past this something is wrong


class QueueBusy(OSError):
    """The queue's lock was not free within LOCK_WAIT_S."""


def state_dir(runs_dir: Path) -> Path:
    """The folder of a runs folder's live trainers and queue lock, in the user's cache."""
    try:
        key = str(Path(runs_dir).resolve())
    except (OSError, RuntimeError):
        key = str(Path(runs_dir).absolute())
    return cache_dir() / "trainers" / hashlib.sha256(key.encode()).hexdigest()[:20]


@contextlib.contextmanager
def queue_lock(runs_dir: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the runs folder's queue lock (made if missing) for the block."""
    folder = state_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / QUEUE_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        if not flock_within(fd, wait_s, pause_s=0.01):
            raise QueueBusy(f"the queue of {runs_dir} stayed locked for {wait_s:.0f} s")
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Live:
    """A live trainer as its slot file tells it (untrusted: odd fields read as unknown)."""

    run: str = ""
    device: str = "cpu"
    gpus: tuple[str, ...] = ()
    threads: int | None = None
    pid: int | None = None


def _held(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    return False


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31 else None


def _live(data: object) -> Live:
    """A slot's JSON as a Live; a field of the wrong type is left unknown, never raised."""
    if not isinstance(data, dict):
        return Live()
    run, device, gpus, threads, pid = (data.get(k) for k in ("run", "device", "gpus", "threads", "pid"))
    return Live(
        run=run[:200] if isinstance(run, str) else "",
        device=device if device in ("cpu", "cuda", "mps") else "cpu",
        gpus=tuple(g[:20] for g in gpus[:64] if isinstance(g, str)) if isinstance(gpus, list) else (),
        threads=_whole(threads),
        pid=_whole(pid),
    )


def _read_slot(path: Path, prune: bool) -> Live | None:
    """The slot's trainer if it is live; a dead one's file is removed when `prune`."""
    try:
        fd = files.open_regular(path)
    except files.FileProblem:
        return None
    try:
        if not _held(fd):
            if prune:
                path.unlink(missing_ok=True)
            return None
        try:
            return _live(files.parse_json(os.pread(fd, files.JSON_CAP, 0), path.name))
        except (files.FileProblem, OSError):
            return Live()  # live but unreadable: a trainer of the CPU, of no known run
    finally:
        os.close(fd)


def live_trainers(runs_dir: Path, prune: bool = False) -> list[Live]:
    """The trainers alive now; with `prune` (under the queue lock), dead slots are removed."""
    folder = state_dir(runs_dir) / SLOTS
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".json") and not e.name.startswith("."))
    except OSError:
        return []
    found = (_read_slot(folder / name, prune) for name in names)
    return [live for live in found if live is not None]


class Slot:
    """This process's (or its trainer's) hold on a slot; release() ends it."""

    def __init__(self, path: Path, fd: int | None):
        self.path = path
        self.fd = fd

    @classmethod
    def take(cls, runs_dir: Path, live: Live) -> Slot:
        """A new slot saying `live`, flocked by this process (call under the queue lock)."""
        folder = state_dir(runs_dir) / SLOTS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{socket.gethostname()[:64]}-{os.getpid()}-{secrets.token_hex(4)}.json"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)  # a new file's lock: nobody else can hold it
        body = {"run": live.run, "device": live.device, "gpus": list(live.gpus), "threads": live.threads, "pid": live.pid or os.getpid()}
        os.write(fd, json.dumps(body).encode())
        return cls(path, fd)

    @classmethod
    def inherited(cls) -> Slot | None:
        """The slot a launcher handed this process (SLOT_ENV), if its descriptor is still that
        file's: a variable left over from elsewhere names no slot."""
        given = os.environ.get(SLOT_ENV, "")
        fd_text, _, path = given.partition(":")
        if not fd_text.isdigit() or not path:
            return None
        fd = int(fd_text)
        try:
            mine, theirs = os.fstat(fd), os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
            return None
        return cls(Path(path), fd)

    def handed(self) -> dict[str, str]:
        """The environment that hands this slot to a child started with pass_fds=(fd,)."""
        return {SLOT_ENV: f"{self.fd}:{self.path}"}

    def release(self) -> None:
        """Let go of the slot: the file goes, then the lock (this trainer no longer counts)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None
        os.environ.pop(SLOT_ENV, None)

    def close_here(self) -> None:
        """Close this process's descriptor only (the trainer it was handed to holds it on)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
