"""Listing the run store fast: what each run folder's files said, kept until they change.

A listing of 2,000 runs would read 8,000 files, and most of them never change once a run has
ended. The index keeps each folder's checked files (records.RunFiles) with the signature of
the files they came from: (inode, size, mtime_ns, ctime_ns) of config.json, status.json,
metrics.jsonl and checkpoint.pt. A listing stats those files and reads a folder again only
when its signature differs; the status of each run is worked out anew every time (a live
run's lock, a remote run's heartbeat age).

The index lives in memory for a process's life and, for runs folders of INDEX_MIN_RUNS runs
or more, in a file in the user's cache folder, so that a fresh `mnist-tui runs` starts warm.
That file is untrusted input: every entry goes through the schema checks the run files go
through, and a bad entry costs a read of its folder, a bad file a rebuild. It is written to
a unique temporary name and renamed, and never in the runs folder (which holds runs only).

A file changed within RACY_NS of a listing is not remembered: a second change within the
filesystem's timestamp granularity could leave its signature as it was (git's "racily
clean" files). Such a folder is read again by the next listing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from mnist_tui.core.events import EpochFinished
from mnist_tui.core.paths import index_cache_dir
from mnist_tui.core.store import files, schema
from mnist_tui.core.store.records import CHECKPOINT, CONFIG, METRICS, STATUS, RunFiles, RunRecord, read_files, record_of, run_folders

INDEX_FORMAT = 1
INDEX_MIN_RUNS = 100  # below this a listing takes under 50 ms: no file is worth writing
INDEX_CAP = 1 << 28  # far above 2,000 runs of 100 epochs (about 30 MB)
RACY_NS = 2_000_000_000  # FAT's timestamps are 2 s apart; ext4's a few ms
SAVE_EVERY_S = 30.0  # a live run changes its folder each heartbeat: write the file at most this often
PRUNE_AFTER_S = 30 * 86400  # index files of runs folders unlisted for a month are removed
MEMORY_FOLDERS = 4  # runs folders whose index a process keeps in memory
NESTED_CAP = files.MAX_JSON_DEPTH - 4  # a config.json nested deeper is read each time (see _raw)
SIGNED = (CONFIG, STATUS, METRICS, CHECKPOINT)
METRIC_FIELDS = tuple(EpochFinished.__dataclass_fields__)  # a metrics row in the index, in this order

Signature = tuple[tuple[int, ...] | None, ...]
Entry = tuple[Signature, RunFiles | str]  # the files, or why the run is damaged

_memory: dict[str, dict[str, Entry]] = {}
_saved_at: dict[str, float] = {}
_listing = threading.Lock()  # the app's prefetch and the Runs screen list at once: the second waits and finds all known


def list_runs(runs_dir: Path) -> list[RunRecord]:
    """Every run under runs_dir, oldest first; a damaged run is listed as such, with why."""
    runs_dir = Path(runs_dir)
    folders = run_folders(runs_dir)
    key = _key(runs_dir)
    with _listing:
        known = _memory.pop(key, None)
        if known is None:
            known = load_index(runs_dir) if len(folders) >= INDEX_MIN_RUNS else {}
        kept: dict[str, Entry] = {}
        records = []
        start_ns = time.time_ns()
        for path in folders:
            sig = signature(path)
            entry = known.get(path.name)
            found = entry[1] if entry is not None and entry[0] == sig else _read(path)
            if not _racy(sig, start_ns):
                kept[path.name] = (sig, found)
            records.append(RunRecord(path, "damaged", reason=found) if isinstance(found, str) else record_of(path, found))
        _remember(key, kept)
        if len(folders) >= INDEX_MIN_RUNS and _differs(known, kept) and time.monotonic() - _saved_at.get(key, -SAVE_EVERY_S) >= SAVE_EVERY_S:
            _saved_at[key] = time.monotonic()
            save_index(runs_dir, kept)
    return records


def signature(folder: Path) -> Signature:
    """What identifies the content of a run folder's files without reading them (lstat: a
    file replaced by a symbolic link has a signature of its own, and reads as damaged)."""
    sig: list[tuple[int, ...] | None] = []
    for name in SIGNED:
        try:
            st = os.lstat(os.path.join(folder, name))
        except OSError:
            sig.append(None)
            continue
        sig.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(sig)


def _read(path: Path) -> RunFiles | str:
    try:
        return read_files(path)
    except files.FileProblem as exc:
        return str(exc)


def _racy(sig: Signature, start_ns: int) -> bool:
    return any(s is not None and max(s[2], s[3]) > start_ns - RACY_NS for s in sig)


def _differs(known: dict[str, Entry], kept: dict[str, Entry]) -> bool:
    return known.keys() != kept.keys() or any(known[name][0] != entry[0] for name, entry in kept.items())


def _remember(key: str, kept: dict[str, Entry]) -> None:
    _memory[key] = kept  # popped before the listing: now the most recent
    while len(_memory) > MEMORY_FOLDERS:
        del _memory[next(iter(_memory))]


def _key(runs_dir: Path) -> str:
    try:
        return str(runs_dir.resolve())
    except (OSError, RuntimeError):
        return str(runs_dir.absolute())


def index_path(runs_dir: Path) -> Path:
    """The index file of a runs folder, in the user's cache folder."""
    return index_cache_dir() / f"{hashlib.sha256(_key(runs_dir).encode()).hexdigest()[:20]}.json"


def load_index(runs_dir: Path) -> dict[str, Entry]:
    """The entries of runs_dir's index file that pass every check ({} without a usable file)."""
    try:
        path = index_path(runs_dir)
        data = files.parse_json(files.read_bytes(path, INDEX_CAP), path.name)
    except (files.FileProblem, OSError, RuntimeError):  # RuntimeError: no home folder
        return {}
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or data.get("runs_dir") != _key(runs_dir) or not isinstance(data.get("runs"), dict):
        return {}
    entries = {}
    for name, raw in data["runs"].items():
        try:
            entries[name] = _entry(raw)
        except (files.FileProblem, TypeError, ValueError, KeyError):
            continue  # this folder is read again
    return entries


def _entry(raw: Any) -> Entry:
    """One run's entry from the index file, checked as its files are."""
    sig = _signature(raw["sig"])
    if "damaged" in raw:
        return sig, _reason(raw["damaged"])
    config, status, rows, problem = raw["config"], raw["status"], raw["metrics"], raw["checkpoint"]
    if not isinstance(config, dict) or not isinstance(status, dict) or not isinstance(rows, list):
        raise ValueError("not an entry")
    metrics = [_metric(row, line) for line, row in enumerate(rows, start=1)]
    problem = None if problem is None else _reason(problem)
    if problem is not None and not problem.startswith(CHECKPOINT):  # records.checkpoint_problem names the file first
        raise ValueError("a checkpoint problem that names no checkpoint")
    return sig, RunFiles(config, schema.check_config_record(config), status, schema.check_status_record(status), metrics, problem)


def _reason(raw: Any) -> str:
    """Why a run is damaged, as the index keeps it: text that says something (a blank one
    would list a run damaged for no reason anyone could read)."""
    reason = schema.text(raw, "reason")
    if not reason.strip():
        raise ValueError("a blank reason")
    return reason


# Each metrics field's limits as schema.check_metric applies them: (low, high, whole, may be null).
_LIMITS = [
    (*schema.METRIC_RANGES[f], f in ("epoch", "epochs"), False) if f in schema.METRIC_RANGES else (0, schema.OPTIONAL_METRICS[f], False, True)
    for f in METRIC_FIELDS
]


def _metric(row: Any, line: int) -> EpochFinished:
    """A metrics row of the index: plain in-range numbers pass at once (2,000 runs' rows in a
    few ms); anything else goes to schema.check_metric, which accepts it or says why not."""
    if type(row) is list and len(row) == len(_LIMITS) and row[0] == line:
        for value, (low, high, whole, nullable) in zip(row, _LIMITS):
            kind = type(value)
            if value is None and nullable:
                continue
            if not (kind is int and -(2**63) <= value < 2**63 or kind is float and not whole and math.isfinite(value)) or not low <= value <= high:
                break
        else:
            return EpochFinished(*row)
    if not isinstance(row, list) or len(row) != len(METRIC_FIELDS):
        raise ValueError("a metrics row")
    return schema.check_metric(dict(zip(METRIC_FIELDS, row)), line)


def _signature(raw: Any) -> Signature:
    if not isinstance(raw, list) or len(raw) != len(SIGNED):
        raise ValueError("signature")
    sig: list[tuple[int, ...] | None] = []
    for item in raw:
        if item is not None and not (isinstance(item, list) and len(item) == 4 and all(type(n) is int for n in item)):
            raise ValueError("signature")
        sig.append(None if item is None else tuple(item))
    return tuple(sig)


def _raw(sig: Signature, found: RunFiles | str) -> dict[str, Any]:
    if isinstance(found, str):
        return {"sig": sig, "damaged": found}
    if files._depth(found.config, NESTED_CAP) > NESTED_CAP or files._depth(found.status, NESTED_CAP) > NESTED_CAP:
        raise ValueError("nests too deep for the index")  # the index nests them 3 levels down: its file would be refused
    return {
        "sig": sig,
        "config": found.config,
        "status": found.status,
        "metrics": [[getattr(m, f) for f in METRIC_FIELDS] for m in found.metrics],
        "checkpoint": found.checkpoint_problem,
    }


def save_index(runs_dir: Path, entries: dict[str, Entry]) -> None:
    """Write runs_dir's index file (atomically); a folder that cannot be written is skipped:
    the index only saves time."""
    runs: dict[str, Any] = {}
    for name, (sig, found) in entries.items():
        try:
            runs[name] = _raw(sig, found)
        except ValueError:  # nested too deep, or a number beyond float (1e999 reads as inf): read each time
            continue
    # dumps, not dump: json.dump streams through the pure-Python encoder, several times slower
    text = json.dumps({"format": INDEX_FORMAT, "runs_dir": _key(runs_dir), "runs": runs}, allow_nan=False, separators=(",", ":"))

    def dump(fh: TextIO) -> None:
        fh.write(text)

    try:
        path = index_path(runs_dir)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        files.write_atomic(path, dump)
        _prune(path.parent)
    except (OSError, RuntimeError):
        pass


def _prune(folder: Path) -> None:
    """Remove the index files not written for PRUNE_AFTER_S: those of test folders, moved or
    deleted ones (one of a folder that has not changed for a month costs a rebuild)."""
    cutoff = time.time() - PRUNE_AFTER_S
    for entry in os.scandir(folder):
        try:
            if entry.name.endswith(".json") and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
        except OSError:
            pass
