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
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

SWEEPS_DIR = ".sweeps"
SETUP = "mnist_tui"
BEST_TEST = "best_test"
RUN = "run"
HOST = "host"
SECONDS = "seconds"
FAILED_WHY = "failed_why"
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_POINTER_CAP = 64 * 1024


class SweepError(ValueError):
    """A sweep that cannot be opened or started; the message says why, in one line."""


def check_name(name: str) -> str:
    """`name` if it can name a study (and its files), else SweepError."""
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise SweepError("a study name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def sweeps_dir(runs_dir: Path) -> Path:
    return Path(runs_dir) / SWEEPS_DIR


def journal_path(runs_dir: Path, name: str) -> Path:
    """The embedded storage of study `name`."""
    return sweeps_dir(runs_dir) / f"{check_name(name)}.journal"


def open_storage(runs_dir: Path, name: str, url: str | None = None) -> optuna.storages.BaseStorage:
    """The storage study `name` lives in: the embedded journal when `url` is None, else what
    `url` names. SweepError when it cannot be opened."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    try:
        if url is None or not re.match(r"[a-z][a-z0-9+]*://", url):
            path = journal_path(runs_dir, name) if url is None else Path(url).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
        if url.startswith("redis://"):
            from optuna.storages.journal import JournalRedisBackend

            return JournalStorage(JournalRedisBackend(url))
        return optuna.storages.RDBStorage(url)
    except (OSError, ImportError, ValueError, RuntimeError) as exc:
        raise SweepError(f"cannot open the study's storage: {exc}") from exc
    except Exception as exc:  # a database driver's own errors (sqlalchemy's)
        raise SweepError(f"cannot open the study's storage: {type(exc).__name__}: {exc}") from exc


def remember(runs_dir: Path, name: str, url: str | None) -> None:
    """Record that study `name` is worked from this runs folder, and where it lives."""
    from mnist_tui.core.store import files

    folder = sweeps_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files.write_json_atomic(folder / f"{check_name(name)}.json", {"name": name, "storage": url})
    os.chmod(folder / f"{name}.json", 0o600)  # a database URL may hold a password


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
    storage = open_storage(runs_dir, name, url)
    try:
        return optuna.load_study(study_name=check_name(name), storage=storage)
    except KeyError as exc:
        raise SweepError(f"no study named {name}") from exc


def setup_of(study: optuna.Study) -> dict[str, Any]:
    """The sweep's settings as recorded (an empty dict for a study not made by mnist-tui or
    with a damaged record)."""
    setup = study.user_attrs.get(SETUP)
    return setup if isinstance(setup, dict) else {}
