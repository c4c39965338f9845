"""The documented schema of each run file, checked on every read.

Anything a reader uses is checked here for type, finiteness and range; a file that fails
makes its run `damaged` with the reason (SchemaError), never a crash further on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar, get_args

from mnist_tui.core.config import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_IMAGES, MAX_SEED, MAX_TRIAL, NAME_RULE
from mnist_tui.core.events import BatchPoint, EpochFinished
from mnist_tui.core.store.files import FileProblem, parse_json

FORMAT_VERSION = 1
# What status.json may say (queued: waiting in the run queue, store/queue.py); readers add
# interrupted, stale and damaged (see records.py).
WrittenStatus = Literal["queued", "running", "finished", "stopped", "failed", "diverged"]
WRITTEN_STATUSES: tuple[str, ...] = get_args(WrittenStatus)
Status = Literal["queued", "running", "finished", "stopped", "failed", "diverged", "interrupted", "stale", "damaged"]
# Every metrics.jsonl line has these numbers (see the README's format table).
# Settings are read with the bounds validate.py enforces when a run starts (config.py's MAX_*).
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "epoch": (1, MAX_EPOCHS),
    "epochs": (1, MAX_EPOCHS),
    "train_loss": (0, math.inf),
    "train_acc": (0, 100),
    "test_loss": (0, math.inf),
    "test_acc": (0, 100),
    "lr": (0, math.inf),
    "seconds": (0, math.inf),
    "images_per_s": (0, math.inf),
}
METRIC_KEYS = tuple(METRIC_RANGES)
# Numbers a line may have (null or absent where unknown), with their highest value.
OPTIONAL_METRICS = {"memory_mb": math.inf, "cpu_seconds": math.inf, "cpu_percent": 1e5, "rss_mb": math.inf, "gpu_util": 100, "elapsed": math.inf}
PROGRESS_USAGE = ("cpu_percent", "rss_mb", "gpu_util", "gpu_memory_mb")
TEXT_CAP = 2000  # longest text field kept (a reason, a device name)
MAX_PID = 2**31 - 1  # process ids are below 2^31 (pid_t is a 32-bit int)
T = TypeVar("T")


class SchemaError(FileProblem):
    """A run file whose content breaks the documented schema."""


def number(value: Any, what: str, low: float = -math.inf, high: float = math.inf, whole: bool = False) -> float:
    """A finite int or float within [low, high] (bools and numeric strings are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{what} is not a number ({type(value).__name__})")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise SchemaError(f"{what} is out of range")
    if whole and not isinstance(value, int):
        raise SchemaError(f"{what} is not a whole number")
    if not math.isfinite(value) or not low <= value <= high:
        raise SchemaError(f"{what} is out of range ({value!r:.40})")
    return value


def text(value: Any, what: str, cap: int = TEXT_CAP) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{what} is not text ({type(value).__name__})")
    return value[:cap]


def optional(data: dict[str, Any], key: str, check: Callable[..., T], *args: Any, default: T | None = None, **kwargs: Any) -> T | None:
    """data[key] checked by `check` when present and not null, else default."""
    value = data.get(key)
    return default if value is None else check(value, f"{key}", *args, **kwargs)


def check_config_record(cfg: dict[str, Any]) -> dict[str, Any]:
    """The fields of config.json that readers use, checked; returns them normalised."""
    if cfg.get("format") != FORMAT_VERSION:
        raise SchemaError(f"unknown format version {str(cfg.get('format'))[:20]} (this mnist-tui reads {FORMAT_VERSION})")
    train = cfg.get("config")
    if not isinstance(train, dict):
        raise SchemaError("config.json's config is not an object")
    recipe = train.get("recipe")
    if not isinstance(recipe, dict):
        raise SchemaError("config.json's recipe is not an object")
    world = optional(cfg, "world_size", lambda v, w: int(number(v, w, 1, 1e6, whole=True)), default=1) or 1
    device = optional(cfg, "device_name", text, default=None) or optional(cfg, "device", text, default="") or ""
    return {
        "model": text(train.get("model"), "config.json's model", 40),
        "epochs": int(number(recipe.get("epochs"), "config.json's epochs", 1, MAX_EPOCHS, whole=True)),
        "created": optional(cfg, "created", text, 40, default=""),
        "params": optional(cfg, "params", lambda v, w: int(number(v, w, 0, 1e12, whole=True))),
        # Each process's device, times the processes of a distributed run: "CPU, 1 thread ×2".
        "device": f"{device} ×{world}" if world > 1 else device,
        "world_size": world,
        # Settings the runs table and the CSV show; absent ones show as blanks.
        "lr": optional(recipe, "lr", number, 0, math.inf),
        "batch_size": optional(recipe, "batch_size", lambda v, w: int(number(v, w, 1, MAX_BATCH_SIZE, whole=True))),
        "seed": optional(cfg, "seed", lambda v, w: int(number(v, w, 0, MAX_SEED, whole=True))),
        "precision": optional(cfg, "precision", text, 20, default=""),
        "train_size": optional(cfg, "train_size", lambda v, w: int(number(v, w, 0, MAX_IMAGES, whole=True))),
        "target": optional(train, "target", number, 0, 100),  # stop at this test accuracy
        # A sweep's trial: its study and number (absent in runs started by hand).
        "study": optional(train, "study", study_name),
        "trial": optional(train, "trial", lambda v, w: int(number(v, w, 0, MAX_TRIAL, whole=True))),
    }


def study_name(value: Any, what: str) -> str:
    """A study's name as config.json holds it (the rule its files are named by)."""
    if not isinstance(value, str) or not NAME_RULE.fullmatch(value):
        raise SchemaError(f"{what} is not a study name")
    return value


def check_status_record(status: dict[str, Any]) -> dict[str, Any]:
    state = status.get("status")
    if state not in WRITTEN_STATUSES:
        raise SchemaError(f"status.json's status is not one of {', '.join(WRITTEN_STATUSES)}")
    updated = optional(status, "updated", text, 40, default="")
    try:
        when = datetime.fromisoformat(updated) if updated else None
    except ValueError:
        raise SchemaError("status.json's updated is not an ISO 8601 time") from None
    return {
        "status": state,
        "updated": when if when is None or when.tzinfo else None,
        "host": optional(status, "host", text, 255, default=""),
        "pid": optional(status, "pid", lambda v, w: int(number(v, w, 0, MAX_PID, whole=True))),
        "epochs_done": optional(status, "epochs_done", lambda v, w: int(number(v, w, 0, MAX_EPOCHS, whole=True))),
        "reason": optional(status, "reason", text, default=""),
    }


def check_metric(row: Any, line: int) -> EpochFinished:
    """One metrics.jsonl line's object, every documented number checked: the epoch type."""
    if not isinstance(row, dict):
        raise SchemaError(f"metrics.jsonl line {line} is not an object")
    missing = [k for k in METRIC_KEYS if k not in row]
    if missing:
        raise SchemaError(f"metrics.jsonl line {line} lacks {', '.join(missing)}")
    checked: dict[str, float | None] = {
        k: number(row[k], f"metrics.jsonl line {line}'s {k}", lo, hi, whole=k in ("epoch", "epochs")) for k, (lo, hi) in METRIC_RANGES.items()
    }
    for key, high in OPTIONAL_METRICS.items():  # absent in runs made before they were recorded
        value = row.get(key)
        checked[key] = None if value is None else number(value, f"metrics.jsonl line {line}'s {key}", 0, high)
    if checked["epoch"] != line:
        raise SchemaError(f"metrics.jsonl line {line} holds epoch {checked['epoch']}; epochs must be numbered 1, 2, ... once each")
    return EpochFinished(**checked)  # type: ignore[arg-type]  # each checked above for its field


def parse_metrics(data: bytes) -> list[EpochFinished]:
    """metrics.jsonl's epochs; a last line cut short by a crash mid-write is ignored."""
    rows: list[EpochFinished] = []
    lines = data.split(b"\n")
    complete = lines[:-1]  # every finished line ends with a newline
    for i, line in enumerate(complete, start=1):
        if not line.strip():
            raise SchemaError(f"metrics.jsonl line {i} is empty")
        try:
            row = parse_json(line, f"metrics.jsonl line {i}")
        except FileProblem:
            raise SchemaError(f"metrics.jsonl line {i} is not valid JSON") from None
        rows.append(check_metric(row, i))
    return rows


PROGRESS_FIELDS: dict[str, tuple[float, float, bool]] = {
    "epoch": (1, MAX_EPOCHS, True),
    "epochs": (1, MAX_EPOCHS, True),
    "batch": (0, MAX_IMAGES, True),
    "batches": (1, MAX_IMAGES, True),
    "loss": (0, math.inf, False),
    "accuracy": (0, 100, False),
    "images_per_s": (0, math.inf, False),
    "seconds_left": (0, math.inf, False),
}


def check_progress(data: dict[str, Any]) -> dict[str, Any]:
    """progress.json: the batch progress of the epoch under way (transient; see records)."""
    checked: dict[str, Any] = {k: number(data.get(k), f"progress.json's {k}", lo, hi, whole) for k, (lo, hi, whole) in PROGRESS_FIELDS.items()}
    phase = data.get("phase")
    if phase not in ("training", "evaluating"):
        raise SchemaError("progress.json's phase is not training or evaluating")
    checked["phase"] = phase
    for key in PROGRESS_USAGE:
        checked[key] = optional(data, key, number, 0, 100 if key == "gpu_util" else math.inf)
    return checked


def check_point(fields: list[str]) -> BatchPoint:
    """One batches.csv line: epoch, batch, batches (whole numbers), loss, accuracy %."""
    if len(fields) != 5:
        raise SchemaError(f"{len(fields)} fields, not 5")
    try:
        epoch, batch, batches = (int(f) for f in fields[:3])
        loss, acc = float(fields[3]), float(fields[4])
    except ValueError:
        raise SchemaError("a field is not a number") from None
    if not (1 <= epoch <= MAX_EPOCHS and 1 <= batches <= MAX_IMAGES and 1 <= batch <= batches):
        raise SchemaError("epoch or batch out of range")
    if not (math.isfinite(loss) and loss >= 0 and 0 <= acc <= 100):
        raise SchemaError("loss or accuracy out of range")
    return BatchPoint(epoch, batch, batches, loss, acc)
