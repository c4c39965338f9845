"""What clients do to a run folder besides listing it: ask its trainer to stop, tell when a
trainer they launched has taken it over, delete it.

A folder is deleted only when it is provably a run: its files are a run's own (the README's
format table, and the temporary files of their atomic writes) and its config.json is in the
run format, or, for a run whose config.json is damaged, its name is one a trainer gives a
run. Anything else (a subfolder, a file of the user's, a folder that only holds a
config.json) is refused and left as it was: `delete PATH` must never erase a project.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from mnist_tui.core.store import files, schema
from mnist_tui.core.store.lock import LOCK, RunBusy, RunLock, held_by
from mnist_tui.core.store.records import CONFIG, RUN_FILES, STATUS, STOP, read_run

# trainer.reserve_name: UTC time, model, 6 hex digits (the short id)
RUN_NAME = re.compile(r"\d{8}T\d{6}Z-[A-Za-z0-9_.]+-[0-9a-f]{6}")
SHOWN = 3  # strangers named in a refusal


class NotARun(OSError):
    """A folder delete_run leaves alone because it is not provably a run; the message says
    why. An OSError, so that every caller that reports a failed delete reports this too."""


def request_stop(path: Path) -> None:
    """Ask the trainer of a live run to stop after its current batch (it watches this file)."""
    fd = os.open(Path(path) / STOP, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    os.close(fd)


def taken_over(path: Path, launch: str, since_ns: int) -> bool:
    """Whether the trainer launched with token `launch` (lock.LAUNCH_ENV) owns the run and has
    set it running since since_ns (time.time_ns() before it was launched): a resume writes
    that status only after every check that could refuse it, so until then it may refuse."""
    if not held_by(path, launch):
        return False
    try:
        written = os.stat(path / STATUS).st_mtime_ns
        status = schema.check_status_record(files.read_json_object(path / STATUS))
    except (OSError, files.FileProblem):
        return False
    return status["status"] == "running" and written >= since_ns


def _own(entry: os.DirEntry[str]) -> bool:
    """Whether a folder entry is a run's file, or a temporary file of one's atomic write
    (`.NAME.*.tmp`, files.write_atomic); a run file's name on an empty folder counts too (a
    damaged run's metrics.jsonl may be one: removing it loses nothing)."""
    name = entry.name
    ours = name in RUN_FILES or (name.endswith(".tmp") and any(name.startswith(f".{own}.") for own in RUN_FILES))
    if not ours or not entry.is_dir(follow_symlinks=False):
        return ours
    try:
        with os.scandir(entry.path) as inside:
            return next(inside, None) is None
    except OSError:
        return False


def _entries(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except OSError as exc:
        raise NotARun(f"{path} cannot be read ({exc.strerror or exc}); nothing was deleted") from None


def deletion_problem(path: Path) -> str | None:
    """Why `path` is not provably a run folder (and so is not deleted), or None if it is."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return f"{path} is not a run folder ({'a symbolic link' if path.is_symlink() else 'not a folder'}); nothing was deleted"
    try:
        strangers = sorted(e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in _entries(path) if not _own(e))
    except NotARun as exc:
        return str(exc)
    if strangers:
        named = ", ".join(strangers[:SHOWN]) + (f" and {len(strangers) - SHOWN} more" if len(strangers) > SHOWN else "")
        what = "is not a run's file" if len(strangers) == 1 else "are not a run's files"
        return f"{path} holds {named}, which {what}; nothing was deleted"
    try:
        schema.check_config_record(files.read_json_object(path / CONFIG))
    except files.FileProblem as exc:
        if not RUN_NAME.fullmatch(path.name):  # a damaged run named as trainers name runs may go
            return f"{path} is not a run folder ({exc}); nothing was deleted"
    return None


def busy_problem(path: Path, force: bool = False) -> str | None:
    """Why the run at `path` may not be deleted now: it trains, or (unless `force`) it was last
    seen training on another host; None if neither."""
    record = read_run(Path(path))
    if record.status == "running":
        return f"{record.run_id} is still training ({record.reason or 'its trainer holds the lock'}); stop it first"
    if record.status == "stale" and not force:
        return f"{record.run_id} was last seen training {record.reason.split(';')[0]}; add --force to delete it anyway"
    return None


def delete_run(path: Path, force: bool = False) -> None:
    """Remove a run folder: refused while it trains (a remote run only when stale and
    forced), and for a folder that is not provably a run (NotARun, see deletion_problem).
    Only the run's own files are removed, under its lock, then the folder itself."""
    path = Path(path)
    busy = busy_problem(path, force)
    if busy:
        raise RunBusy(busy)
    problem = deletion_problem(path)
    if problem:
        raise NotARun(problem)
    try:
        lock = RunLock.acquire(path, wait_s=0.2) if os.path.lexists(path / LOCK) else None
    except OSError:
        lock = None  # a lock that is no regular file (a planted symbolic link): nobody holds it
    try:
        _remove_own_files(path)
    finally:
        if lock is not None:
            lock.release()


def _remove_own_files(path: Path) -> None:
    """Unlink the run's files (the lock's last), then the folder; a file that turned up
    meanwhile is left, and so is the folder, with a message saying so."""
    entries = _entries(path)
    if not all(_own(e) for e in entries):
        raise NotARun(f"{path} changed while it was being deleted; nothing was deleted")
    for entry in sorted(entries, key=lambda e: e.name == LOCK):
        if entry.is_dir(follow_symlinks=False):
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)
    try:
        os.rmdir(path)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise NotARun(f"{path} gained files while it was being deleted; its run files are gone, the rest is left") from None
        raise
