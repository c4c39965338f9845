"""The Session: what one run trains with (data, model, optimizer, step, random streams),
built from a config by `build_session`, which raises only setup errors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from mnist_tui.core import data, fused, memory_format, nets
from mnist_tui.core.config import ConfigError, TrainConfig
from mnist_tui.core.device import DeviceError, choose_precision, keep_freed_memory
from mnist_tui.core.distributed import World, globalise
from mnist_tui.core.optim import make_optimizer, make_scheduler
from mnist_tui.core.resources import Meter
from mnist_tui.core.step import EagerStep, make_step, search_pays
from mnist_tui.core.store import Checkpoint, CheckpointError, SaveError, default_runs_dir
from mnist_tui.core.train.ranks import Refused, join, parallel
from mnist_tui.core.validate import check_config
from mnist_tui.core.versions import get_version

# Batch norm's running statistics are an exponential average (momentum 0.1) of batches seen
# while the weights moved. In a short epoch (a --limit check) they lag the weights so far that
# the test accuracy looks broken: v2 on 2,000 images for 2 epochs scored 31% with them and
# 90% with statistics recomputed for the final weights (86% train accuracy). Epochs shorter
# than this many batches recompute them before evaluation (loop.recalibrate_batch_norms);
# full-data recipes (469 batches and more) are untouched.
RECALIBRATE_BN_BELOW = 100


@dataclass(kw_only=True)
class Session:
    """What one run trains with: built once, then restored into when resuming."""

    config: TrainConfig
    device: torch.device
    precision: str
    precision_reason: str  # why `auto` chose it, where measured speed did (else "")
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    step: EagerStep
    train_data: data.DeviceSplit
    test_data: data.DeviceSplit  # this rank's share of the evaluated images
    evaluated_on: str  # "test" or "holdout"
    nchw: list[str]  # the batch norms that run in NCHW (core/memory_format.py)
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

    @property
    def recalibrates_bn(self) -> bool:
        """Whether the batch norms' statistics are recomputed before each test pass."""
        return self.batches < RECALIBRATE_BN_BELOW

    @property
    def warning(self) -> str | None:
        """What the user should know about how this session trains (a fallback, slower kernels)."""
        return "; ".join(w for w in (self.step.fallback, self.kernels_warning) if w) or None

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


def build_session(config: TrainConfig, world: World | None = None) -> Session:
    """Everything a run needs, on its device (this rank's, in the process group); raises
    only setup errors."""
    started = time.perf_counter()  # a run's time to its target counts from here
    check_config(config)
    keep_freed_memory()
    world = world or World()
    device = join(config, world)
    train_split, test_split = data.load(config.data_dir)
    evaluated_on = "test"
    if config.holdout:
        train_split, test_split = train_split.split_off(config.holdout)
        evaluated_on = "holdout"
    r = config.recipe
    torch.manual_seed(config.seed)
    precision, precision_reason = choose_precision(config.precision, device, config.model)
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
    step = make_step(parallel(model, device, world), optimizer, device, precision, r.batch_size, config.cuda_graph, world, search)
    scheduler = make_scheduler(config, optimizer, train_data.num_batches(r.batch_size))
    # Recorded before any checkpoint is restored: restoring copies into the same tensors.
    step.prepare(train_data.images[: r.batch_size], train_data.labels[: r.batch_size])
    session = Session(
        config=config,
        device=device,
        precision=precision,
        precision_reason=precision_reason,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        step=step,
        train_data=train_data,
        test_data=test_data.share(world),
        evaluated_on=evaluated_on,
        nchw=nchw,
        fused=fused_bns,
        test_size=len(test_data),
        world=world,
        meter=Meter(device),
        started=started,
        kernels_warning=kernels_warning,
    )
    session.order.manual_seed(config.seed + 1)
    session.augment.manual_seed(config.seed + 2)
    return session


def setup_reason(exc: BaseException, config: TrainConfig | None) -> str:
    """Why a run could not be set up (or resumed), in one line for RunFailed."""
    if isinstance(exc, OSError) and not isinstance(exc, SaveError):
        where = default_runs_dir(config.runs_dir) if config is not None else "the run folder"
        return f"cannot write into {where}: {exc.strerror or exc}"
    if isinstance(exc, (ConfigError, DeviceError, data.DataError, CheckpointError, Refused)):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:300]}"
