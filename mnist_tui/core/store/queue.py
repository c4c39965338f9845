"""The run queue: runs recorded `queued`, started in order when their device is free.

A queued run is a run folder like any other (config.json, an empty metrics.jsonl, status.json
saying `queued`, no checkpoint), so listings, filters and delete treat it as they treat the
rest. Its place in the queue is `<runs>/.queue.json` ({"format": 1, "order": [run ids]}):
untrusted, so a damaged or missing file orders the queue by run id (their start time), and a
queued folder it does not name comes after those it does.

Nothing runs the queue but the commands and trainers themselves (trainer/schedule.py): when a
trainer ends, when a run is queued, and whenever `queue`, `runs` or `train` look, the first
queued run whose device is free is started, under the queue's lock. To start it, the folder is
set aside as `.claimed-<id>` (hidden) and its trainer makes the run folder anew, as any
detached trainer does; a trainer killed before it made it leaves the claimed folder, which
the next look puts back at the head of the queue.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.core import hardware
from mnist_tui.core.config import ConfigError, TrainConfig
from mnist_tui.core.store import files, schema
from mnist_tui.core.store.records import CONFIG, METRICS, STATUS, run_folders
from mnist_tui.core.store.trainers import Live

QUEUE_FILE = ".queue.json"
CLAIMED = ".claimed-"
QUEUED_FILES = (CONFIG, METRICS, STATUS)
MAX_ORDER = 100_000  # names kept from the order file; a longer list is someone else's


# --- where a run may start ---------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where a trainer starts: its share of the CPU's threads, its GPUs (none: no GPU is
    assigned, e.g. a CPU run), and whether other trainers live on this machine as it starts."""

    threads: int | None
    gpus: tuple[str, ...] = ()
    shared: bool = False

    def environment(self) -> dict[str, str | None]:
        """What the trainer's environment must say before torch loads (None: remove the
        variable; hardware.applied makes the changes)."""
        env = hardware.trainer_environment(self.threads, passive=self.shared)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env


def place(config: TrainConfig, live: list[Live], now: bool, cores: int | None = None, gpus: list[str] | None = None, sharing: bool = False) -> Placement | None:
    """Where a run of `config` starts beside the `live` trainers, or None if it must wait
    (`now`: never waits). A CPU run waits while another trains on the CPU, and with `now`
    takes its share of the cores; a GPU run takes free GPUs, one run per GPU (with `now` and
    none free, the least loaded ones); an MPS run waits for the other. It waits passively on
    the CPU where others share it: live trainers, its own ranks, or (`sharing`) the runs its
    starter starts beside it (a sweep's jobs)."""
    kind = hardware.device_kind(config.device, None if gpus is None else len(gpus))
    same = [t for t in live if t.device == kind]
    cores = hardware.cpu_cores() if cores is None else cores
    shared = bool(live) or config.processes > 1 or sharing  # others' threads on these cores: never spin
    if kind == "cpu":
        if same and not now:
            return None
        return Placement(hardware.thread_share(cores, len(same)), shared=shared)
    if kind == "mps":
        return None if same and not now else Placement(None, shared=shared)
    visible = hardware.visible_gpus() if gpus is None else gpus
    if not visible:
        return Placement(None, shared=shared)  # nothing to wait for: the trainer says there is no GPU
    busy = [g for t in same for g in t.gpus]
    free = hardware.free_gpus(visible, busy, config.processes)
    if free is None and not now:
        return None
    return Placement(None, tuple(free or hardware.least_used_gpus(visible, busy, config.processes)), shared)


# --- the queue's order ---------------------------------------------------------------------


def read_order(runs_dir: Path) -> list[str]:
    """The run ids `.queue.json` lists, in order; [] where it is missing or damaged (what it
    says is never trusted: only plain run ids are kept, each once)."""
    try:
        data = files.read_json_object(Path(runs_dir) / QUEUE_FILE)
    except files.FileProblem:
        return []
    order = data.get("order")
    if data.get("format") != 1 or not isinstance(order, list):
        return []
    kept: dict[str, None] = {}
    for name in order[:MAX_ORDER]:
        if isinstance(name, str) and _plain(name):
            kept.setdefault(name, None)
    return list(kept)


def _plain(name: str) -> bool:
    return 0 < len(name) <= 255 and "/" not in name and "\0" not in name and not name.startswith(".")


def _write_order(runs_dir: Path, order: list[str]) -> None:
    files.write_json_atomic(Path(runs_dir) / QUEUE_FILE, {"format": 1, "order": order})


def is_queued(run_dir: Path) -> bool:
    """Whether the folder's status.json says `queued` (a cheap look: never raises)."""
    try:
        data = files.read_bytes(Path(run_dir) / STATUS, 4096)
        return b"queued" in data and schema.check_status_record(files.parse_json(data, STATUS))["status"] == "queued"
    except (files.FileProblem, AttributeError, TypeError):
        return False


def pending(runs_dir: Path) -> bool:
    """Whether the queue may hold runs: its order file or a claimed folder is there (enqueue
    writes the one; the order file goes when the queue empties). A cheap look, for callers
    that run often (`runs`, every trainer's end)."""
    try:
        with os.scandir(runs_dir) as entries:
            return any(e.name == QUEUE_FILE or e.name.startswith(CLAIMED) for e in entries)
    except OSError:
        return False


def tidy(runs_dir: Path) -> None:
    """Remove the order file of an empty queue (call under the queue lock): a runs folder
    with nothing queued holds runs only."""
    if not queued_runs(runs_dir):
        with contextlib.suppress(OSError):
            (Path(runs_dir) / QUEUE_FILE).unlink()


def queued_runs(runs_dir: Path) -> list[Path]:
    """The queued run folders, in the order they will start."""
    order = read_order(runs_dir)
    rank = {name: i for i, name in enumerate(order)}
    queued = [p for p in run_folders(runs_dir) if is_queued(p)]
    return sorted(queued, key=lambda p: (rank.get(p.name, len(order)), p.name))


def run_config(run_dir: Path) -> TrainConfig | None:
    """A run's training config (config.json's config), or None where it cannot be read."""
    try:
        record = files.read_json_object(Path(run_dir) / CONFIG)
        schema.check_config_record(record)
        return TrainConfig.from_dict(record["config"])
    except (files.FileProblem, ConfigError, TypeError):
        return None


# --- changing the queue (each under the queue's lock: trainers.queue_lock) ----------------


def enqueue(runs_dir: Path, config: TrainConfig, name: str) -> Path:
    """Record a new run `name` as queued, last in the queue (call under the queue lock): the
    folder is made complete under a hidden name, then renamed into place."""
    import tempfile

    from mnist_tui.core.store.writer import now_iso

    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=runs_dir, prefix=".new-"))
    try:
        os.chmod(tmp, 0o755)
        record = {"format": schema.FORMAT_VERSION, "created": now_iso(), "config": config.to_dict(), "seed": config.seed, "device": config.device}
        files.write_json_atomic(tmp / CONFIG, record)
        files.write_atomic(tmp / METRICS, lambda fh: None)
        status = {"status": "queued", "epochs_done": 0, "updated": now_iso(), "pid": os.getpid(), "host": socket.gethostname()}
        files.write_json_atomic(tmp / STATUS, status)
        os.rename(tmp, runs_dir / name)
    except BaseException:
        _remove_queued(tmp)
        raise
    order = [p.name for p in queued_runs(runs_dir) if p.name != name]
    _write_order(runs_dir, [*order, name])
    return runs_dir / name


def move(runs_dir: Path, name: str, to: int) -> list[str]:
    """Put the queued run `name` at place `to` (1: next to start; past the end: last); the
    new order. LookupError if it is not queued."""
    order = [p.name for p in queued_runs(runs_dir)]
    if name not in order:
        raise LookupError(f"{name} is not queued")
    order.remove(name)
    order.insert(max(0, min(to - 1, len(order))), name)
    _write_order(runs_dir, order)
    return order


def _remove_queued(folder: Path) -> None:
    """Remove a queued (or claimed) folder: its own files, their temporaries, then itself; a
    stranger in it keeps the folder."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            ours = entry.name in QUEUED_FILES or (entry.name.startswith(".") and entry.name.endswith(".tmp"))
            if ours and not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)
        os.rmdir(folder)


def cancel(run_dir: Path) -> bool:
    """Remove a queued run (call under the queue lock); False if it is not queued (any more:
    it may have just been started)."""
    run_dir = Path(run_dir)
    if not is_queued(run_dir):
        return False
    _remove_queued(run_dir)
    order = [n for n in read_order(run_dir.parent) if n != run_dir.name]
    _write_order(run_dir.parent, order)
    return True


def claim(run_dir: Path) -> Path:
    """Set a queued run's folder aside for the trainer about to make it anew (call under the
    queue lock); the claimed folder's path."""
    claimed = Path(run_dir).parent / f"{CLAIMED}{Path(run_dir).name}"
    os.rename(run_dir, claimed)
    return claimed


def unclaim(runs_dir: Path, name: str, first: bool = True) -> None:
    """Put a claimed run back in the queue (its trainer never started it), at its head."""
    claimed = Path(runs_dir) / f"{CLAIMED}{name}"
    try:
        os.rename(claimed, Path(runs_dir) / name)
    except OSError:
        return
    order = [n for n in read_order(runs_dir) if n != name]
    _write_order(runs_dir, [name, *order] if first else [*order, name])


def forget_claim(runs_dir: Path, name: str) -> None:
    """The claimed folder of a run whose trainer has made its folder, failed or was stopped."""
    _remove_queued(Path(runs_dir) / f"{CLAIMED}{name}")


def recover(runs_dir: Path, live: list[Live]) -> None:
    """Settle claimed folders no live trainer works on (call under the queue lock): the run's
    folder is there (started) → the claim goes; it is not (its trainer was killed while
    starting) → the run is queued again, first."""
    training = {t.run for t in live}
    try:
        claimed = [e.name[len(CLAIMED) :] for e in os.scandir(runs_dir) if e.name.startswith(CLAIMED)]
    except OSError:
        return
    for name in claimed:
        if name in training or not _plain(name):
            continue
        if os.path.lexists(Path(runs_dir) / name):
            forget_claim(runs_dir, name)
        else:
            unclaim(runs_dir, name)
