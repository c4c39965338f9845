"""The training loop: train(config, stop) builds a session, opens its run folder and trains
epoch after epoch (steps, then the test pass), yielding events and keeping the run up to date.

One error contract: anything that fails before training yields RunFailed with no run folder
(never a traceback); a failure while training is recorded in the run (`failure`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import cast

import torch
import torch.nn.functional as F

from mnist_tui.core import data
from mnist_tui.core.augment import Affine
from mnist_tui.core.config import TrainConfig
from mnist_tui.core.device import memory_in_use_mb, test_chunk
from mnist_tui.core.distributed import World
from mnist_tui.core.events import BatchPoint, BatchProgress, EpochFinished, Event, RunFailed, RunFinished, run_started
from mnist_tui.core.optim import steps_every_batch
from mnist_tui.core.step import autocast
from mnist_tui.core.store import SaveError
from mnist_tui.core.train.folder import open_shared, record
from mnist_tui.core.train.session import Session, build_session, setup_reason
from mnist_tui.core.train.sink import RunSink


def train(config: TrainConfig, stop: threading.Event | None = None, run_name: str | None = None) -> Iterator[Event]:
    """Train one run, yielding events; set `stop` (or ask through the run folder's stop file)
    to end it cleanly within one batch. `run_name` names the folder (reserved by a launcher)."""
    stop = stop or threading.Event()
    world = World.from_env()
    ended = False  # the loop ran to its end, on every rank alike
    try:
        try:
            session = build_session(config, world)
            if world.any(stop.is_set(), session.device):  # Ctrl+C while the data was prepared: make no run at all
                yield RunFailed("stopped before training began; nothing was saved", None, "stopped")
                return
            writer = open_shared(session, run_name)
        except Exception as exc:  # setup: bad values, no device, no data, no disk, torch refusing
            yield RunFailed(reason=setup_reason(exc, config), run_dir=None)
            return
        yield from run_epochs(session, writer, stop, [])
        ended = True
    finally:
        world.leave(together=ended)


class Diverged(RuntimeError):
    """The loss stopped being a number."""


def failure(exc: Exception, config: TrainConfig) -> tuple[str, str]:
    """How a failure while training is recorded in the run: its status and reason, in words
    that say what to do about it. (Failures before training make no run: `setup_reason`.)"""
    if isinstance(exc, Diverged):
        return "diverged", str(exc)
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return "failed", f"out of memory at batch size {config.recipe.batch_size}; try a smaller batch size, e.g. {max(1, config.recipe.batch_size // 2)}"
    if isinstance(exc, SaveError):
        return "failed", str(exc)
    return "failed", f"{type(exc).__name__}: {exc}"


def run_epochs(s: Session, writer: RunSink, stop: threading.Event, done: list[EpochFinished]) -> Iterator[Event]:
    """Train epoch after epoch until done, stopped or at the target; the run's status records
    how it ended. `done`: the epochs a resumed run kept."""
    started = time.perf_counter()
    stopping = lambda: stop.is_set() or writer.stop_requested()  # noqa: E731
    status, reason, reached = "stopped", None, None
    if done:  # a resumed run's clock goes on from its last kept epoch
        s.started -= done[-1].elapsed if done[-1].elapsed is not None else sum(e.seconds for e in done)
    try:
        yield run_started(writer.path, record(s))
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
    except GeneratorExit:
        status, reason = "stopped", "training was abandoned"  # its consumer went away
        raise
    except Exception as exc:  # any failure is recorded in the run, then reported
        status, reason = failure(exc, s.config)
    finally:
        writer.close(status, reason)
    if status in ("failed", "diverged"):
        yield RunFailed(f"training diverged: {reason}" if status == "diverged" else str(reason), writer.path, status)
        return
    accs = [e.test_acc for e in done]
    final, best = (accs[-1], max(accs)) if accs else (None, None)
    yield RunFinished(writer.path, status, writer.epochs_done, final, best, time.perf_counter() - started, s.config.target, reached)


def _epoch(s: Session, writer: RunSink, epoch: int, stopping: Callable[[], bool]) -> Generator[BatchProgress, None, EpochFinished | None]:
    """Train and evaluate one epoch and save it; None if stopped before its training ended.

    An epoch whose training finished is always evaluated and kept, even if a stop arrives
    during its test pass (a few seconds at most)."""
    result = yield from _train_epoch(s, writer, epoch, stopping)
    if result is None:
        return None
    train_loss, train_acc, train_seconds = result
    if not math.isfinite(train_loss):
        raise Diverged(f"loss became {train_loss} in epoch {epoch}; try a smaller learning rate")
    lr = s.optimizer.param_groups[0]["lr"]
    if s.scheduler is not None and not steps_every_batch(s.config):
        s.scheduler.step()
    t0 = time.perf_counter()
    if s.recalibrates_bn:
        recalibrate_batch_norms(s)
    test_loss, test_acc = yield from _test_pass(s, writer, epoch, train_loss, train_acc, len(s.train_data) / train_seconds)
    if not math.isfinite(test_loss):
        raise Diverged(f"test loss became {test_loss} in epoch {epoch}; try a smaller learning rate")
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


def recalibrate_batch_norms(s: Session) -> None:
    """Recompute every batch norm's running mean and variance for the current weights: one
    forward pass over the epoch's training images (no augmentation, no dropout, no random
    numbers drawn, so exact resumes stay exact), averaging all batches equally
    (session.RECALIBRATE_BN_BELOW says when, and why)."""
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


def _test_pass(
    s: Session, writer: RunSink, epoch: int, loss: float, accuracy: float, images_per_s: float
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


def _train_epoch(s: Session, writer: RunSink, epoch: int, stopping: Callable[[], bool]) -> Generator[BatchProgress, None, tuple[float, float, float] | None]:
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
