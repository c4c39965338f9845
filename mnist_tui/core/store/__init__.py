"""The run store: one folder per run, owned by one trainer process under a lock.

Files (see the README's "Run folder format"): config.json, metrics.jsonl, batches.csv,
status.json, progress.json, checkpoint.pt, lock, trainer.log, and the stop request `stop`
(records.RUN_FILES). Reading needs only the JSON files; torch is imported only to save or
load checkpoints. A listing keeps what each folder's files said (index.py) and reads a
folder again only when its files change.
"""

from mnist_tui.core.store.checkpoint import Checkpoint, CheckpointError
from mnist_tui.core.store.control import NotARun, busy_problem, delete_run, deletion_problem, request_stop, taken_over
from mnist_tui.core.store.index import list_runs
from mnist_tui.core.store.lock import RunBusy, RunLock, is_locked
from mnist_tui.core.store.records import (
    CHECKPOINT,
    CONFIG,
    FINAL,
    METRICS,
    PROGRESS,
    RESUMABLE,
    RESUMABLE_WORDS,
    STATUS,
    RunRecord,
    changed_since,
    default_runs_dir,
    find_run,
    read_points,
    read_progress,
    read_run,
)
from mnist_tui.core.store.writer import RunWriter, SaveError, mark_failed

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "FINAL",
    "METRICS",
    "PROGRESS",
    "RESUMABLE",
    "RESUMABLE_WORDS",
    "STATUS",
    "Checkpoint",
    "CheckpointError",
    "NotARun",
    "RunBusy",
    "RunLock",
    "RunRecord",
    "RunWriter",
    "SaveError",
    "mark_failed",
    "changed_since",
    "default_runs_dir",
    "delete_run",
    "busy_problem",
    "deletion_problem",
    "find_run",
    "is_locked",
    "list_runs",
    "read_points",
    "read_progress",
    "read_run",
    "request_stop",
    "taken_over",
]
