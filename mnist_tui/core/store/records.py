"""Reading the run store: one record per run folder, never an exception for a bad one.

A run is keyed by its folder name, which is also the id `resume`, `stop` and `follow`
accept. Its status comes from status.json and the lock: a run whose status says `running`
is live while its lock is held, `interrupted` when the lock is free on this host, and,
when status.json names another host (whose lock cannot be seen from here), `running` until
its status.json has been silent for STALE_AFTER_S (heartbeat.py), then `stale`. A run
waiting in the run queue (queue.py) is `queued`: config.json and status.json, no checkpoint.
"""

from __future__ import annotations

import math
import os
import socket
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnist_tui.core.events import BatchPoint, EpochFinished
from mnist_tui.core.paths import resolve_dir
from mnist_tui.core.store import files, schema
from mnist_tui.core.store.heartbeat import is_stale, silent_for
from mnist_tui.core.store.lock import LOCK, is_locked
from mnist_tui.core.store.notes import NOTES, Notes, read_notes
from mnist_tui.core.store.provenance import CODE_DIFF

RUNS_ENV = "MNIST_TUI_RUNS"
CONFIG, METRICS, STATUS, CHECKPOINT, PROGRESS, STOP = "config.json", "metrics.jsonl", "status.json", "checkpoint.pt", "progress.json", "stop"
BATCHES = "batches.csv"  # the per-batch training curve (see read_points)
TRAINER_LOG = "trainer.log"  # what a detached trainer printed
# Every file a run folder may hold (the README's format table), besides the temporary files
# of their atomic writes (`.NAME.*.tmp`): delete_run removes a folder holding these only.
RUN_FILES = frozenset({CONFIG, METRICS, BATCHES, STATUS, CHECKPOINT, PROGRESS, STOP, LOCK, TRAINER_LOG, NOTES, CODE_DIFF})
BATCHES_HEADER = "epoch,batch,batches,loss,acc\n"
EXPORTS = "exports"  # <runs>/exports holds what the app exports; it is not a run
# Statuses `mnist-tui resume` continues (a failed run from its last checkpoint: a full disk,
# a process of a distributed run that died), and the same in words.
RESUMABLE = ("interrupted", "stopped", "failed")
RESUMABLE_WORDS = "interrupted, stopped or failed"
FINAL = ("finished", "stopped", "failed", "diverged")
CHECKPOINT_CAP = 1 << 30


def default_runs_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Runs folder: an explicit path, else $MNIST_TUI_RUNS, else the project's runs/."""
    return resolve_dir(explicit, RUNS_ENV, "runs")


def finite_sum(values: Iterable[float]) -> float:
    """A sum that stays a number: inf where the true sum passes the largest float (1e308 seconds
    an epoch, summed), never an OverflowError or NaN (the values are checked non-negative)."""
    total = 0.0
    for v in values:
        total += v
    return total if not math.isnan(total) else math.inf


def mean(values: list[float]) -> float | None:
    """The mean, divided before it is summed so that 1e308s average to 1e308, not inf."""
    return finite_sum(v / len(values) for v in values) if values else None


def _when(text: str) -> datetime | None:
    """An ISO 8601 time with its zone (config.json's created), else None."""
    try:
        when = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return when if when is not None and when.tzinfo else None


@dataclass
class RunRecord:
    """What a run's files say about it; `status` is `damaged` (with the reason) when they
    break the documented format."""

    path: Path
    status: str
    model: str = "?"
    created: str = ""
    epochs_total: int | None = None
    params: int | None = None
    device: str = ""
    world_size: int = 1  # processes that trained it together (torch.distributed)
    lr: float | None = None
    batch_size: int | None = None
    seed: int | None = None
    precision: str = ""
    train_size: int | None = None  # training images per epoch
    target: float | None = None  # the test accuracy it was to stop at (--target)
    study: str | None = None  # a sweep's trial: its study's name and its number there
    trial: int | None = None
    reason: str = ""
    host: str = ""
    heartbeat_age: float | None = None  # seconds since status.json was last written (None: unknown)
    updated: datetime | None = None  # when status.json was last written (a run's end once it ended)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: list[EpochFinished] = field(default_factory=list)  # metrics.jsonl, parsed once
    notes: Notes = field(default_factory=Notes)  # notes.json: the user's note and tags, read anew each time

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def host_is_remote(self) -> bool:
        """Whether status.json names another host (whose lock cannot be seen from here)."""
        return bool(self.host) and self.host != socket.gethostname()

    @property
    def epochs_done(self) -> int:
        return len(self.metrics)

    @property
    def final_test_acc(self) -> float | None:
        return self.metrics[-1].test_acc if self.metrics else None

    @property
    def best_test_acc(self) -> float | None:
        return max(m.test_acc for m in self.metrics) if self.metrics else None

    @property
    def best_epoch(self) -> EpochFinished | None:
        """The epoch of the best test accuracy (the first, if several tie)."""
        return max(self.metrics, key=lambda m: m.test_acc) if self.metrics else None

    @property
    def lowest_loss_epoch(self) -> EpochFinished | None:
        """The epoch of the lowest test loss (the first, if several tie)."""
        return min(self.metrics, key=lambda m: m.test_loss) if self.metrics else None

    @property
    def target_reached(self) -> EpochFinished | None:
        """The first epoch whose test accuracy reached the run's target, if it has one."""
        if self.target is None:
            return None
        return next((m for m in self.metrics if m.test_acc >= self.target), None)

    @property
    def epoch_seconds(self) -> float | None:
        """Mean seconds an epoch took (training and test pass)."""
        return mean([m.seconds for m in self.metrics])

    @property
    def images_per_s(self) -> float | None:
        """Mean training images per second over the epochs."""
        return mean([m.images_per_s for m in self.metrics])

    @property
    def seconds(self) -> float:
        """How long it trained: its epochs' seconds (inf past the largest float); before its
        first epoch ended, from its start (config.json's created) to status.json's last
        write (a run stopped in its first epoch took time too); 0 where neither says."""
        if self.metrics:
            return finite_sum(m.seconds for m in self.metrics)
        start = _when(self.created)
        if start is None or self.updated is None:
            return 0.0
        return max(0.0, (self.updated - start).total_seconds())


@dataclass(frozen=True)
class RunFiles:
    """What a run folder's files say, each checked against the schema: the raw config.json
    and status.json objects (kept to be shown and cached) and the fields readers use."""

    config: dict[str, Any]  # config.json as written
    cfg: dict[str, Any]  # its fields readers use (schema.check_config_record)
    status: dict[str, Any]  # status.json as written
    state: dict[str, Any]  # its fields (schema.check_status_record)
    metrics: list[EpochFinished]
    checkpoint_problem: str | None  # why checkpoint.pt cannot be used (None: it can)


def read_metrics(path: Path) -> list[EpochFinished]:
    return schema.parse_metrics(files.read_bytes(path / METRICS, files.METRICS_CAP))


def read_points(path: Path, offset: int = 0) -> tuple[list[BatchPoint], int, str]:
    """A run's per-batch training curve from byte `offset` on (0: the whole curve), the offset
    its complete lines end at, and why it stops short ("" if it does not): a run made before
    the curve was recorded has none, and a bad line ends the curve there, never the run's
    listing (nothing that lists runs reads this file)."""
    try:
        fd = files.open_regular(path / BATCHES)
    except files.FileProblem as exc:
        return [], offset, str(exc)
    with os.fdopen(fd, "rb") as fh:
        if os.fstat(fd).st_size > files.METRICS_CAP:
            return [], offset, f"{BATCHES} is too large"
        fh.seek(offset)
        data = fh.read(files.METRICS_CAP)
    complete = data[: data.rfind(b"\n") + 1]  # a last line without its newline is being written
    lines = complete.decode("utf-8", "replace").split("\n")[:-1]
    points: list[BatchPoint] = []
    if offset == 0:
        if not lines or lines[0] + "\n" != BATCHES_HEADER:
            return [], 0, f"{BATCHES} does not start with its header" if lines else ""
        lines, offset = lines[1:], len(BATCHES_HEADER)
    for line in lines:
        try:
            points.append(schema.check_point(line.split(",")))
        except schema.SchemaError as exc:
            return points, offset, f"{BATCHES}: {exc}, at point {len(points) + 1}"
        offset += len(line.encode()) + 1
    return points, offset, ""


def checkpoint_problem(path: Path) -> str | None:
    """Why a run's checkpoint cannot be used, judged without torch: torch.save writes a zip."""
    try:
        fd = files.open_regular(path / CHECKPOINT)
    except files.FileProblem as exc:
        return str(exc)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fd).st_size
        if size > CHECKPOINT_CAP:
            return f"{CHECKPOINT} is too large ({size:,} bytes)"
        try:
            complete = zipfile.is_zipfile(fh)
        except Exception:  # a crafted zip trailer can make zipfile raise what it likes
            complete = False
        if not complete:
            return f"{CHECKPOINT} is damaged (not a complete torch checkpoint)"
    return None


def _age(updated: datetime | None) -> float | None:
    return None if updated is None else max(0.0, (datetime.now(timezone.utc) - updated).total_seconds())


def _live_status(path: Path, status: dict[str, Any], holding_lock: bool) -> tuple[str, str, float | None]:
    """(status, reason, seconds since its heartbeat) once the lock and host are taken into
    account; a remote run's silence is judged by this reader (heartbeat.silent_for)."""
    state, reason, age = status["status"], status["reason"], _age(status["updated"])
    if state != "running" or (not holding_lock and is_locked(path)):
        return state, reason, age
    if not holding_lock:
        # The trainer may have written its final status and released the lock between our
        # reading status.json and looking at the lock: read it once more.
        try:
            status = schema.check_status_record(files.read_json_object(path / STATUS))
        except files.FileProblem:
            pass
        if status["status"] != "running":
            return status["status"], status["reason"], _age(status["updated"])
    if not status["host"] or status["host"] == socket.gethostname():
        return "interrupted", reason, age
    age = silent_for(path / STATUS)
    where = f"on host {status['host']}, last heartbeat {'?' if age is None else f'{age:.0f}s'} ago"
    if is_stale(age):
        return "stale", f"{where}; resume or delete it with --force if that machine is gone", age
    return "running", where, age


def read_files(path: Path) -> RunFiles:
    """A run folder's files, checked; FileProblem (or its SchemaError) names the first that
    breaks the documented format."""
    config = files.read_json_object(path / CONFIG)
    cfg = schema.check_config_record(config)
    status = files.read_json_object(path / STATUS)
    state = schema.check_status_record(status)
    return RunFiles(config, cfg, status, state, read_metrics(path), checkpoint_problem(path))


def record_of(path: Path, found: RunFiles, holding_lock: bool = False) -> RunRecord:
    """The record of a run from its checked files, with its status as of now (the lock, the
    host and the heartbeat's age are looked at again each time)."""
    cfg, metrics = found.cfg, found.metrics
    state, reason, age = _live_status(path, found.state, holding_lock)
    record = RunRecord(
        path=path,
        status=state,
        model=cfg["model"],
        created=cfg["created"],
        epochs_total=cfg["epochs"],
        params=cfg["params"],
        device=cfg["device"],
        world_size=cfg["world_size"],
        lr=cfg["lr"],
        batch_size=cfg["batch_size"],
        seed=cfg["seed"],
        precision=cfg["precision"],
        train_size=cfg["train_size"],
        target=cfg["target"],
        study=cfg["study"],
        trial=cfg["trial"],
        reason=reason,
        host=found.state["host"],
        heartbeat_age=age,
        updated=found.state["updated"],
        config=found.config,
        metrics=list(metrics),
        notes=read_notes(path),
    )
    # Finished epochs have checkpoints, except that a trainer killed between an epoch's
    # metrics line and its checkpoint leaves one line more (resume trains that epoch again).
    needs_checkpoint = len(metrics) > (1 if state in ("interrupted", "stale", "running", "failed") else 0)
    if needs_checkpoint and found.checkpoint_problem:
        record.status, record.reason = "damaged", found.checkpoint_problem
    elif lost := _lost_epochs(state, len(metrics), found.state["epochs_done"]):
        record.status, record.reason = "damaged", lost
    return record


def _lost_epochs(state: str, epochs: int, epochs_done: int | None) -> str | None:
    """Why metrics.jsonl cannot be all of an ended run's epochs, or None: the trainer wrote
    each epoch's line before the final status that counts them (a trainer killed mid-run
    wrote no final status, and a resume cuts the lines first, then writes its own)."""
    if state not in FINAL:
        return None
    if state == "finished" and not epochs:
        return f"{METRICS} holds no epoch, but the run finished"
    if epochs_done is not None and epochs_done > epochs:
        return f"{METRICS} holds {epochs} epoch{'s' if epochs != 1 else ''}, but {STATUS} says {epochs_done} were done"
    return None


def read_run(path: Path, holding_lock: bool = False) -> RunRecord:
    """Read one run folder; never raises for a damaged run, it says so in the record.

    holding_lock: the caller holds the run's lock (a resume), so no trainer can be alive."""
    path = Path(path)
    try:
        found = read_files(path)
    except files.FileProblem as exc:
        return RunRecord(path, "damaged", reason=str(exc))
    return record_of(path, found, holding_lock)


def run_folders(runs_dir: Path) -> list[Path]:
    """The run folders under runs_dir, oldest first (names start with a UTC timestamp)."""
    try:
        with os.scandir(runs_dir) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith(".") and e.name != EXPORTS and e.is_dir())
    except OSError:
        return []
    return [Path(runs_dir) / name for name in names]


def starting_log(runs_dir: Path, name: str) -> Path:
    """Where a detached trainer logs before its run folder exists (then it moves inside)."""
    return Path(runs_dir) / f".{name}.log"


def starting_runs(runs_dir: Path) -> list[str]:
    """Names of runs whose detached trainer is starting: its folder is not there yet."""
    try:
        logs = [p.name[1:-4] for p in Path(runs_dir).iterdir() if p.name.startswith(".") and p.name.endswith(".log")]
    except OSError:
        return []
    return [name for name in logs if not (Path(runs_dir) / name).exists()]


def find_run(runs_dir: Path, ref: str, starting: bool = False) -> Path:
    """A run folder from a path, a run id, or an unambiguous part of one (its short id);
    with `starting`, also a run whose detached trainer has not made its folder yet."""
    if not ref or not ref.strip():
        raise LookupError("no run given; name a run by its id, its short id (the 6 hex digits at its end) or its folder")
    if os.sep in ref and Path(ref).is_dir() and (Path(ref) / CONFIG).exists():
        return Path(ref).resolve()
    names = [p.name for p in run_folders(runs_dir)] + (starting_runs(runs_dir) if starting else [])
    matches = [n for n in names if n == ref] or [n for n in names if ref in n]
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise LookupError(f"{found} in {runs_dir} matches {ref!r}; give the run's folder, its id or its short id (the 6 hex digits at its end)")
    return Path(runs_dir) / matches[0]


def read_progress(path: Path) -> dict[str, Any] | None:
    """The live run's batch progress, or None if there is none or it is unreadable."""
    try:
        return schema.check_progress(files.read_json_object(path / PROGRESS))
    except files.FileProblem:
        return None


def changed_since(runs_dir: Path, stamp: float) -> float | None:
    """The newest modification time under runs_dir if it is newer than stamp, else None.

    Cheap enough to poll every second: it stats the folder and each run's status, metrics
    and notes files, without reading them (2,000 runs: about 25 ms).
    """
    try:
        newest = os.stat(runs_dir).st_mtime
        with os.scandir(runs_dir) as entries:
            folders = [e.path for e in entries]
    except OSError:
        return None
    for folder in folders:
        for name in (STATUS, METRICS, NOTES):
            try:
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
            except OSError:
                pass
    return newest if newest > stamp else None
