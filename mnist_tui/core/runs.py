"""The run store: one folder per run with JSON files any tool can read, and a checkpoint.

Layout of ``<runs>/<UTC timestamp>-<model>-<short id>/``:

- ``config.json``: written once at the start; ``format`` is FORMAT_VERSION.
- ``metrics.jsonl``: one JSON object per finished epoch, appended and flushed as it ends.
- ``status.json``: ``status`` (running, finished, stopped, failed, diverged), the pid and
  host of the training process, and ``updated``; rewritten atomically.
- ``checkpoint.pt``: model, optimizer and scheduler state after the last finished epoch,
  replaced atomically (write to a temporary file, then rename).

Reading runs needs only the JSON files; torch is imported only to save or load checkpoints.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mnist_tui.core.paths import resolve_dir

FORMAT_VERSION = 1
RESUMABLE = ("interrupted", "stopped")  # statuses `mnist-tui resume` continues
# Every metrics.jsonl line has at least these (see the README's format table).
METRIC_KEYS = ("epoch", "epochs", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_s")
RUNS_ENV = "MNIST_TUI_RUNS"
CONFIG, METRICS, STATUS, CHECKPOINT = "config.json", "metrics.jsonl", "status.json", "checkpoint.pt"


def default_runs_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Runs folder: an explicit path, else $MNIST_TUI_RUNS, else the project's runs/."""
    return resolve_dir(explicit, RUNS_ENV, "runs")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RunWriter:
    """Writes one run's folder while it trains. Only the training process uses it."""

    def __init__(self, path: Path):
        self.path = path
        self.epochs_done = 0
        self.status = "running"

    @classmethod
    def create(cls, runs_dir: Path, model: str, record: dict) -> "RunWriter":
        """Make a new, uniquely named run folder and write its config and status."""
        runs_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        while True:
            path = runs_dir / f"{stamp}-{model}-{secrets.token_hex(3)}"
            try:
                path.mkdir()  # exclusive: two processes never share a folder
                break
            except FileExistsError:
                continue
        writer = cls(path)
        _write_json_atomic(path / CONFIG, {"format": FORMAT_VERSION, "run_id": path.name, "created": _now(), **record})
        (path / METRICS).touch()
        writer.set_status("running")
        return writer

    @classmethod
    def reopen(cls, path: Path, epochs_done: int) -> "RunWriter":
        """Continue writing an existing run from `epochs_done` finished epochs: metrics of
        later epochs (written before a crash could save their checkpoint) are dropped."""
        writer = cls(Path(path))
        lines = (writer.path / METRICS).read_text().splitlines() if (writer.path / METRICS).exists() else []
        kept = [line for line in lines[:epochs_done]]
        tmp = writer.path / f".{METRICS}.tmp"
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, writer.path / METRICS)
        writer.epochs_done = epochs_done
        writer.set_status("running")
        return writer

    def set_status(self, status: str, reason: str | None = None) -> None:
        data = {
            "status": status,
            "epochs_done": self.epochs_done,
            "updated": _now(),
            "pid": os.getpid(),
            "pid_started": _process_started(os.getpid()),
            "host": socket.gethostname(),
        }
        if reason:
            data["reason"] = reason
        _write_json_atomic(self.path / STATUS, data)
        self.status = status
        self._beat = time.monotonic()

    def heartbeat(self, every_s: float = 30.0) -> None:
        """Refresh `updated` now and then while running, so readers elsewhere see it live."""
        if time.monotonic() - getattr(self, "_beat", 0.0) >= every_s:
            self.set_status(self.status)

    def append_epoch(self, metrics: dict) -> None:
        with open(self.path / METRICS, "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.epochs_done = metrics["epoch"]

    def save_checkpoint(self, state: dict) -> None:
        """Write to a temporary file and rename: a crash or a full disk mid-write leaves the
        previous checkpoint as it was."""
        import torch

        final = self.path / CHECKPOINT
        tmp = final.with_name(f".{CHECKPOINT}.tmp")
        try:
            torch.save(state, tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged, or refused as unsafe."""


def load_checkpoint(run_dir: Path, map_location: str = "cpu") -> dict:
    """A run's checkpoint, loaded with weights_only=True so it cannot run code."""
    import pickle

    import torch

    path = Path(run_dir) / CHECKPOINT
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(
            f"{path} was refused: it holds objects other than tensors and plain data, which could "
            f"run code when loaded (torch.load with weights_only=True). {first}"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path} is damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


@dataclass
class RunRecord:
    """What a run's JSON files say about it; `status` is `damaged` when they cannot be read."""

    path: Path
    run_id: str
    status: str
    model: str = "?"
    created: str = ""
    epochs_total: int | None = None
    params: int | None = None
    device: str = ""
    reason: str = ""
    config: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)

    @property
    def epochs_done(self) -> int:
        return len(self.metrics)

    @property
    def final_test_acc(self) -> float | None:
        return self.metrics[-1]["test_acc"] if self.metrics else None

    @property
    def best_test_acc(self) -> float | None:
        return max(m["test_acc"] for m in self.metrics) if self.metrics else None

    @property
    def seconds(self) -> float:
        return sum(m.get("seconds", 0.0) for m in self.metrics)


def _proc_stat(pid: int) -> list[str] | None:
    """Linux's /proc/<pid>/stat fields after the command name (field 3 onwards), if any."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_started(pid: int) -> str | None:
    """When a process started (Linux: clock ticks since boot), to tell a reused pid apart."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None  # field 22


def _process_gone(status: dict) -> bool:
    """True when the training process that wrote this status no longer exists here."""
    pid = int(status.get("pid", -1))
    if pid <= 0 or not _pid_alive(pid):
        return True
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return True
    started = status.get("pid_started")
    return started is not None and _process_started(pid) not in (None, started)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_metrics(path: Path) -> list[dict]:
    rows = []
    lines = path.read_text().splitlines() if path.exists() else []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # a line cut short by a crash mid-write: the epoch never finished
            raise ValueError(f"{METRICS} line {i + 1} is not valid JSON") from None
        missing = [k for k in METRIC_KEYS if k not in row] if isinstance(row, dict) else ["all"]
        if missing:
            raise ValueError(f"{METRICS} line {i + 1} lacks {', '.join(missing)}")
        rows.append(row)
    return rows


def _read_json(path: Path) -> dict:
    """A JSON object from a file, or ValueError saying plainly what is wrong with it."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path.name} is missing") from None
    except OSError as exc:
        raise ValueError(f"{path.name} cannot be read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{path.name} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} does not hold a JSON object")
    return data


def _checkpoint_problem(path: Path) -> str | None:
    """Why a run's checkpoint cannot be used, judged without torch: torch.save writes a zip."""
    import zipfile

    if not path.exists():
        return f"{CHECKPOINT} is missing"
    if not zipfile.is_zipfile(path):
        return f"{CHECKPOINT} is damaged (not a complete torch checkpoint)"
    return None


def read_run(path: Path) -> RunRecord:
    """Read one run folder; never raises for a damaged run, it says so in the record."""
    path = Path(path)
    try:
        cfg = _read_json(path / CONFIG)
        if cfg.get("format") != FORMAT_VERSION:
            return RunRecord(path, path.name, "damaged", reason=f"unknown format version {cfg.get('format')!r}")
        status = _read_json(path / STATUS)
        metrics = _read_metrics(path / METRICS)
    except ValueError as exc:
        return RunRecord(path, path.name, "damaged", reason=str(exc))
    state = status.get("status", "?")
    if state == "running" and status.get("host") == socket.gethostname() and _process_gone(status):
        state = "interrupted"
    if metrics and state != "running":
        problem = _checkpoint_problem(path / CHECKPOINT)
        if problem:
            return RunRecord(path, path.name, "damaged", model=cfg.get("config", {}).get("model", "?"), reason=problem, config=cfg, metrics=metrics)
    train_config = cfg.get("config", {})
    return RunRecord(
        path=path,
        run_id=cfg.get("run_id", path.name),
        status=state,
        model=train_config.get("model", "?"),
        created=cfg.get("created", ""),
        epochs_total=train_config.get("recipe", {}).get("epochs"),
        params=cfg.get("params"),
        device=cfg.get("device_name", cfg.get("device", "")),
        reason=status.get("reason", ""),
        config=cfg,
        metrics=metrics,
    )


def list_runs(runs_dir: Path) -> list[RunRecord]:
    """Every run under runs_dir, oldest first (folder names start with a UTC timestamp)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return [read_run(p) for p in sorted(runs_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def find_run(runs_dir: Path, ref: str) -> Path:
    """A run folder from a path, a run id, or an unambiguous part of one (its short id)."""
    if Path(ref).is_dir() and (Path(ref) / CONFIG).exists():
        return Path(ref)
    runs_dir = Path(runs_dir)
    names = [p.name for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.is_dir() else []
    matches = [n for n in names if n == ref] or [n for n in names if ref in n]
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise LookupError(f"{found} in {runs_dir} matches {ref!r}; give the run's folder or its full id")
    return runs_dir / matches[0]


class RunBusy(RuntimeError):
    """The run's training process is still alive."""


def delete_run(path: Path) -> None:
    """Remove a run folder; refuses while its training process is alive."""
    import shutil

    record = read_run(path)
    if record.status == "running":
        raise RunBusy(f"{record.run_id} is still training; stop it first")
    shutil.rmtree(path)


def changed_since(runs_dir: Path, stamp: float) -> float | None:
    """The newest modification time under runs_dir if it is newer than stamp, else None.

    Cheap enough to poll every second: it stats the folder and each run's status and
    metrics files, without reading them.
    """
    runs_dir = Path(runs_dir)
    try:
        newest = runs_dir.stat().st_mtime
        for run in runs_dir.iterdir():
            for name in (STATUS, METRICS):
                try:
                    newest = max(newest, (run / name).stat().st_mtime)
                except OSError:
                    pass
    except OSError:
        return None
    return newest if newest > stamp else None
