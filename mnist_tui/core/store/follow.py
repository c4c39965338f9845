"""Following a run from outside its trainer: the run folder turned back into engine events.

The TUI's Train screen and `mnist-tui follow` are clients: they poll the folder a few times a
second and get the same typed events the engine yields in the trainer (RunStarted once,
BatchProgress from progress.json, EpochFinished per metrics line, then RunFinished or
RunFailed once the run has ended), so both show a detached run exactly as a local one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mnist_tui.core.config import ConfigError
from mnist_tui.core.events import BatchPoint, BatchProgress, Event, RunFailed, RunFinished, RunStarted, run_started
from mnist_tui.core.store.records import BATCHES, CONFIG, METRICS, PROGRESS, STATUS, RunRecord, read_points, read_progress, read_run

WAIT_FOR_FOLDER_S = 120.0  # a detached trainer imports torch and loads MNIST before its folder appears
LIVENESS_S = 2.0  # how often the lock is looked at when no file has changed


def folder_to_come(run_dir: Path) -> bool:
    """Whether a run's folder is yet to appear: its detached trainer is still starting.

    A trainer writes its folder under a hidden name, config.json and all, and renames it into
    place (RunWriter.create), and a resume starts from a folder that is there: a folder that
    is there without config.json is damaged, never starting, and the listing says so."""
    return not os.path.lexists(run_dir)


class Follower:
    """Turns a run folder's changes into events; call poll() a few times a second."""

    def __init__(self, run_dir: Path, wait_for_folder_s: float = WAIT_FOR_FOLDER_S, since_ns: int = 0):
        """since_ns: an ending written before this time (time.time_ns()) is an earlier
        trainer's, not the one just launched to resume the run: wait for the new one."""
        self.run_dir = Path(run_dir)
        self.since_ns = since_ns
        self.done = False
        self.started = False
        self.epochs_seen = 0
        self._deadline = time.monotonic() + wait_for_folder_s
        self._stamps: dict[str, tuple[int, int] | None] = {}
        self._last_full = 0.0
        self._points_at: tuple[int, int] = (0, 0)  # batches.csv's inode and the offset read up to

    def _changed(self, name: str) -> bool:
        try:
            st = os.stat(self.run_dir / name)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        changed = self._stamps.get(name, ()) != stamp
        self._stamps[name] = stamp
        return changed

    def poll(self) -> list[Event]:
        """The events since the last poll (at most one RunFinished/RunFailed, then done)."""
        if self.done:
            return []
        if folder_to_come(self.run_dir):
            if time.monotonic() > self._deadline:
                self.done = True
                return [RunFailed(f"{self.run_dir.name} did not appear: its trainer did not start", None)]
            return []
        status_changed = self._changed(STATUS)
        metrics_changed = self._changed(METRICS)
        progress_changed = self._changed(PROGRESS)
        # A trainer killed with -9 changes no file: its lock alone says so, looked at now and then.
        look_again = time.monotonic() - self._last_full >= LIVENESS_S
        if self.started and not (status_changed or metrics_changed or look_again):
            return self._progress() if progress_changed else []
        self._last_full = time.monotonic()
        record = read_run(self.run_dir)
        events: list[Event] = []
        if record.status == "damaged":
            self.done = True
            return [RunFailed(record.reason, self.run_dir, "damaged")]
        if not self.started:
            self.started = True
            started = self._started(record)
            if isinstance(started, RunFailed):
                self.done = True
                return [started]
            if record.config.get("train_size") is not None:  # a trainer that failed to start set up nothing to show
                events.append(started)
        if len(record.metrics) < self.epochs_seen:  # a resume dropped an unsaved epoch: start over
            self.started, self.epochs_seen, self._points_at = False, 0, (0, 0)
            return self.poll()
        events.extend(record.metrics[self.epochs_seen :])
        self.epochs_seen = len(record.metrics)
        if record.status == "running":
            return events + (self._progress() if progress_changed else [])
        status_stamp = self._stamps.get(STATUS)
        if status_stamp is not None and status_stamp[0] < self.since_ns:
            return events  # the launched trainer has not taken the run over yet
        self.done = True
        events.append(_ending(record))
        return events

    def new_points(self) -> tuple[list[BatchPoint], bool]:
        """The per-batch curve's points written since the last call, and whether the curve
        started over (a resume rewrote it: drop the points had so far)."""
        try:
            inode = os.stat(self.run_dir / BATCHES).st_ino
        except OSError:
            return [], False
        known, offset = self._points_at
        restart = inode != known and offset > 0
        points, offset, _problem = read_points(self.run_dir, 0 if inode != known else offset)
        self._points_at = (inode, offset)
        return points, restart

    def _progress(self) -> list[Event]:
        """The batch progress of the epoch under way, if progress.json is about it."""
        progress = read_progress(self.run_dir)
        if progress is None or progress["epoch"] != self.epochs_seen + 1:
            return []
        return [BatchProgress(**progress)]

    def _started(self, record: RunRecord) -> RunStarted | RunFailed:
        try:
            return run_started(self.run_dir, record.config)
        except (ConfigError, TypeError, ValueError, OverflowError) as exc:
            return RunFailed(f"{CONFIG} cannot be followed: {exc}", self.run_dir, "damaged")


def _ending(record: RunRecord) -> Event:
    """The event that ends a followed run, from its record's final status."""
    accs = [m.test_acc for m in record.metrics]
    if record.status in ("finished", "stopped"):
        final, best = (accs[-1], max(accs)) if accs else (None, None)
        return RunFinished(record.path, record.status, record.epochs_done, final, best, record.seconds, record.target, record.target_reached)
    if record.status == "interrupted":
        reason = f"its trainer ended without saving a status (killed?); `mnist-tui resume {record.run_id[-6:]}` continues it"
        return RunFailed(reason, record.path, "interrupted")
    return RunFailed(record.reason or record.status, record.path, record.status)
