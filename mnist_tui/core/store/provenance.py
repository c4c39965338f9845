"""config.json's `stamp`: where a run's code and environment came from, checked on read.

Made once at a run's start (core/stamp.py); optional (runs made before it lack it) and,
when present, checked on every read; a stamp that fails shows as unreadable, with why,
and costs its run nothing else. `code.diff`, beside it, is the
checkout's uncommitted change when the run started (when it was small enough to keep).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mnist_tui.core.store.schema import SchemaError, number, text

CODE_DIFF = "code.diff"
COMMIT = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # SHA-1, or SHA-256 repositories' 64
SHA256 = re.compile(r"[0-9a-f]{64}")
TEXTS = {"mnist_tui": 40, "python": 200, "torch": 80, "cuda": 40, "cudnn": 40, "cpu": 200, "cpu_flags": 4000, "gpu": 200, "git_problem": 500}


@dataclass(frozen=True)
class Git:
    """The checkout a run's code came from."""

    commit: str
    dirty: bool  # tracked files differed from the commit
    diff_sha256: str | None  # of `git diff HEAD` (None when clean)
    diff_bytes: int
    diff_saved: bool  # whether code.diff holds that diff


@dataclass(frozen=True)
class Stamp:
    """config.json's stamp, checked; text fields are "" where unknown."""

    mnist_tui: str
    python: str
    torch: str
    cuda: str
    cudnn: str
    cpu: str
    cpu_flags: str
    gpu: str
    git: Git | None  # None: not a git checkout, or git could not say (git_problem)
    git_problem: str


def _git(raw: Any) -> Git | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SchemaError("config.json's stamp.git is not an object")
    commit, dirty, sha = raw.get("commit"), raw.get("dirty"), raw.get("diff_sha256")
    if not isinstance(commit, str) or not COMMIT.fullmatch(commit):
        raise SchemaError("config.json's stamp.git.commit is not a commit hash")
    if not isinstance(dirty, bool) or not isinstance(raw.get("diff_saved", False), bool):
        raise SchemaError("config.json's stamp.git.dirty is not true or false")
    if sha is not None and not (isinstance(sha, str) and SHA256.fullmatch(sha)):
        raise SchemaError("config.json's stamp.git.diff_sha256 is not a sha256")
    size = int(number(raw.get("diff_bytes", 0), "config.json's stamp.git.diff_bytes", 0, 2**62, whole=True))
    return Git(commit, dirty, sha, size, bool(raw.get("diff_saved", False)))


def check_stamp(raw: Any, what: str = "stamp") -> Stamp:
    """config.json's stamp, checked (SchemaError names the first bad field)."""
    if not isinstance(raw, dict):
        raise SchemaError(f"config.json's {what} is not an object")
    fields = {}
    for key, cap in TEXTS.items():
        value = raw.get(key)
        fields[key] = "" if value is None else text(value, f"config.json's {what}.{key}", cap)
    return Stamp(git=_git(raw.get("git")), **fields)


def stamp_of(config: dict[str, Any]) -> tuple[Stamp | None, str]:
    """The stamp of a run's config.json as read, and why it cannot be read ("" when it can
    or the run has none): like notes.json, a bad stamp costs its run nothing but itself."""
    try:
        return (check_stamp(config["stamp"]), "") if config.get("stamp") is not None else (None, "")
    except SchemaError as exc:
        return None, str(exc)
