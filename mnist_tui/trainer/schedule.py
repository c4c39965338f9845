"""The run queue's scheduler, with no daemon: whoever looks starts what may start.

Each decision is made under the runs folder's queue lock (core/store/trainers.py): who trains
now (the live trainers' slots), where a new trainer goes and with how many threads
(core/store/queue.place), and which queued runs start. `start_next` is called when a trainer
ends (however it ended: a trainer killed with -9 is noticed by the next command that looks:
`queue`, `runs`, `train`, the app), and by the command that queued a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.core import hardware
from mnist_tui.core.config import TrainConfig
from mnist_tui.core.store import queue
from mnist_tui.core.store.trainers import Live, QueueBusy, Slot, live_trainers, queue_lock


@dataclass
class Admission:
    """What a new trainer was given: its place (threads, GPUs) and its slot; or, when it must
    wait and may, the queued run's folder instead."""

    placement: queue.Placement | None = None
    slot: Slot | None = None
    queued: Path | None = None

    def apply_here(self) -> None:
        """Set this process's environment for training here: before torch loads, the threads
        and the wait policy take effect; later, the thread count still does."""
        import sys

        assert self.placement is not None
        for key, value in self.placement.environment().items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if "torch" in sys.modules and self.placement.threads:
            import torch

            torch.set_num_threads(self.placement.threads)


def _is_rank() -> bool:
    """Whether this process is one rank of a world torchrun started (its launcher counts)."""
    return "LOCAL_RANK" in os.environ


def _live_for(run: str, config: TrainConfig, placement: queue.Placement) -> Live:
    return Live(run, hardware.device_kind(config.device), placement.gpus, placement.threads)


def _start_queued_locked(runs_dir: Path, live: list[Live]) -> list[str]:
    """Start each queued run whose device is free, in order (the queue lock is held)."""
    from mnist_tui.trainer.launch import LaunchError, start_new

    if not queue.pending(runs_dir):
        return []
    queue.recover(runs_dir, live)
    started = []
    for run_dir in queue.queued_runs(runs_dir):
        config = queue.run_config(run_dir)
        placement = queue.place(config, live, now=False) if config is not None else None
        if config is None or placement is None:
            continue  # a damaged one is listed damaged; a busy device keeps its runs waiting
        config = config.replace(runs_dir=str(runs_dir), threads=placement.threads)
        slot = Slot.take(runs_dir, _live_for(run_dir.name, config, placement))
        queue.claim(run_dir)
        try:
            start_new(config, runs_dir, run_dir.name, placement, slot)
        except LaunchError:
            slot.release()
            queue.unclaim(runs_dir, run_dir.name)
            break  # the runs folder cannot be written: the next look tries again
        live.append(_live_for(run_dir.name, config, placement))
        started.append(run_dir.name)
    queue.tidy(runs_dir)
    return started


def start_next(runs_dir: Path) -> list[str]:
    """Start the queued runs whose device is free; the ids started. Never raises: a runs
    folder that cannot be locked or written leaves the queue for the next look."""
    try:
        with queue_lock(runs_dir):
            return _start_queued_locked(Path(runs_dir), live_trainers(runs_dir, prune=True))
    except (QueueBusy, OSError):
        return []


def admit(runs_dir: Path, config: TrainConfig, name: str, mode: str, sharing: bool = False) -> Admission:
    """A new run `name` about to train: mode `now` starts it at once (sharing the cores),
    `queue` queues it, `auto` queues it only if its device is taken; `sharing`: its starter
    starts others beside it (queue.place). Queued runs whose device is free start first.
    OSError only where queueing was asked for and cannot be done."""
    runs_dir = Path(runs_dir)
    try:
        with queue_lock(runs_dir):
            live = live_trainers(runs_dir, prune=True)
            _start_queued_locked(runs_dir, live)
            placement = queue.place(config, live, now=mode == "now", sharing=sharing)
            if placement is None or mode == "queue":
                return Admission(queued=queue.enqueue(runs_dir, config, name))
            return Admission(placement, Slot.take(runs_dir, _live_for(name, config, placement)))
    except OSError:
        if mode == "queue":
            raise
        # The bookkeeping cannot be written (a full or read-only disk): train uncounted, as
        # before there was a queue, waiting passively (others may train unseen); the trainer
        # says what its own writes meet.
        return Admission(queue.Placement(None, shared=True))


def own_slot(runs_dir: Path, config: TrainConfig | None, run: str) -> Admission | None:
    """This trainer's slot: the one its launcher handed it, else one taken now (a trainer
    started by hand, a foreground resume); None for a rank of a world, which its launcher
    counts. A runs folder that cannot be written counts nobody (training goes on)."""
    if _is_rank():
        return None
    inherited = Slot.inherited()
    if inherited is not None:
        return Admission(None, inherited)
    return _take_now(runs_dir, config or TrainConfig(model="?"), run)


def _take_now(runs_dir: Path, config: TrainConfig, run: str) -> Admission | None:
    try:
        with queue_lock(runs_dir):
            placement = queue.place(config, live_trainers(runs_dir, prune=True), now=True)
            assert placement is not None  # now: never waits
            return Admission(placement, Slot.take(runs_dir, _live_for(run, config, placement)))
    except (QueueBusy, OSError):
        return None


def resume_slot(run_dir: Path) -> Admission | None:
    """A slot and place for a trainer about to resume `run_dir` (a resume starts at once)."""
    config = queue.run_config(run_dir) or TrainConfig(model="?")
    return _take_now(Path(run_dir).parent, config, Path(run_dir).name)


def trainer_ended(admission: Admission | None, runs_dir: Path, run: str | None) -> None:
    """A trainer is done: its slot goes, a queued run it was claimed from is settled, and the
    next queued runs start."""
    if admission is None and _is_rank():
        return
    if admission is not None and admission.slot is not None:
        admission.slot.release()
    if run:
        queue.forget_claim(runs_dir, run)
    start_next(runs_dir)
