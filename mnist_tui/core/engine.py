"""The training loop: train(config, stop) yields events and keeps the run store up to date."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from mnist_tui import __version__
from mnist_tui.core import data, layout
from mnist_tui.core.augment import Affine
from mnist_tui.core.config import ConfigError, TrainConfig, check_config
from mnist_tui.core.events import BatchProgress, EpochFinished, Event, RunFailed, RunFinished, RunStarted
from mnist_tui.core.step import EagerStep, autocast, make_step
from mnist_tui.core.runs import CHECKPOINT, RESUMABLE, CheckpointError, RunWriter, default_runs_dir, load_checkpoint, read_run
from mnist_tui.core.versions import get_version


class DeviceError(RuntimeError):
    """The requested device is not available on this machine."""


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU; a named device must exist."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but this machine has no usable CUDA GPU; use --device cpu or auto")
    if name == "mps" and not has_mps:
        raise DeviceError("--device mps was asked for, but Apple MPS is not available here; use --device cpu or auto")
    return torch.device(name)


def bf16_native(device: torch.device) -> bool:
    """Whether the device computes bf16 natively (CPU: AVX512-BF16 or AMX; CUDA: Ampere on)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        try:
            return any(probe() for probe in probes if probe is not None)
        except RuntimeError:
            return False
    return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """`auto` means bf16 autocast where the hardware has it natively, fp32 elsewhere.

    An explicit bf16 is honoured wherever autocast supports it (slowly where emulated); MPS
    always trains in fp32.
    """
    if device.type == "mps":
        return "fp32"
    if requested == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    return requested


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU, {torch.get_num_threads()} threads"


def memory_in_use_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return None


def make_optimizer(config: TrainConfig, params, device: torch.device | None = None) -> torch.optim.Optimizer:
    """The recipe's optimizer; on CUDA the fused kernel (one launch per step, not one per op)."""
    r = config.recipe
    fused = {"fused": True} if device is not None and device.type == "cuda" else {}
    if r.optimizer == "adam":
        return torch.optim.Adam(params, lr=r.lr, weight_decay=r.weight_decay, **fused)
    if r.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay, **fused)
    return torch.optim.SGD(params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay, **fused)


def steps_every_batch(config: TrainConfig) -> bool:
    """Whether the run's scheduler steps after every batch (onecycle) or after every epoch."""
    return config.recipe.scheduler == "onecycle"


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, batches: int):
    """The run's LR schedule; onecycle is stepped every batch, the others every epoch."""
    r = config.recipe
    if r.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=r.lr, total_steps=r.epochs * batches, pct_start=0.2)
    if r.scheduler == "cosine":
        # Stepped once per epoch, so T_max = epochs anneals over exactly the whole run.
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=r.epochs)
    if r.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=r.step_size, gamma=0.5)
    return None


def evaluate(model: torch.nn.Module, split: data.DeviceSplit, batch_size: int, stop: threading.Event, precision: str = "fp32") -> tuple[float, float] | None:
    """Mean loss and accuracy (%) over the whole split; None if stopped part-way."""
    model.eval()
    device = split.labels.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    with torch.inference_mode():
        for x, y in split.batches(batch_size):
            if stop.is_set():
                return None
            with autocast(device, precision):
                out = model(x)
            out = out.float()
            loss_sum += F.cross_entropy(out, y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
    n = len(split)
    return loss_sum.item() / n, 100.0 * correct.item() / n


def train(config: TrainConfig, stop: threading.Event | None = None) -> Iterator[Event]:
    """Train one run, yielding events; set `stop` to end it cleanly within one batch."""
    yield from _run(config, stop or threading.Event(), None)


def resume(run_dir: Path, stop: threading.Event | None = None, data_dir: str | None = None) -> Iterator[Event]:
    """Continue a stopped or interrupted run from its last checkpoint to its planned epochs.

    The checkpoint holds the random states of the weights/dropout and data-order generators,
    so on the CPU the resumed epochs equal those of an uninterrupted run with the same seed.
    """
    record = read_run(Path(run_dir))
    if record.status not in RESUMABLE:
        why = f": {record.reason}" if record.reason else ""
        yield RunFailed(f"{record.run_id} is {record.status}{why}; only {' or '.join(RESUMABLE)} runs can be resumed", None)
        return
    config = TrainConfig.from_dict(record.config["config"])
    if data_dir:
        config = config.replace(data_dir=data_dir)
    yield from _run(config, stop or threading.Event(), record.path)


def _run(config: TrainConfig, stop: threading.Event, resume_dir: Path | None) -> Iterator[Event]:
    try:
        check_config(config)
        device = resolve_device(config.device)
        train_split, test_split = data.load(config.data_dir)
        evaluated_on = "test"
        if config.holdout:
            train_split, test_split = train_split.split_off(config.holdout)
            evaluated_on = "holdout"
        check_batch_size(config, len(train_split))
    except (ConfigError, DeviceError, data.DataError) as exc:
        yield RunFailed(reason=str(exc), run_dir=None)
        return

    version = get_version(config.model)
    r = config.recipe
    # Separate seeds for the weights (and dropout) and for the data order.
    torch.manual_seed(config.seed)
    order = torch.Generator().manual_seed(config.seed + 1)
    augment = torch.Generator().manual_seed(config.seed + 2)
    precision = resolve_precision(config.precision, device)
    # channels_last lets the CPU (oneDNN) and CUDA (cuDNN) convolutions skip layout reorders.
    model = version.build(dropout=r.dropout).to(device, memory_format=torch.channels_last)
    nchw = layout.nchw_batch_norms(model, device, precision)
    optimizer = make_optimizer(config, model.parameters(), device)
    step = make_step(model, optimizer, device, precision, r.batch_size, config.cuda_graph)
    train_data = data.DeviceSplit.from_split(train_split, device, config.limit)
    test_data = data.DeviceSplit.from_split(test_split, device)
    batches = train_data.num_batches(r.batch_size)
    scheduler = make_scheduler(config, optimizer, batches)
    # Recorded before any checkpoint is restored: restoring copies into the same tensors.
    step.prepare(train_data.images[: r.batch_size], train_data.labels[: r.batch_size])
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    runs_dir = default_runs_dir(config.runs_dir)
    first_epoch, accs = 1, []
    if resume_dir is not None:
        try:
            first_epoch, accs = _restore(resume_dir, device, model, optimizer, scheduler, order, augment)
            writer = RunWriter.reopen(resume_dir, first_epoch - 1)
        except (CheckpointError, OSError) as exc:
            yield RunFailed(reason=f"cannot resume {resume_dir.name}: {exc}", run_dir=None)
            return
    else:
        try:
            writer = RunWriter.create(
                runs_dir,
                config.model,
                {
                    "config": config.to_dict(),
                    "seed": config.seed,
                    "device": device.type,
                    "device_name": device_name(device),
                    "precision": precision,
                    "cuda_graph": step.graph,
                    "nchw_batch_norms": nchw,
                    "evaluated_on": evaluated_on,
                    "torch_version": torch.__version__,
                    "mnist_tui_version": __version__,
                    "params": params,
                    "train_size": len(train_data),
                    "test_size": len(test_data),
                },
            )
        except OSError as exc:
            yield RunFailed(reason=f"cannot write a run into {runs_dir}: {exc.strerror or exc}", run_dir=None)
            return

    yield RunStarted(
        run_id=writer.path.name,
        run_dir=writer.path,
        config=config,
        device=device.type,
        device_name=device_name(device),
        params=params,
        train_size=len(train_data),
        test_size=len(test_data),
        batches_per_epoch=batches,
        precision=precision,
        cuda_graph=step.graph,
        warning=step.fallback,
        evaluated_on=evaluated_on,
    )

    started = time.perf_counter()
    try:
        for epoch in range(first_epoch, r.epochs + 1):
            result = yield from _train_epoch(
                config, step, train_data, order, epoch, batches, stop, writer, scheduler=scheduler, augment=augment,
            )
            if result is None:
                break
            train_loss, train_acc, train_seconds = result
            if not math.isfinite(train_loss):
                reason = f"loss became {train_loss} in epoch {epoch}; try a smaller learning rate"
                writer.set_status("diverged", reason)
                yield RunFailed(f"training diverged: {reason}", writer.path, "diverged")
                return
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None and not steps_every_batch(config):
                scheduler.step()
            t0 = time.perf_counter()
            evaluated = evaluate(model, test_data, r.test_batch_size, stop, precision)
            if evaluated is None:
                break
            test_loss, test_acc = evaluated
            finished = EpochFinished(
                epoch=epoch,
                epochs=r.epochs,
                train_loss=train_loss,
                train_acc=train_acc,
                test_loss=test_loss,
                test_acc=test_acc,
                lr=lr,
                seconds=train_seconds + time.perf_counter() - t0,
                images_per_s=len(train_data) / train_seconds,
                memory_mb=memory_in_use_mb(device),
            )
            writer.append_epoch(finished.to_dict())
            writer.save_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else {},
                    "epoch": epoch,
                    "config": config.to_dict(),
                    # What exact continuation needs: the dropout and data-order streams.
                    "rng": {"torch": torch.get_rng_state(), "order": order.get_state(), "augment": augment.get_state()},
                }
            )
            accs.append(test_acc)
            yield finished
    except GeneratorExit:
        # A consumer that abandons the generator leaves the run stopped, epochs kept.
        if writer.status == "running":
            writer.set_status("stopped", "training was abandoned")
        raise
    except Exception as exc:  # any failure is recorded in the run, then reported
        reason = _failure_reason(exc, config, writer)
        try:
            writer.set_status("failed", reason)
        except OSError:
            pass  # the disk that failed the save may fail this too; the event still says why
        yield RunFailed(reason=reason, run_dir=writer.path)
        return

    status = "finished" if writer.epochs_done == r.epochs else "stopped"
    writer.set_status(status)
    yield RunFinished(
        run_dir=writer.path,
        status=status,
        epochs_done=writer.epochs_done,
        final_test_acc=accs[-1] if accs else None,
        best_test_acc=max(accs) if accs else None,
        seconds=time.perf_counter() - started,
    )


def _failure_reason(exc: Exception, config: TrainConfig, writer: RunWriter) -> str:
    """What went wrong, in words that say what to do about it."""
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return f"out of memory at batch size {config.recipe.batch_size}; try a smaller batch size, e.g. --batch-size {max(1, config.recipe.batch_size // 2)}"
    if isinstance(exc, OSError):
        return (
            f"could not save to {writer.path} ({exc.strerror or exc}); the checkpoint of epoch "
            f"{writer.epochs_done} is intact"
        )
    return f"{type(exc).__name__}: {exc}"


def check_batch_size(config: TrainConfig, available: int) -> None:
    n = available if config.limit is None else min(config.limit, available)
    if config.recipe.batch_size > n:
        raise ConfigError(f"batch size {config.recipe.batch_size} is larger than the {n:,} training images; use a smaller batch size")


def _restore(run_dir: Path, device, model, optimizer, scheduler, order, augment) -> tuple[int, list[float]]:
    """Load a run's checkpoint into the fresh objects; return the next epoch and past accuracies."""
    if not (run_dir / CHECKPOINT).exists():  # stopped during epoch 1: start that epoch again
        return 1, []
    ckpt = load_checkpoint(run_dir, map_location=str(device))
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if "rng" in ckpt:
        torch.set_rng_state(ckpt["rng"]["torch"])
        order.set_state(ckpt["rng"]["order"])
        if "augment" in ckpt["rng"]:
            augment.set_state(ckpt["rng"]["augment"])
    done = int(ckpt["epoch"])
    accs = [m["test_acc"] for m in read_run(run_dir).metrics[:done]]
    return done + 1, accs


def _train_epoch(config, step: EagerStep, train_data, order, epoch, batches, stop, writer=None, *, scheduler=None, augment=None):
    """One pass over the training data; returns (loss, acc %, seconds), or None if stopped.

    Progress events come every `progress_every` batches but at most every
    `progress_seconds`: each reads the running sums back from the device, and a fast GPU
    would otherwise wait on that, and a screen redraw, every few milliseconds.
    """
    r = config.recipe
    step.model.train()
    device = train_data.labels.device
    affine = Affine(r.rotate, r.translate, r.scale)
    per_batch = scheduler if steps_every_batch(config) else None
    # Accumulate on the device and read back only at progress events: no per-step sync.
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    t0 = last_event = time.perf_counter()
    for i, (x, y) in enumerate(train_data.batches(r.batch_size, order), start=1):
        if stop.is_set():
            return None
        if affine.active and augment is not None:
            x = affine(x, augment, data.BACKGROUND)
        out, loss = step(x, y)
        step.optimizer.step()
        if per_batch is not None:
            per_batch.step()
        loss_sum += loss.detach() * len(y)
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
        if i == batches or (i % config.progress_every == 0 and time.perf_counter() - last_event >= config.progress_seconds):
            last_event = time.perf_counter()
            elapsed = last_event - t0
            running_loss = loss_sum.item() / seen
            if not math.isfinite(running_loss):
                break  # diverged: the caller reports it, no point training on
            if writer is not None:
                writer.heartbeat()
            yield BatchProgress(
                epoch=epoch,
                epochs=r.epochs,
                batch=i,
                batches=batches,
                loss=running_loss,
                accuracy=100.0 * correct.item() / seen,
                images_per_s=seen / elapsed if elapsed > 0 else 0.0,
                seconds_left=elapsed / i * (batches - i),
            )
    return loss_sum.item() / seen, 100.0 * correct.item() / seen, time.perf_counter() - t0
