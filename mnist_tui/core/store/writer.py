"""Writing one run folder: only the trainer that holds the run's lock uses a RunWriter."""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import socket
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnist_tui.core.events import BatchPoint
from mnist_tui.core.store import checkpoint, files
from mnist_tui.core.store.lock import LOCK, RunBusy, RunLock
from mnist_tui.core.store.records import BATCHES, BATCHES_HEADER, CONFIG, METRICS, PROGRESS, STATUS, STOP, read_run
from mnist_tui.core.store.schema import FORMAT_VERSION

HEARTBEAT_S = 30.0  # status.json's `updated` is refreshed this often while training
STOP_POLL_S = 0.1  # how often the stop-request file is looked for


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SaveError(OSError):
    """A write into the run folder failed; the message says what is still intact."""


def _why(exc: BaseException, folder: Path) -> str:
    """'no space left on device', or the first line of what went wrong."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on device"
    try:
        if shutil.disk_usage(folder).free < (1 << 20):
            return "no space left on device"  # torch.save reports a full disk as a RuntimeError
    except OSError:
        pass
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return getattr(exc, "strerror", None) or message


class RunWriter:
    """Writes a run's files while it trains, under the run's lock: the training loop's
    sink (core/train/sink.py's RunSink) on the process that owns the run."""

    def __init__(self, path: Path, lock: RunLock, epochs_done: int = 0):
        self.path = path
        self.lock = lock
        self.epochs_done = epochs_done
        self.checkpoint_epoch = epochs_done
        self.status = "running"
        self._beat = 0.0
        self._stop_checked = 0.0

    @classmethod
    def create(cls, runs_dir: Path, model: str, record: dict[str, Any], name: str | None = None) -> RunWriter:
        """Make a new run folder, complete and locked, under `name` or a fresh unique name.

        The folder is written under a hidden temporary name and renamed into place, so a
        failure (a full disk, say) leaves no half-made run behind.
        """
        runs_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=runs_dir, prefix=".new-"))
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; runs are for others to read
        lock: RunLock | None = None
        try:
            lock = RunLock.acquire(tmp)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            writer = cls(tmp, lock)
            files.write_json_atomic(tmp / CONFIG, {"format": FORMAT_VERSION, "created": now_iso(), **record})
            files.write_atomic(tmp / METRICS, lambda fh: None)
            files.write_atomic(tmp / BATCHES, lambda fh: fh.write(BATCHES_HEADER))
            writer.set_status("running")
            while True:
                final = runs_dir / (name or f"{stamp}-{model}-{secrets.token_hex(3)}")
                try:
                    os.rename(tmp, final)  # refused if a folder of that name has files in it
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or name:
                        raise
        except BaseException:
            if lock is not None:
                lock.release()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        writer.path = lock.run_dir = final
        return writer

    @classmethod
    def reopen(cls, lock: RunLock, epochs_done: int) -> RunWriter:
        """Continue an existing run (its lock already held) from `epochs_done` epochs: metrics
        lines of later epochs (written before a crash could save their checkpoint) are
        dropped, and what a killed writer left behind is cleared."""
        path = lock.run_dir
        files.remove_stale_temporaries(path)
        (path / PROGRESS).unlink(missing_ok=True)
        lines = files.read_bytes(path / METRICS, files.METRICS_CAP).split(b"\n")[:epochs_done]
        files.write_atomic(path / METRICS, lambda fh: fh.write(b"".join(line + b"\n" for line in lines)), binary=True)
        _keep_points(path, epochs_done)
        writer = cls(path, lock, epochs_done)
        writer.set_status("running")
        return writer

    def update_record(self, **fields: Any) -> None:
        """Set fields of config.json (atomically), e.g. a resumed trainer's own warning."""
        record = files.read_json_object(self.path / CONFIG)
        if any(record.get(k) != v for k, v in fields.items()):
            files.write_json_atomic(self.path / CONFIG, {**record, **fields})

    def set_status(self, status: str, reason: str | None = None) -> None:
        data: dict[str, str | int] = {"status": status, "epochs_done": self.epochs_done, "updated": now_iso(), "pid": os.getpid(), "host": socket.gethostname()}
        if reason:
            data["reason"] = reason
        files.write_json_atomic(self.path / STATUS, data)
        self.status = status
        self._beat = time.monotonic()

    def heartbeat(self) -> None:
        """Refresh `updated` now and then while running, so readers elsewhere see it live."""
        if time.monotonic() - self._beat >= HEARTBEAT_S:
            self.set_status(self.status)

    def stop_requested(self) -> bool:
        """Whether a client asked this run to stop (`mnist-tui stop`, the TUI's Stop)."""
        now = time.monotonic()
        if now - self._stop_checked < STOP_POLL_S:
            return False
        self._stop_checked = now
        return os.path.lexists(self.path / STOP)

    def progress(self, fields: dict[str, Any]) -> None:
        """Replace progress.json (a few times a second at most; not fsynced: it is transient)."""
        body = json.dumps({**fields, "updated": time.time()})
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{PROGRESS}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(body)
            os.replace(tmp, self.path / PROGRESS)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass  # progress is best effort: the epoch's own save reports a full disk

    def _intact(self) -> str:
        if self.checkpoint_epoch:
            return f"the checkpoint of epoch {self.checkpoint_epoch} is intact"
        return "no checkpoint had been saved yet"

    def append_epoch(self, metrics: dict[str, Any]) -> None:
        epoch = metrics["epoch"]
        try:
            fd = files.open_regular(self.path / METRICS, os.O_WRONLY | os.O_APPEND)
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(metrics, allow_nan=False) + "\n")  # standard JSON: readers refuse NaN
                fh.flush()
                os.fsync(fh.fileno())
        except (OSError, files.FileProblem) as exc:
            raise SaveError(f"{_why(exc, self.path)} while saving epoch {epoch}; {self._intact()}") from None
        self.epochs_done = epoch

    def append_points(self, points: list[BatchPoint]) -> None:
        """Add points to the per-batch curve (batches.csv): not fsynced, as it is appended a
        few times a second; a crash may lose its last lines, never the epochs'."""
        if not points:
            return
        lines = "".join(f"{p.epoch},{p.batch},{p.batches},{p.loss:.6g},{p.acc:.4g}\n" for p in points)
        try:
            fd = files.open_regular(self.path / BATCHES, os.O_WRONLY | os.O_APPEND)  # made with the run
            with os.fdopen(fd, "w") as fh:
                fh.write(lines)
        except (OSError, files.FileProblem):
            pass  # the curve is best effort: the epoch's own save reports a full disk

    def save_checkpoint(self, ckpt: checkpoint.Checkpoint) -> None:
        try:
            checkpoint.save(self.path, ckpt)
        except (OSError, RuntimeError) as exc:
            raise SaveError(f"{_why(exc, self.path)} while saving epoch {ckpt.epoch}; {self._intact()}") from None
        self.checkpoint_epoch = ckpt.epoch

    def close(self, status: str, reason: str | None = None) -> None:
        """Record the final status (best effort on a failing disk), then release the lock."""
        try:
            self.set_status(status, reason)
        except OSError:
            pass  # the lock is released below, so readers show the run interrupted
        finally:
            for name in (PROGRESS, STOP):
                try:
                    (self.path / name).unlink(missing_ok=True)
                except OSError:
                    pass
            self.lock.release()


def _keep_points(path: Path, epochs_done: int) -> None:
    """Cut batches.csv back to the points of the first `epochs_done` epochs (a resume trains
    the rest again); a file that cannot be read starts over."""
    try:
        data = files.read_bytes(path / BATCHES, files.METRICS_CAP)
    except files.FileProblem:
        data = b""
    kept = [BATCHES_HEADER.encode()]
    for line in data.split(b"\n")[1:-1]:
        epoch = line.split(b",", 1)[0]
        if not epoch.isdigit() or int(epoch) > epochs_done:
            break
        kept.append(line + b"\n")
    files.write_atomic(path / BATCHES, lambda fh: fh.write(b"".join(kept)), binary=True)


__all__ = ["LOCK", "RunWriter", "SaveError", "now_iso"]


def mark_failed(run_dir: Path, reason: str) -> bool:
    """Record a run that is not training as failed, with the reason (what a launcher knows
    and the trainer could not say, e.g. which of its processes died); False if it is
    training again or cannot be written."""
    try:
        lock = RunLock.acquire(run_dir)
    except (RunBusy, OSError):
        return False
    try:
        epochs_done = read_run(run_dir, holding_lock=True).epochs_done
    except Exception:
        lock.release()
        return False
    RunWriter(run_dir, lock, epochs_done).close("failed", reason)
    return True
