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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mnist_tui.core.paths import resolve_dir

FORMAT_VERSION = 1
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

    def set_status(self, status: str, reason: str | None = None) -> None:
        data = {
            "status": status,
            "epochs_done": self.epochs_done,
            "updated": _now(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        if reason:
            data["reason"] = reason
        _write_json_atomic(self.path / STATUS, data)
        self.status = status

    def append_epoch(self, metrics: dict) -> None:
        with open(self.path / METRICS, "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.epochs_done = metrics["epoch"]

    def save_checkpoint(self, state: dict) -> None:
        import torch

        final = self.path / CHECKPOINT
        tmp = final.with_name(f".{CHECKPOINT}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, final)


def load_checkpoint(run_dir: Path, map_location: str = "cpu") -> dict:
    """A run's checkpoint, loaded with weights_only=True so it cannot run code."""
    import torch

    return torch.load(Path(run_dir) / CHECKPOINT, map_location=map_location, weights_only=True)


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
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # a line cut short by a crash mid-write: the epoch never finished
            raise ValueError(f"{METRICS} line {i + 1} is not valid JSON") from None
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
    if state == "running" and status.get("host") == socket.gethostname() and not _pid_alive(int(status.get("pid", -1))):
        state = "interrupted"
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
