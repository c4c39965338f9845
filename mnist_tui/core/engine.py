"""The training loop: train(config, stop) yields events and keeps the run store up to date.

A run goes through named phases: `_build` (data, model, optimizer: raises only setup
errors), `_open_new` or `_open_resume` (the run folder, under its lock), then `_loop` over
`_train_epoch` and `evaluate`. One error contract: anything that fails before training
yields RunFailed (never a traceback); a failure while training is recorded in the run.

Under torchrun the same functions run on every process (see distributed.py): rank 0 owns
the run folder and the others train beside it, writing nothing (`_Follower`).
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F

from mnist_tui import __version__
from mnist_tui.core import data, fused, memory_format, nets
from mnist_tui.core.augment import Affine
from mnist_tui.core.config import ConfigError, TrainConfig
from mnist_tui.core.device import DeviceError, device_name, keep_freed_memory, memory_in_use_mb, resolve_device, resolve_precision, test_chunk
from mnist_tui.core.distributed import World, cpu_threads, globalise
from mnist_tui.core.events import BatchPoint, BatchProgress, EpochFinished, Event, RunFailed, RunFinished, RunStarted, run_started
from mnist_tui.core.optim import make_optimizer, make_scheduler, steps_every_batch
from mnist_tui.core.resources import Meter
from mnist_tui.core.step import EagerStep, autocast, make_step, search_pays
from mnist_tui.core.store import Checkpoint, CheckpointError, RunBusy, RunLock, RunWriter, SaveError, default_runs_dir
from mnist_tui.core.store import checkpoint as checkpoints
from mnist_tui.core.store.records import CHECKPOINT, RESUMABLE, RESUMABLE_WORDS, STOP, read_run
from mnist_tui.core.validate import check_config, split_problem
from mnist_tui.core.versions import get_version


@dataclass
class Session:
    """What one run trains with: built once, then restored into when resuming."""

    config: TrainConfig
    device: torch.device
    precision: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    step: EagerStep
    train_data: data.DeviceSplit
    test_data: data.DeviceSplit
    evaluated_on: str
    nchw: list[str]
    fused: list[str]  # the batch norms trained in core/fused.py's kernels
    test_size: int  # images evaluated, over all ranks (test_data is this rank's share)
    world: World = field(default_factory=World)
    meter: Meter = field(default_factory=lambda: Meter(torch.device("cpu")))  # the trainer's resource use
    started: float = field(default_factory=time.perf_counter)  # the call into the engine (perf_counter)
    kernels_warning: str | None = None  # why fp32 CPU training runs without the fused kernels
    # Separate seeds for the weights (and dropout), the data order and the augmentation.
    order: torch.Generator = field(default_factory=torch.Generator)
    augment: torch.Generator = field(default_factory=torch.Generator)

    @property
    def batches(self) -> int:
        return self.train_data.num_batches(self.config.recipe.batch_size)

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def checkpoint(self, epoch: int) -> Checkpoint:
        return Checkpoint(
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else {},
            epoch=epoch,
            config=self.config.to_dict(),
            # What exact continuation needs: the dropout, data-order and augmentation streams.
            rng={"torch": torch.get_rng_state(), "order": self.order.get_state(), "augment": self.augment.get_state()},
        )


def evaluation(
    model: torch.nn.Module, split: data.DeviceSplit, batch_size: int, precision: str = "fp32", world: World | None = None
) -> Generator[tuple[int, int], None, tuple[float, float]]:
    """The test pass as a generator: yields (batches done, batches) after each batch and
    returns the mean loss and accuracy (%) over the whole split (over every rank's share of
    it in a world of several processes: each image counted once)."""
    model.eval()
    device = split.labels.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    total = -(-len(split) // batch_size)
    with torch.inference_mode():
        for i, (x, y) in enumerate(split.batches(batch_size), start=1):
            with autocast(device, precision):
                out = model(x)
            out = out.float()
            loss_sum += F.cross_entropy(out, y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
            yield i, total
    sums = torch.stack([loss_sum.double(), correct.double(), torch.tensor(float(len(split)), dtype=torch.float64, device=device)])
    loss, right, n = (world.sum(sums) if world is not None else sums).tolist()
    return loss / n, 100.0 * right / n


def evaluate(model: torch.nn.Module, split: data.DeviceSplit, batch_size: int, precision: str = "fp32") -> tuple[float, float]:
    """Mean loss and accuracy (%) over the whole split."""
    steps = evaluation(model, split, batch_size, precision)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(tuple[float, float], done.value)  # evaluation's return value; StopIteration.value is Any


def train(config: TrainConfig, stop: threading.Event | None = None, run_name: str | None = None) -> Iterator[Event]:
    """Train one run, yielding events; set `stop` (or ask through the run folder's stop file)
    to end it cleanly within one batch. `run_name` names the folder (reserved by a launcher)."""
    stop = stop or threading.Event()
    world = World.from_env()
    ended = False  # the loop ran to its end, on every rank alike
    try:
        try:
            session = _build(config, world)
            if world.any(stop.is_set(), session.device):  # Ctrl+C while the data was prepared: make no run at all
                yield RunFailed("stopped before training began; nothing was saved", None, "stopped")
                return
            writer = _open_shared(session, run_name)
        except Exception as exc:  # setup: bad values, no device, no data, no disk, torch refusing
            yield RunFailed(reason=_setup_reason(exc, config), run_dir=None)
            return
        yield from _loop(session, writer, stop, [])
        ended = True
    finally:
        world.leave(together=ended)


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
            world.join(_peer_device(run_dir))
            refusal = world.share(refusal)
        if refusal:
            yield RunFailed(refusal, None)
            return
        try:
            session, writer, done = _open_resume(run_dir, lock, data_dir, force, world)
        except Exception as exc:  # anything that keeps it from continuing exactly is a refusal
            yield RunFailed(f"cannot resume {run_dir.name}: {_setup_reason(exc, None)}", None)
            return
        lock = None  # the writer holds it now
        yield from _loop(session, writer, stop or threading.Event(), done)
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


def _peer_device(run_dir: Path) -> torch.device:
    """The device a run trains on, as every rank can tell before rank 0 has shared the
    config (which decides the process group's backend): from the run's config.json."""
    config = read_run(run_dir).config.get("config")
    name = config.get("device") if isinstance(config, dict) else None
    try:
        return resolve_device(name if isinstance(name, str) else "auto")
    except DeviceError:
        return torch.device("cpu")


def _setup_reason(exc: BaseException, config: TrainConfig | None) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, SaveError):
        where = default_runs_dir(config.runs_dir) if config is not None else "the run folder"
        return f"cannot write into {where}: {exc.strerror or exc}"
    if isinstance(exc, (ConfigError, DeviceError, data.DataError, CheckpointError, _Refused)):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:300]}"


def _build(config: TrainConfig, world: World | None = None) -> Session:
    """Everything a run needs, on its device (this rank's, in the process group); raises
    only setup errors."""
    started = time.perf_counter()  # a run's time to its target counts from here
    check_config(config)
    keep_freed_memory()
    world = world or World()
    device = _join(config, world)
    train_split, test_split = data.load(config.data_dir)
    evaluated_on = "test"
    if config.holdout:
        train_split, test_split = train_split.split_off(config.holdout)
        evaluated_on = "holdout"
    r = config.recipe
    torch.manual_seed(config.seed)
    precision = resolve_precision(config.precision, device)
    # channels_last lets the CPU (oneDNN) and CUDA (cuDNN) convolutions skip layout reorders.
    # Module.to takes a device and a memory_format together at run time, but torch's typed
    # overloads accept memory_format only on its own: hence the ignore.
    model = get_version(config.model).build(dropout=r.dropout)
    if world.active:
        globalise(model, world)
    model = model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    # Built (or loaded from its cache) and checked here, outside the timed epochs.
    fusable = nets.fused_batch_norms(model) if device.type == "cpu" and precision == "fp32" else []
    fused_bns = fusable if fusable and fused.available() else []
    kernels_warning = f"fp32 training runs without the fused CPU kernels, slower: {fused.status()}" if fusable and not fused_bns else None
    nchw = memory_format.nchw_batch_norms(model, device, precision, fused_bns)
    optimizer = make_optimizer(config, model.parameters(), device)
    train_data = data.DeviceSplit.from_split(train_split, device, config.limit)
    test_data = data.DeviceSplit.from_split(test_split, device, config.test_limit)
    # On the run's whole plan: a resumed run decides as its start did, as its config.json says.
    search = search_pays(r.epochs * train_data.num_batches(r.batch_size), config.target)
    step = make_step(_parallel(model, device, world), optimizer, device, precision, r.batch_size, config.cuda_graph, world, search)
    scheduler = make_scheduler(config, optimizer, train_data.num_batches(r.batch_size))
    # Recorded before any checkpoint is restored: restoring copies into the same tensors.
    step.prepare(train_data.images[: r.batch_size], train_data.labels[: r.batch_size])
    session = Session(
        config,
        device,
        precision,
        model,
        optimizer,
        scheduler,
        step,
        train_data,
        test_data.share(world),
        evaluated_on,
        nchw,
        fused_bns,
        len(test_data),
        world,
        Meter(device),
        started,
        kernels_warning,
    )
    session.order.manual_seed(config.seed + 1)
    session.augment.manual_seed(config.seed + 2)
    return session


def _join(config: TrainConfig, world: World) -> torch.device:
    """The device this process trains on; in a world of several, this rank's device, its
    share of the CPU's threads and its place in the process group."""
    device = resolve_device(config.device)
    if not world.active:
        return device
    uneven = split_problem(config.recipe.batch_size, world.size)  # torchrun's N may not be the config's
    if uneven:
        raise ConfigError(uneven)
    device = world.device(device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(world))
    world.join(device)
    return device


def _parallel(model: torch.nn.Module, device: torch.device, world: World) -> torch.nn.Module:
    """The module the training step calls: DDP around the model in a world of several
    processes. Buffers are synchronised once, at the start: GlobalBatchNorm keeps them equal
    on every rank from then on."""
    if not world.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False)


class _Refused(RuntimeError):
    """Rank 0 could not set the run up; the other ranks learn why from it."""


class _Follower:
    """The run as a rank other than 0 keeps it: rank 0 owns the folder, this writes nothing."""

    def __init__(self, path: Path, epochs_done: int = 0) -> None:
        self.path, self.epochs_done = path, epochs_done

    def heartbeat(self) -> None:
        pass

    def stop_requested(self) -> bool:
        return False  # rank 0 reads the stop file; every rank learns of it at the next batch

    def progress(self, fields: dict[str, object]) -> None:
        pass

    def append_epoch(self, metrics: dict[str, object]) -> None:
        self.epochs_done = cast(int, metrics["epoch"])

    def append_points(self, points: list[BatchPoint]) -> None:
        pass

    def save_checkpoint(self, ckpt: Checkpoint) -> None:
        pass

    def close(self, status: str, reason: str | None = None) -> None:
        pass


def _open_shared(s: Session, run_name: str | None) -> RunWriter | _Follower:
    """Rank 0 makes the run folder; every other rank learns its name (or why it failed)."""
    if not s.world.active:
        return _open_new(s, run_name)
    devices = s.world.gather(f"{s.device} ({device_name(s.device)}) on {socket.gethostname()}")
    writer, failure = None, None
    if s.world.leader:
        try:
            writer = _open_new(s, run_name, devices)
        except Exception as exc:
            failure = exc
    name, reason = s.world.share((writer.path.name if writer else None, _setup_reason(failure, s.config) if failure else None))
    if failure is not None:
        raise failure
    if reason or not isinstance(name, str):
        raise _Refused(reason or "rank 0 made no run folder")
    return writer if writer is not None else _Follower(default_runs_dir(s.config.runs_dir) / name)


def _record(s: Session, devices: list[str] | None = None) -> dict[str, object]:
    """What config.json records of a run as this session trains it; RunStarted is built
    from it (events.run_started), in the trainer and in every follower alike."""
    record: dict[str, object] = {
        "config": s.config.to_dict(),
        "seed": s.config.seed,
        "device": s.device.type,
        "device_name": device_name(s.device),
        "precision": s.precision,
        "cuda_graph": s.step.graph,
        "cudnn_search": s.step.searched,
        "nchw_batch_norms": s.nchw,
        "fused_batch_norms": s.fused,
        "evaluated_on": s.evaluated_on,
        "bn_recalibrated": s.batches < RECALIBRATE_BN_BELOW,
        "torch_version": torch.__version__,
        "mnist_tui_version": __version__,
        "params": s.params,
        "train_size": len(s.train_data),
        "test_size": s.test_size,
        "batches_per_epoch": s.batches,
        "world_size": s.world.size,
        "warning": _warning(s),
    }
    if s.world.active:
        record.update(backend=s.world.backend, devices=devices)
    return record


def _warning(s: Session) -> str | None:
    """What the user should know about how this session trains (a fallback, slower kernels)."""
    return "; ".join(w for w in (s.step.fallback, s.kernels_warning) if w) or None


def _open_new(s: Session, run_name: str | None, devices: list[str] | None = None) -> RunWriter:
    record = _record(s, devices)
    return RunWriter.create(default_runs_dir(s.config.runs_dir), s.config.model, record, name=run_name)


def _open_resume(
    run_dir: Path, lock: RunLock | None, data_dir: str | None, force: bool, world: World
) -> tuple[Session, RunWriter | _Follower, list[EpochFinished]]:
    """Rank 0 checks the run can continue exactly and shares what it read; every rank then
    rebuilds the run and restores its checkpoint."""
    plan, failure = None, None
    if world.leader:
        try:
            plan = _resume_plan(run_dir, force)
        except Exception as exc:
            failure = exc
    if world.active:
        plan, reason = world.share((plan, _setup_reason(failure, None) if failure else None))
        if reason and failure is None:
            failure = _Refused(reason)
    if failure is not None or plan is None:
        raise failure or _Refused("rank 0 shared no checkpoint")
    stored, ckpt, epoch, done = plan
    config = TrainConfig.from_dict(stored).replace(data_dir=data_dir, runs_dir=str(run_dir.parent))
    session = _build(config, world)
    if ckpt is not None:
        _restore(session, ckpt)
    if lock is None:
        return session, _Follower(run_dir, epoch), done
    writer = RunWriter.reopen(lock, epoch)
    writer.update_record(warning=_warning(session))  # this trainer's, for those who follow it
    return session, writer, done


def _resume_plan(run_dir: Path, force: bool) -> tuple[object, Checkpoint | None, int, list[EpochFinished]]:
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


def _restore(s: Session, ckpt: Checkpoint) -> None:
    try:
        s.model.load_state_dict(ckpt.model)
    except Exception:  # wrong shapes, names or value types: all mean another network
        raise CheckpointError(f"its checkpoint does not fit {s.config.model}: made by another version or an older {s.config.model}") from None
    try:
        s.optimizer.load_state_dict(ckpt.optimizer)
        if s.scheduler is not None:
            s.scheduler.load_state_dict(ckpt.scheduler)
        torch.set_rng_state(ckpt.rng["torch"])
        s.order.set_state(ckpt.rng["order"])
        s.augment.set_state(ckpt.rng["augment"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"its checkpoint's optimizer, schedule or random state does not fit this run ({str(exc).splitlines()[0][:120]})") from None


def _started(s: Session, writer: RunWriter | _Follower) -> RunStarted:
    return run_started(writer.path, _record(s))


def _loop(s: Session, writer: RunWriter | _Follower, stop: threading.Event, done: list[EpochFinished]) -> Iterator[Event]:
    """Train epoch after epoch until done, stopped or at the target; the run's status records
    how it ended. `done`: the epochs a resumed run kept."""
    started = time.perf_counter()
    stopping = lambda: stop.is_set() or writer.stop_requested()  # noqa: E731
    status, reason, reached = "stopped", None, None
    if done:  # a resumed run's clock goes on from its last kept epoch
        s.started -= done[-1].elapsed if done[-1].elapsed is not None else sum(e.seconds for e in done)
    try:
        yield _started(s, writer)
        s.meter.begin()
        for epoch in range(writer.epochs_done + 1, s.config.recipe.epochs + 1):
            finished = yield from _epoch(s, writer, epoch, stopping)
            if finished is None:
                break
            done.append(finished)
            yield finished
            if s.config.target is not None and finished.test_acc >= s.config.target:
                reached, status = finished, "finished"
                reason = f"reached the target {s.config.target:g}% test accuracy at epoch {epoch}, {finished.elapsed:.1f} s from the start"
                break
        else:
            status = "finished"
    except _Diverged as exc:
        status, reason = "diverged", str(exc)
    except GeneratorExit:
        status, reason = "stopped", "training was abandoned"  # its consumer went away
        raise
    except Exception as exc:  # any failure is recorded in the run, then reported
        status, reason = "failed", _failure_reason(exc, s.config)
    finally:
        writer.close(status, reason)
    if status in ("failed", "diverged"):
        yield RunFailed(f"training diverged: {reason}" if status == "diverged" else str(reason), writer.path, status)
        return
    accs = [e.test_acc for e in done]
    final, best = (accs[-1], max(accs)) if accs else (None, None)
    yield RunFinished(writer.path, status, writer.epochs_done, final, best, time.perf_counter() - started, s.config.target, reached)


class _Diverged(RuntimeError):
    pass


def _epoch(s: Session, writer: RunWriter | _Follower, epoch: int, stopping: Callable[[], bool]) -> Generator[BatchProgress, None, EpochFinished | None]:
    """Train and evaluate one epoch and save it; None if stopped before its training ended.

    An epoch whose training finished is always evaluated and kept, even if a stop arrives
    during its test pass (a few seconds at most)."""
    result = yield from _train_epoch(s, writer, epoch, stopping)
    if result is None:
        return None
    train_loss, train_acc, train_seconds = result
    if not math.isfinite(train_loss):
        raise _Diverged(f"loss became {train_loss} in epoch {epoch}; try a smaller learning rate")
    lr = s.optimizer.param_groups[0]["lr"]
    if s.scheduler is not None and not steps_every_batch(s.config):
        s.scheduler.step()
    t0 = time.perf_counter()
    if s.batches < RECALIBRATE_BN_BELOW:
        recalibrate_batch_norms(s)
    test_loss, test_acc = yield from _test_pass(s, writer, epoch, train_loss, train_acc, len(s.train_data) / train_seconds)
    if not math.isfinite(test_loss):
        raise _Diverged(f"test loss became {test_loss} in epoch {epoch}; try a smaller learning rate")
    finished = EpochFinished(
        epoch=epoch,
        epochs=s.config.recipe.epochs,
        train_loss=train_loss,
        train_acc=train_acc,
        test_loss=test_loss,
        test_acc=test_acc,
        lr=lr,
        seconds=train_seconds + time.perf_counter() - t0,
        images_per_s=len(s.train_data) / train_seconds,
        memory_mb=memory_in_use_mb(s.device),
        **s.meter.epoch(),
        elapsed=time.perf_counter() - s.started,
    )
    # The metrics line first, then the checkpoint: after a crash between the two, resume
    # drops the line and trains that epoch again.
    writer.append_epoch(finished.to_dict())
    writer.save_checkpoint(s.checkpoint(epoch))
    return finished


# Batch norm's running statistics are an exponential average (momentum 0.1) of batches seen
# while the weights moved. In a short epoch (a --limit check) they lag the weights so far that
# the test accuracy looks broken: v2 on 2,000 images for 2 epochs scored 31% with them and
# 90% with statistics recomputed for the final weights (86% train accuracy). Epochs shorter
# than this many batches recompute them before evaluation; full-data recipes (469 batches
# and more) are untouched.
RECALIBRATE_BN_BELOW = 100


def recalibrate_batch_norms(s: Session) -> None:
    """Recompute every batch norm's running mean and variance for the current weights: one
    forward pass over the epoch's training images (no augmentation, no dropout, no random
    numbers drawn, so exact resumes stay exact), averaging all batches equally."""
    norms = [m for m in s.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the pass
    s.model.eval()
    for m in norms:
        m.train()
    with torch.no_grad():
        for x, _y in s.train_data.batches(s.config.recipe.batch_size, world=s.world if s.world.active else None):
            with autocast(s.device, s.precision):
                s.model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _failure_reason(exc: Exception, config: TrainConfig) -> str:
    """What went wrong, in words that say what to do about it."""
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return f"out of memory at batch size {config.recipe.batch_size}; try a smaller batch size, e.g. {max(1, config.recipe.batch_size // 2)}"
    if isinstance(exc, SaveError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _test_pass(
    s: Session, writer: RunWriter | _Follower, epoch: int, loss: float, accuracy: float, images_per_s: float
) -> Generator[BatchProgress, None, tuple[float, float]]:
    """Evaluate the epoch's model, with a progress of its own (the test set's batches) shown
    a few times a second; returns the test loss and accuracy."""
    t0 = last = time.perf_counter()
    chunk = test_chunk(s.config.recipe.test_batch_size, s.device)
    steps = evaluation(s.model, s.test_data, chunk, s.precision, s.world)
    done, total = 0, -(-len(s.test_data) // chunk)
    while True:
        now = time.perf_counter()
        if done == 0 or done == total or now - last >= s.config.progress_seconds:
            last = now
            left = (now - t0) / done * (total - done) if done else 0.0
            event = s.meter.attach(BatchProgress(epoch, s.config.recipe.epochs, done, total, loss, accuracy, images_per_s, left, phase="evaluating"))
            writer.progress(event.to_dict())
            yield event
        try:
            done, total = next(steps)
        except StopIteration as finished:
            return cast(tuple[float, float], finished.value)  # evaluation's return value; StopIteration.value is Any


# Points of the per-batch curve per epoch, at most: each is the mean over a group of batches.
CURVE_POINTS = 100


class _Curve:
    """An epoch's per-batch losses and hits, kept on the device and read back only when
    progress is reported (one sync), then grouped into the curve's points."""

    def __init__(self, epoch: int, batches: int) -> None:
        self.epoch, self.batches = epoch, batches
        self.group = max(1, -(-batches // CURVE_POINTS))
        self.pending: list[torch.Tensor] = []  # [loss × rows, hits] per batch, not yet read
        self.rows: list[int] = []
        self.read: list[tuple[float, float, int]] = []  # read, not yet a whole group
        self.done = 0  # batches read back
        self.loss_sum = self.hits = 0.0
        self.seen = 0

    def add(self, loss: torch.Tensor, hits: torch.Tensor, rows: int) -> None:
        self.pending.append(torch.stack([loss.detach().float() * rows, hits.float()]))
        self.rows.append(rows)

    def collect(self, last: bool) -> list[BatchPoint]:
        """Read the pending batches back; the points of the groups now complete."""
        if self.pending:
            values = torch.stack(self.pending).tolist()
            for (loss, hits), rows in zip(values, self.rows):
                self.read.append((loss, hits, rows))
                self.loss_sum, self.hits, self.seen = self.loss_sum + loss, self.hits + hits, self.seen + rows
            self.pending, self.rows = [], []
        points = []
        while self.read and (len(self.read) >= self.group or last):
            group, self.read = self.read[: self.group], self.read[self.group :]
            self.done += len(group)
            rows = sum(r for _, _, r in group)
            points.append(BatchPoint(self.epoch, self.done, self.batches, sum(v for v, _, _ in group) / rows, 100.0 * sum(h for _, h, _ in group) / rows))
        return points


def _train_epoch(
    s: Session, writer: RunWriter | _Follower, epoch: int, stopping: Callable[[], bool]
) -> Generator[BatchProgress, None, tuple[float, float, float] | None]:
    """One pass over the training data; returns (loss, acc %, seconds), or None if stopped.

    Progress events come every `progress_every` batches but at most every
    `progress_seconds`: each reads the batches' losses back from the device (a fast GPU
    would otherwise wait on that, and a screen redraw, every few milliseconds) and appends
    the per-batch curve's new points to the run.
    """
    config, r, batches = s.config, s.config.recipe, s.batches
    s.model.train()
    device = s.train_data.labels.device
    affine = Affine(r.rotate, r.translate, r.scale)
    per_batch = s.scheduler if steps_every_batch(config) else None
    curve = _Curve(epoch, batches)
    t0 = last_event = time.perf_counter()
    world = s.world if s.world.active else None
    for i, (x, y) in enumerate(s.train_data.batches(r.batch_size, s.order, world), start=1):
        if s.world.any(stopping(), device):  # every rank stops at the same batch
            return None
        if affine.active:
            x = affine(x, s.augment, data.BACKGROUND, (s.world.batch, s.world.part(s.world.batch)) if world else None)
        out, loss = s.step(x, y)
        s.optimizer.step()
        if per_batch is not None:
            per_batch.step()
        curve.add(loss, (out.argmax(1) == y).sum(), len(y))
        if i == batches or (i % config.progress_every == 0 and time.perf_counter() - last_event >= config.progress_seconds):
            last_event = time.perf_counter()
            elapsed = last_event - t0
            writer.append_points(curve.collect(last=i == batches))
            running_loss = curve.loss_sum / curve.seen
            if not math.isfinite(running_loss) and world is None:
                break  # diverged: the caller reports it, no point training on (ranks go on together)
            event = s.meter.attach(
                BatchProgress(
                    epoch,
                    r.epochs,
                    i,
                    batches,
                    running_loss,
                    100.0 * curve.hits / curve.seen,
                    curve.seen / elapsed if elapsed > 0 else 0.0,
                    elapsed / i * (batches - i),
                )
            )
            writer.heartbeat()
            writer.progress({"phase": "training", **event.to_dict()})
            yield event
    seconds = time.perf_counter() - t0
    curve.collect(last=True)
    totals = torch.tensor([curve.loss_sum, curve.hits, float(curve.seen)], dtype=torch.float64, device=device)
    loss, right, n = s.world.sum(totals).tolist()  # this rank's share of every batch, then all
    return loss / n, 100.0 * right / n, seconds
