"""A new run's start, and the one place that decides and records a failed one.

A trainer handed a run folder's name by its launcher (`--detach`, the app, `--nproc`,
torchrun) leaves that folder behind whatever stops it before training begins (no MNIST, no
such device, a refused setting, a rank that died), `failed` with the reason, so that whoever
started it (the app, `--detach`, `mnist-tui runs`) can read why. A trainer that names its own
folder (a foreground `mnist-tui train`) says why and leaves nothing. What fails once the run
exists is recorded in the run by its writer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.core.config import TrainConfig
from mnist_tui.core.events import Event, RunFailed, RunStarted
from mnist_tui.core.store.records import CONFIG, TRAINER_LOG, default_runs_dir, starting_log


@dataclass(frozen=True)
class Start:
    """A new run about to be trained: its config, the folder a launcher named for it (None:
    the engine names it), and the config file that launcher left for this trainer."""

    config: TrainConfig
    run_dir: Path | None = None
    handed: Path | None = None

    @property
    def runs_dir(self) -> Path:
        return default_runs_dir(self.config.runs_dir)

    @property
    def run_name(self) -> str | None:
        return self.run_dir.name if self.run_dir is not None else None

    def began(self, run_dir: Path) -> None:
        """The run folder exists: the starting log moves into it, the handed config goes."""
        try:
            os.replace(starting_log(self.runs_dir, run_dir.name), run_dir / TRAINER_LOG)
        except OSError:
            pass  # not detached, or nothing to move
        self.done_with_handed()
        from mnist_tui.core.store.queue import forget_claim

        forget_claim(self.runs_dir, run_dir.name)  # it was queued: its queued folder goes

    def done_with_handed(self) -> None:
        if self.handed is not None:
            self.handed.unlink(missing_ok=True)

    def failed(self, reason: str, said: bool = False) -> int:
        """A start that failed before its run folder existed: said (unless `said` already, by
        whoever reports the run's events) and recorded; exit status 1."""
        if not said:
            print(f"mnist-tui: failed: {reason}", file=sys.stderr)
        if self.run_dir is not None and not (self.run_dir / CONFIG).exists():
            self._record(reason)
        self.done_with_handed()
        return 1

    def _record(self, reason: str) -> None:
        from mnist_tui.core.store import RunWriter

        assert self.run_dir is not None
        try:
            writer = RunWriter.create(self.runs_dir, self.config.model, {"config": self.config.to_dict(), "seed": self.config.seed}, name=self.run_dir.name)
        except OSError:
            return  # a full or read-only disk: the starting log is all there is
        writer.close("failed", reason)
        self.began(writer.path)

    def watch(self, events: Iterable[Event]) -> Iterator[Event]:
        """The engine's events, passed on; the run's beginning and a failed start acted on."""
        for ev in events:
            if isinstance(ev, RunStarted):
                self.began(ev.run_dir)
            elif isinstance(ev, RunFailed) and ev.run_dir is None:
                self.failed(ev.reason, said=True)
            yield ev

    def prepare_data(self) -> bool:
        """Find MNIST (downloading and extracting it if it must), saying what it does on
        stderr; False once a failed start is recorded."""
        from mnist_tui.core import data
        from mnist_tui.present.text import printable

        try:  # the message names folders the user chose: no escapes reach the terminal
            data.prepare(data.find_root(self.config.data_dir), log=lambda msg: print(printable(msg, one_line=True), file=sys.stderr))
        except data.DataError as exc:
            self.failed(str(exc))
            return False
        return True
