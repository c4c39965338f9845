"""Safe file access for run folders: capped reads of regular files only, atomic unique writes.

Every file in a run folder may have been written by another process, another version, or a
person. Reads open the file without following a symlink and refuse anything but a regular
file (a FIFO would block, /dev/zero would never end); writes go to a uniquely named
temporary file created exclusively in the target folder, then renamed over the target.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal, TextIO, overload

# Caps on what a reader takes in: far above anything a real run writes.
JSON_CAP = 1 << 20  # config.json, status.json, progress.json
METRICS_CAP = 16 << 20  # metrics.jsonl: ~200 bytes an epoch
MAX_JSON_DEPTH = 32


class FileProblem(ValueError):
    """A file that cannot be used; the message names it and says why, in a user's words."""


def open_regular(path: Path, flags: int = os.O_RDONLY, follow: bool = False) -> int:
    """A file descriptor for a regular file at path, never to a FIFO or a device; through a
    symlink only with `follow` (a dataset may be linked in; run files never are)."""
    nofollow = 0 if follow else os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | nofollow | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileProblem(f"{path.name} is missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileProblem(f"{path.name} is a symbolic link, which is not followed") from None
        raise FileProblem(f"{path.name} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileProblem(f"{path.name} is not a regular file")
    return fd


def read_bytes(path: Path, cap: int) -> bytes:
    """The whole of a regular file of at most `cap` bytes."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > cap:
            raise FileProblem(f"{path.name} is too large ({size:,} bytes; at most {cap:,} expected)")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(size + 1)  # not cap + 1, a buffer of the cap each time (16 MiB a metrics.jsonl); +1 sees growth
    except OSError as exc:
        raise FileProblem(f"{path.name} cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > cap:
        raise FileProblem(f"{path.name} is too large (more than {cap:,} bytes)")
    return data


def _depth(value: Any, limit: int) -> int:
    """How deeply containers nest in a decoded JSON value (stops counting past limit)."""
    depth, level = 0, [value]
    while level and depth <= limit:
        level = [v for item in level for v in (item.values() if isinstance(item, dict) else item if isinstance(item, list) else ())]
        depth += 1
    return depth


def parse_json(text: str | bytes, name: str) -> Any:
    """Decoded JSON, refusing non-standard constants and deep nesting, as a FileProblem."""

    def no_constants(word: str) -> None:
        raise ValueError(word)

    try:
        value = json.loads(text, parse_constant=no_constants)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise FileProblem(f"{name} is not valid JSON") from None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise FileProblem(f"{name} nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def read_json_object(path: Path, cap: int = JSON_CAP) -> dict[str, Any]:
    """A JSON object from a regular file, or FileProblem saying plainly what is wrong."""
    value = parse_json(read_bytes(path, cap), path.name)
    if not isinstance(value, dict):
        raise FileProblem(f"{path.name} does not hold a JSON object")
    return value


@overload
def write_atomic(path: Path, write: Callable[[TextIO], object], binary: Literal[False] = False, mode: int = 0o644) -> None: ...
@overload
def write_atomic(path: Path, write: Callable[[BinaryIO], object], binary: Literal[True], mode: int = 0o644) -> None: ...


def write_atomic(path: Path, write: Callable[[Any], object], binary: bool = False, mode: int = 0o644) -> None:
    """Write through `write(fh)` into a unique temporary file beside path, then rename.

    mkstemp creates the file exclusively (O_EXCL), so a planted symlink is never followed; a
    failure removes the temporary file and leaves the old target as it was. The file has
    `mode` before anything is written to it (0o600 for one that may hold a secret).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; run and data files are for others to read
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomic(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    def dump(fh: TextIO) -> None:
        json.dump(data, fh, indent=2, allow_nan=False)
        fh.write("\n")

    write_atomic(path, dump, mode=mode)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files a killed writer left behind (only the owner of a folder may)."""
    for entry in folder.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            try:
                entry.unlink()
            except OSError:
                pass
