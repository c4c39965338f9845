"""A new run's folder: what config.json records of the session, made by rank 0 and shared
with every other rank."""

from __future__ import annotations

import socket

import torch

from mnist_tui import __version__
from mnist_tui.core.device import device_name
from mnist_tui.core.stamp import make_stamp, save_diff
from mnist_tui.core.store import RunWriter, default_runs_dir
from mnist_tui.core.train.ranks import Follower, Refused
from mnist_tui.core.train.session import Session, setup_reason
from mnist_tui.core.train.sink import RunSink


def record(s: Session, devices: list[str] | None = None) -> dict[str, object]:
    """What config.json records of a run as this session trains it; RunStarted is built
    from it (events.run_started), in the trainer and in every follower alike."""
    fields: dict[str, object] = {
        "config": s.config.to_dict(),
        "seed": s.config.seed,
        "device": s.device.type,
        "device_name": device_name(s.device),
        "precision": s.precision,
        "precision_reason": s.precision_reason or None,
        "cuda_graph": s.step.graph,
        "cudnn_search": s.step.searched,
        "nchw_batch_norms": s.nchw,
        "fused_batch_norms": s.fused,
        "evaluated_on": s.evaluated_on,
        "bn_recalibrated": s.recalibrates_bn,
        "torch_version": torch.__version__,
        "mnist_tui_version": __version__,
        "params": s.params,
        "train_size": len(s.train_data),
        "test_size": s.test_size,
        "batches_per_epoch": s.batches,
        "world_size": s.world.size,
        "warning": s.warning,
    }
    if s.world.active:
        fields.update(backend=s.world.backend, devices=devices)
    return fields


def open_new(s: Session, run_name: str | None, devices: list[str] | None = None) -> RunWriter:
    """A new run folder (named `run_name` if a launcher reserved one), under its lock, its
    config.json stamped with the code and machine it starts from (core/stamp.py)."""
    stamp, diff = make_stamp()
    writer = RunWriter.create(default_runs_dir(s.config.runs_dir), s.config.model, {**record(s, devices), "stamp": stamp}, name=run_name)
    try:
        save_diff(writer.path, diff)
    except OSError:  # the run goes on; its stamp says the diff was not kept (its sha256 still is)
        try:
            writer.update_record(stamp={**stamp, "git": {**stamp["git"], "diff_saved": False}})
        except OSError:
            pass  # a full disk: config.json keeps saying saved, and code.diff is missing
    return writer


def open_shared(s: Session, run_name: str | None) -> RunSink:
    """Rank 0 makes the run folder; every other rank learns its name (or why it failed)."""
    if not s.world.active:
        return open_new(s, run_name)
    devices = s.world.gather(f"{s.device} ({device_name(s.device)}) on {socket.gethostname()}")
    writer, failure = None, None
    if s.world.leader:
        try:
            writer = open_new(s, run_name, devices)
        except Exception as exc:
            failure = exc
    name, reason = s.world.share((writer.path.name if writer else None, setup_reason(failure, s.config) if failure else None))
    if failure is not None:
        raise failure
    if reason or not isinstance(name, str):
        raise Refused(reason or "rank 0 made no run folder")
    return writer if writer is not None else Follower(default_runs_dir(s.config.runs_dir) / name)
