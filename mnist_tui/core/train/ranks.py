"""What differs under torch.distributed: joining the process group, DDP around the model,
the follower that keeps the run on ranks other than 0, and what those ranks learn from it.

Under torchrun the same functions run on every process (see core/distributed.py): rank 0
owns the run folder and the others train beside it, writing nothing (`Follower`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch

from mnist_tui.core.config import ConfigError, TrainConfig
from mnist_tui.core.device import DeviceError, resolve_device
from mnist_tui.core.distributed import World, cpu_threads
from mnist_tui.core.events import BatchPoint
from mnist_tui.core.store import Checkpoint
from mnist_tui.core.store.records import read_run
from mnist_tui.core.validate import split_problem


class Refused(RuntimeError):
    """Rank 0 could not set the run up; the other ranks learn why from it."""


def join(config: TrainConfig, world: World) -> torch.device:
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


def parallel(model: torch.nn.Module, device: torch.device, world: World) -> torch.nn.Module:
    """The module the training step calls: DDP around the model in a world of several
    processes. Buffers are synchronised once, at the start: GlobalBatchNorm keeps them equal
    on every rank from then on."""
    if not world.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False)


def peer_device(run_dir: Path) -> torch.device:
    """The device a run trains on, as every rank can tell before rank 0 has shared the
    config (which decides the process group's backend): from the run's config.json."""
    config = read_run(run_dir).config.get("config")
    name = config.get("device") if isinstance(config, dict) else None
    try:
        return resolve_device(name if isinstance(name, str) else "auto")
    except DeviceError:
        return torch.device("cpu")


class Follower:
    """The run as a rank other than 0 keeps it (a train.sink.RunSink): rank 0 owns the
    folder, this writes nothing."""

    def __init__(self, path: Path, epochs_done: int = 0) -> None:
        self.path, self.epochs_done = path, epochs_done

    def heartbeat(self) -> None:
        pass

    def stop_requested(self) -> bool:
        return False  # rank 0 reads the stop file; every rank learns of it at the next batch

    def progress(self, fields: dict[str, Any]) -> None:
        pass

    def append_epoch(self, metrics: dict[str, Any]) -> None:
        self.epochs_done = cast(int, metrics["epoch"])

    def append_points(self, points: list[BatchPoint]) -> None:
        pass

    def save_checkpoint(self, ckpt: Checkpoint) -> None:
        pass

    def close(self, status: str, reason: str | None = None) -> None:
        pass
