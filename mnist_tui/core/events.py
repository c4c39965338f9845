"""The typed events the training engine yields, in the order a run produces them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_tui.core.config import TrainConfig

REASON_CAP = 200  # characters of config.json's precision_reason shown (the file is untrusted)


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    run_dir: Path
    config: TrainConfig
    device: str  # "cpu", "cuda", "mps"
    device_name: str  # for people: "CPU, 2 threads", "NVIDIA H100 80GB HBM3"
    params: int
    train_size: int
    test_size: int
    batches_per_epoch: int
    precision: str = "fp32"  # the numeric mode in use: "fp32" or "bf16" (autocast)
    precision_reason: str = ""  # why `--precision auto` chose it, where measured speed did
    evaluated_on: str = "test"  # "test", or "holdout" when tuning on held-out training images
    cuda_graph: bool = False  # training steps replayed from a CUDA graph (see core/step.py)
    warning: str | None = None  # something the user should know, e.g. a fallback to eager steps
    world_size: int = 1  # processes training the run together (torch.distributed)
    backend: str = ""  # their process group's backend: gloo (CPU) or nccl (CUDA)


def run_started(run_dir: Path, record: Mapping[str, Any]) -> RunStarted:
    """A run's RunStarted from its config.json record: the one builder of the engine (from the
    record it writes) and of every follower (from the record it reads), so both show the same.
    Raises ConfigError, TypeError, ValueError or OverflowError on a record that cannot be read."""
    config = TrainConfig.from_dict(record.get("config"))
    train_size, test_size = (int(record.get(k) or 0) for k in ("train_size", "test_size"))
    batches = record.get("batches_per_epoch")  # absent in runs made before it was recorded
    if not isinstance(batches, int) or isinstance(batches, bool) or batches < 1:
        batches = -(-train_size // max(1, config.recipe.batch_size))
    world = record.get("world_size")
    warning, reason = record.get("warning"), record.get("precision_reason")
    return RunStarted(
        run_id=run_dir.name,
        run_dir=run_dir,
        config=config,
        device=str(record.get("device", "")),
        device_name=str(record.get("device_name") or record.get("device") or ""),
        params=int(record.get("params") or 0),
        train_size=train_size,
        test_size=test_size,
        batches_per_epoch=batches,
        precision=str(record.get("precision") or ""),
        precision_reason=reason[:REASON_CAP] if isinstance(reason, str) else "",
        evaluated_on=str(record.get("evaluated_on") or "test"),
        cuda_graph=record.get("cuda_graph") is True,
        warning=warning if isinstance(warning, str) and warning else None,
        world_size=world if isinstance(world, int) and not isinstance(world, bool) and world >= 1 else 1,
        backend=str(record.get("backend") or ""),
    )


@dataclass(frozen=True)
class BatchProgress:
    epoch: int  # 1-based
    epochs: int
    batch: int  # batches done in this epoch
    batches: int
    loss: float  # running mean over the epoch so far
    accuracy: float  # running, percent
    images_per_s: float
    seconds_left: float  # estimated time to the end of this epoch's training
    phase: str = "training"  # or "evaluating": the epoch's test pass is under way
    # The trainer's resource use at this moment (see core/resources.py); None where unknown.
    cpu_percent: float | None = None  # of one core, since the previous progress
    rss_mb: float | None = None
    gpu_util: float | None = None
    gpu_memory_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class BatchPoint:
    """One point of the per-batch training curve: the mean loss and accuracy over the batches
    since the previous point, up to `batch` of `batches` in `epoch` (batches.csv's lines)."""

    epoch: int
    batch: int
    batches: int
    loss: float
    acc: float  # percent

    @property
    def x(self) -> float:
        """Where it sits on an axis of epochs: 2.5 is halfway through the second epoch."""
        return self.epoch - 1 + self.batch / self.batches


@dataclass(frozen=True)
class EpochFinished:
    epoch: int
    epochs: int
    train_loss: float
    train_acc: float  # percent
    test_loss: float
    test_acc: float  # percent, on the full test set
    lr: float  # the learning rate this epoch trained with
    seconds: float  # training and evaluation
    images_per_s: float  # training images per second, evaluation excluded
    memory_mb: float | None = None  # accelerator memory in use; None on the CPU
    # What the epoch cost the trainer process (core/resources.py); None in runs made before.
    cpu_seconds: float | None = None  # CPU time, training and test pass
    cpu_percent: float | None = None  # of one core, on average over the epoch
    rss_mb: float | None = None  # resident memory at the epoch's end
    gpu_util: float | None = None  # mean NVML utilisation over the epoch's progress samples
    elapsed: float | None = None  # seconds from the call into the engine to this epoch's end (over resumes)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class RunFinished:
    run_dir: Path
    status: str  # "finished", or "stopped" when the stop event ended it early
    epochs_done: int
    final_test_acc: float | None
    best_test_acc: float | None
    seconds: float
    target: float | None = None  # the test accuracy it was to stop at (--target)
    reached: EpochFinished | None = None  # the first epoch that reached it


@dataclass(frozen=True)
class RunFailed:
    reason: str
    run_dir: Path | None  # None when it failed before a run folder was made
    status: str = "failed"  # or "diverged"; a followed run may also end "interrupted" or "damaged"


Event = RunStarted | BatchProgress | EpochFinished | RunFinished | RunFailed
