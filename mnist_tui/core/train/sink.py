"""RunSink: what the training loop writes a run into, and asks of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from mnist_tui.core.events import BatchPoint
from mnist_tui.core.store.checkpoint import Checkpoint


class RunSink(Protocol):
    """The run as the loop keeps it: store.RunWriter on the rank that owns the folder,
    ranks.Follower (which writes nothing) on every other rank of a distributed run."""

    path: Path  # the run folder
    epochs_done: int  # the last epoch appended

    def heartbeat(self) -> None:
        """Say the trainer is alive."""

    def stop_requested(self) -> bool:
        """Whether someone asked the run to stop (through its folder)."""

    def progress(self, fields: dict[str, Any]) -> None:
        """Record where the current epoch is (progress.json)."""

    def append_epoch(self, metrics: dict[str, Any]) -> None:
        """Keep a finished epoch's metrics line."""

    def append_points(self, points: list[BatchPoint]) -> None:
        """Keep points of the per-batch training curve."""

    def save_checkpoint(self, ckpt: Checkpoint) -> None:
        """Keep the state a resume continues from."""

    def close(self, status: str, reason: str | None = None) -> None:
        """Record how the run ended and let go of it."""
