"""resume(run_dir, stop): continue a stopped or interrupted run exactly, from its plan (the
stored config, checkpoint and kept epochs) and the checkpoint restored into a new session."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from mnist_tui.core.config import TrainConfig
from mnist_tui.core.distributed import World
from mnist_tui.core.events import EpochFinished, Event, RunFailed
from mnist_tui.core.store import Checkpoint, CheckpointError, RunBusy, RunLock, RunWriter
from mnist_tui.core.store import checkpoint as checkpoints
from mnist_tui.core.store.records import CHECKPOINT, RESUMABLE, RESUMABLE_WORDS, STOP, read_run
from mnist_tui.core.train.loop import run_epochs
from mnist_tui.core.train.ranks import Follower, Refused, peer_device
from mnist_tui.core.train.session import Session, build_session, setup_reason
from mnist_tui.core.train.sink import RunSink

# What a resume continues from: the stored config, the checkpoint, its epoch, the epochs before it.
Plan = tuple[object, Checkpoint | None, int, list[EpochFinished]]


def resume(run_dir: Path, stop: threading.Event | None = None, data_dir: str | None = None, force: bool = False) -> Iterator[Event]:
    """Continue a stopped or interrupted run from its last checkpoint to its planned epochs.

    The lock is taken before anything is read, so a second resume is refused. The checkpoint
    holds the random states of the weights/dropout, data-order and augmentation generators, so
    on the CPU the resumed epochs equal those of an uninterrupted run with the same seed. The
    data folder is the one given now (or the default), never a path read from the run.
    """
    run_dir = Path(run_dir)
    world = World.from_env()
    lock: RunLock | None = None
    ended = False
    try:
        lock, refusal = _lock_for_resume(run_dir) if world.leader else (None, None)
        if world.active:
            world.join(peer_device(run_dir))
            refusal = world.share(refusal)
        if refusal:
            yield RunFailed(refusal, None)
            return
        try:
            session, writer, done = _open_resume(run_dir, lock, data_dir, force, world)
        except Exception as exc:  # anything that keeps it from continuing exactly is a refusal
            yield RunFailed(f"cannot resume {run_dir.name}: {setup_reason(exc, None)}", None)
            return
        lock = None  # the writer holds it now
        yield from run_epochs(session, writer, stop or threading.Event(), done)
        ended = True
    finally:
        if lock is not None:
            lock.release()
        world.leave(together=ended)


def _lock_for_resume(run_dir: Path) -> tuple[RunLock | None, str | None]:
    """The run's lock, taken before anything is read (or why it cannot be had)."""
    try:
        lock = RunLock.acquire(run_dir)
        # A stop request left from before is void; one made from now on (even while this
        # resume sets up) is for this trainer.
        (run_dir / STOP).unlink(missing_ok=True)
        return lock, None
    except RunBusy as exc:
        return None, f"cannot resume: {exc}"
    except OSError as exc:
        return None, f"cannot resume {run_dir.name}: {exc.strerror or exc}"


def _open_resume(run_dir: Path, lock: RunLock | None, data_dir: str | None, force: bool, world: World) -> tuple[Session, RunSink, list[EpochFinished]]:
    """Rank 0 checks the run can continue exactly and shares what it read; every rank then
    rebuilds the run and restores its checkpoint."""
    plan: Plan | None = None
    failure: Exception | None = None
    if world.leader:
        try:
            plan = resume_plan(run_dir, force)
        except Exception as exc:
            failure = exc
    if world.active:
        plan, reason = world.share((plan, setup_reason(failure, None) if failure else None))
        if reason and failure is None:
            failure = Refused(reason)
    if failure is not None or plan is None:
        raise failure or Refused("rank 0 shared no checkpoint")
    stored, ckpt, epoch, done = plan
    config = TrainConfig.from_dict(stored).replace(data_dir=data_dir, runs_dir=str(run_dir.parent))
    session = build_session(config, world)
    if ckpt is not None:
        restore(session, ckpt)
    if lock is None:
        return session, Follower(run_dir, epoch), done
    writer = RunWriter.reopen(lock, epoch)
    writer.update_record(warning=session.warning)  # this trainer's, for those who follow it
    return session, writer, done


def resume_plan(run_dir: Path, force: bool) -> Plan:
    """What a resume continues from: (stored config, checkpoint, its epoch, the epochs
    before it); raises CheckpointError if the run cannot continue exactly."""
    record = read_run(run_dir, holding_lock=True)
    if record.status == "stale" and force:
        pass  # its host is gone, the user says: continue here
    elif record.status not in RESUMABLE:
        why = f" ({record.reason})" if record.reason else ""
        raise CheckpointError(f"it is {record.status}{why}; only {RESUMABLE_WORDS} runs can be resumed")
    stored = record.config.get("config")
    config = TrainConfig.from_dict(stored)
    done = len(record.metrics)
    ckpt = checkpoints.load(run_dir) if (run_dir / CHECKPOINT).exists() or done > 1 else None
    epoch = ckpt.epoch if ckpt is not None else 0
    if not done - 1 <= epoch <= done or epoch >= config.recipe.epochs:
        raise CheckpointError(f"its checkpoint holds epoch {epoch} but metrics.jsonl has {done} of {config.recipe.epochs} epochs")
    return stored, ckpt, epoch, record.metrics[:epoch]


def _with_this_step(saved: Any, optimizer: torch.optim.Optimizer) -> Any:
    """The saved optimizer state with this session's kind of step (fused or foreach, from
    core/optim.py: the device, MNIST_TUI_FUSED), which load_state_dict would otherwise take
    from the checkpoint with its groups; anything malformed is left for it to refuse."""
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list):
        return saved
    groups = [
        {**group, **{key: mine.get(key) for key in ("fused", "foreach")}} if isinstance(group, dict) else group
        for group, mine in zip(saved["param_groups"], optimizer.param_groups)
    ]
    return {**saved, "param_groups": groups + saved["param_groups"][len(groups) :]}


def restore(s: Session, ckpt: Checkpoint) -> None:
    """Copy a checkpoint into the session: the weights, optimizer, schedule and random streams."""
    try:
        s.model.load_state_dict(ckpt.model)
    except Exception:  # wrong shapes, names or value types: all mean another network
        raise CheckpointError(f"its checkpoint does not fit {s.config.model}: made by another version or an older {s.config.model}") from None
    try:
        s.optimizer.load_state_dict(_with_this_step(ckpt.optimizer, s.optimizer))
        if s.scheduler is not None:
            s.scheduler.load_state_dict(ckpt.scheduler)
        torch.set_rng_state(ckpt.rng["torch"])
        s.order.set_state(ckpt.rng["order"])
        s.augment.set_state(ckpt.rng["augment"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"its checkpoint's optimizer, schedule or random state does not fit this run ({str(exc).splitlines()[0][:120]})") from None
