"""Where a sweep's Optuna study lives, what it records, and how to open it again.

A sweep is an Optuna study. With no --storage it is embedded in the runs folder, one journal
file per study (`.sweeps/NAME.journal`, file-locked, so several workers on one machine, or on
machines sharing the disk, work one study). `--storage` takes what Optuna takes: an RDB URL
(`sqlite:///…`, `postgresql://…`, `mysql://…`), a `redis://…` journal, or a path to a journal
file. Each study used from a runs folder is remembered there (`.sweeps/NAME.json`, untrusted
on read) so the listing and the app find it again.

What the study records (its user attributes, all JSON):

- study `SETUP` ("mnist_tui"): the sweep's fixed settings, a dict with `model`, `trials` (the
  count to reach), `epochs`, `limit`, `holdout`, `test_limit`, `metric`, `direction`
  ("maximize"/"minimize"), `precision`, `seed`, `space` (the search space as written by
  space.py), `pruner` (None, "median" or "hyperband").
- study `BEST_TEST` ("best_test"), set once at the end: {"trial": n, "run": folder name,
  "test_acc": %, "test_images": count} - the only time the test set is looked at.
- each trial `RUN` ("run"): the run folder's name, set as soon as the run is created;
  `HOST` ("host"): the machine whose worker drives it; `SECONDS` ("seconds"): its wall time.

Trial states are Optuna's: COMPLETE, PRUNED (ended early by the pruner; its run is tagged
`pruned`), FAIL (the run failed or diverged; `FAILED_WHY` says why), RUNNING.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_tui.core.config import MIN_SWEEP_HOLDOUT, NAME_RULE

if TYPE_CHECKING:
    import optuna

SWEEPS_DIR = ".sweeps"
SETUP = "mnist_tui"
BEST_TEST = "best_test"
RUN = "run"
HOST = "host"
SECONDS = "seconds"
FAILED_WHY = "failed_why"
PRUNED_AT = "pruned_at"  # the epoch at which the pruner stopped the trial's run (set before the stop)
USER_STOP = "stopped by the user"  # a FAILED_WHY: the trial does not count
BEYOND = "beyond the sweep's count"  # a FAILED_WHY: asked after the count was reached; does not count
_POINTER_CAP = 64 * 1024
TORN_LOOKS = 5  # looks, 0.2 s apart, at a journal's end before it is called torn


class SweepError(ValueError):
    """A sweep that cannot be opened or started; the message says why, in one line."""


def check_name(name: str) -> str:
    """`name` if it can name a study (and its files), else SweepError."""
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise SweepError("a study name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def counts_toward(state: str, failed_why: object) -> bool:
    """Whether a trial in Optuna's `state` (its name: COMPLETE, FAIL...) counts toward the
    sweep's target: all but waiting ones and failures its user or the count caused. The one
    rule the worker, the end of a sweep and the report count by."""
    if state == "FAIL":
        return failed_why not in (USER_STOP, BEYOND)
    return state != "WAITING"


def counted(frozen: optuna.trial.FrozenTrial) -> bool:
    return counts_toward(frozen.state.name, frozen.user_attrs.get(FAILED_WHY))


def holdout_problem(holdout: object) -> str | None:
    """Why `holdout` cannot be a sweep's (None when it can): a sweep scores its trials on
    held-out training images, never on the test set (holdout 0 scores on the test set)."""
    if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < MIN_SWEEP_HOLDOUT:
        return f"a sweep's holdout must be at least {MIN_SWEEP_HOLDOUT}: it is scored on held-out training images, never on the test set"
    return None


def holdout_ok(holdout: object) -> bool:
    return holdout_problem(holdout) is None


def run_folder(runs_dir: Path, run: object) -> Path | None:
    """The folder of a trial's run in the runs folder, or None when the recorded name
    cannot name one there (a path, '..', a hidden name: the study is untrusted)."""
    if not isinstance(run, str) or not run or len(run) > 255 or run.startswith(".") or Path(run).name != run or "\\" in run:
        return None
    return Path(runs_dir) / run


def sweeps_dir(runs_dir: Path) -> Path:
    return Path(runs_dir) / SWEEPS_DIR


def journal_path(runs_dir: Path, name: str) -> Path:
    """The embedded storage of study `name`."""
    return sweeps_dir(runs_dir) / f"{check_name(name)}.journal"


_URL = re.compile(r"[a-z][a-z0-9+]*://")


def is_url(storage: str | None) -> bool:
    """Whether a storage string is a URL (a database, redis), not a journal file's path."""
    return storage is not None and _URL.match(storage) is not None


def storage_of(given: str) -> str:
    """The --storage a user gave, as it is stored: a URL as given, a journal path made
    absolute. A path must look like one (absolute, ./, ~ or *.journal): a mistyped URL is
    refused in one line, never taken as a file in the current folder."""
    if is_url(given):
        return given
    looks_like_path = given.startswith(("/", "./", "../", "~")) or given.endswith(".journal")
    if not given or "@" in given or "//" in given or not looks_like_path:
        raise SweepError(f"--storage {given[:80]!r} is neither a URL (scheme://...) nor a journal file (an absolute path, ./NAME, ~/NAME or NAME.journal)")
    return str(Path(given).expanduser().absolute())


def _regular(path: Path, what: str, missing_ok: bool) -> None:
    """SweepError unless `path` is a regular file (a FIFO would block, a device never end);
    a missing one is refused too unless `missing_ok` (it is about to be made)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise SweepError(f"the study's {what} {path} is not a regular file")
    except FileNotFoundError:
        if not missing_ok:
            raise SweepError(f"the study's {what} {path} does not exist") from None


def _journal(path: Path, create: bool) -> optuna.storages.BaseStorage:
    """A journal file's storage; a reader (`create` False) opens only an existing regular file
    (a missing one would be made), a maker only a regular file or none."""
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    _regular(path, "journal", missing_ok=create)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def _torn(path: Path) -> bool:
    """Whether a journal's last record lacks its newline (without blocking on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # none yet, or not ours to read: opening it says why
    try:
        info = os.fstat(fd)
        return stat.S_ISREG(info.st_mode) and info.st_size > 0 and os.pread(fd, 1, info.st_size - 1) != b"\n"
    finally:
        os.close(fd)


def refuse_torn(runs_dir: Path, name: str, url: str | None) -> None:
    """SweepError when the study's journal file ends in a record cut short (a full disk, a
    power cut) and stays so for a second (another worker's record being written ends
    within it): a record appended would be glued onto the torn one, and the study never
    read again. Nothing to check for a database."""
    if url is not None and is_url(url):
        return
    path = journal_path(runs_dir, name) if url is None else Path(url).expanduser()
    for _ in range(TORN_LOOKS):
        if not _torn(path):
            return
        time.sleep(0.2)
    raise SweepError(f"the study's journal {path} is torn at its end (its last record was cut short): remove that last line to work the study again")


def _sqlite_file(url: str) -> Path | None:
    """The database file an sqlite URL names (None for an in-memory one)."""
    rest = url[len("sqlite:///") :].split("?", 1)[0] if url.startswith("sqlite:///") else ""
    return Path(rest) if rest else None


def _redis(url: str) -> optuna.storages.BaseStorage:
    import warnings

    import optuna
    from optuna.storages.journal import JournalRedisBackend, JournalStorage

    with warnings.catch_warnings():  # Optuna's ExperimentalWarning: our refusal is the one line
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return JournalStorage(JournalRedisBackend(url))


def open_storage(runs_dir: Path, name: str, url: str | None = None, create: bool = True) -> optuna.storages.BaseStorage:
    """The storage study `name` lives in: the embedded journal when `url` is None, else what
    `url` names. A reader passes `create` False: nothing is made (no file, no table).
    SweepError when it cannot be opened."""
    import optuna

    try:
        if url is None or not is_url(url):
            return _journal(journal_path(runs_dir, name) if url is None else Path(url).expanduser(), create)
        if url.startswith("redis://"):
            return _redis(url)
        database = _sqlite_file(url)
        if database is not None:
            _regular(database, "database", missing_ok=create)  # SQLite would make a missing one
        return optuna.storages.RDBStorage(url, skip_table_creation=not create)
    except SweepError:
        raise
    except (OSError, ImportError, ValueError, RuntimeError) as exc:
        raise SweepError(f"cannot open the study's storage: {exc}"[:400]) from exc
    except Exception as exc:  # a database driver's own errors (sqlalchemy's)
        raise SweepError(f"cannot open the study's storage: {type(exc).__name__}: {exc}"[:400]) from exc


def remember(runs_dir: Path, name: str, url: str | None) -> None:
    """Record that study `name` is worked from this runs folder, and where it lives."""
    from mnist_tui.core.store import files

    folder = sweeps_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # 0600 from its creation: a database URL may hold a password.
    files.write_json_atomic(folder / f"{check_name(name)}.json", {"name": name, "storage": url}, mode=0o600)


def known_studies(runs_dir: Path) -> list[tuple[str, str | None]]:
    """(name, storage URL or None for the embedded journal) of every study remembered in the
    runs folder, by name. A damaged pointer file is skipped; an embedded journal with no
    pointer is listed too."""
    from mnist_tui.core.store import files

    folder = sweeps_dir(runs_dir)
    found: dict[str, str | None] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    for path in entries:
        name = path.name.rsplit(".", 1)[0]
        if not NAME_RULE.fullmatch(name):
            continue
        if path.suffix == ".journal":
            found.setdefault(name, None)
        elif path.suffix == ".json":
            try:
                data = json.loads(files.read_bytes(path, _POINTER_CAP))
            except (OSError, ValueError, files.FileProblem):
                continue
            url = data.get("storage") if isinstance(data, dict) else None
            if isinstance(url, str) and url and len(url) < 4096:
                found[name] = url
            else:
                found.setdefault(name, None)
    return sorted(found.items())


def load(runs_dir: Path, name: str, url: str | None = None) -> optuna.Study:
    """The existing study `name` (SweepError if there is none)."""
    import optuna

    if url is None and not journal_path(runs_dir, name).is_file():
        raise SweepError(f"no study named {name} in {runs_dir}")
    storage = open_storage(runs_dir, name, url, create=False)
    try:
        return optuna.load_study(study_name=check_name(name), storage=storage)
    except KeyError as exc:
        raise SweepError(f"no study named {name}") from exc


def setup_of(study: optuna.Study) -> dict[str, Any]:
    """The sweep's settings as recorded (an empty dict for a study not made by mnist-tui or
    with a damaged record)."""
    setup = study.user_attrs.get(SETUP)
    return setup if isinstance(setup, dict) else {}
