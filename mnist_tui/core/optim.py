"""The recipe's optimizer and learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from mnist_tui.core import fused as kernels
from mnist_tui.core.config import TrainConfig


def make_optimizer(config: TrainConfig, params: Iterable[torch.nn.Parameter], device: torch.device | None = None) -> torch.optim.Optimizer:
    """The recipe's optimizer; on CUDA and the CPU its fused step (one kernel over every
    parameter, not one op per tensor list): v2's fp32 CPU step went from about 70 to 65 ms, at
    AVX2 as natively (Adam and AdamW; SGD's fused step gives the same numbers and time).
    `MNIST_TUI_FUSED=0`, which turns the project's fused fast paths off, keeps PyTorch's default
    (foreach) step on the CPU."""
    r = config.recipe
    # None is each optimizer's own default for `fused` (the same as not passing it).
    on = device is not None and (device.type == "cuda" or (device.type == "cpu" and kernels.switched_on()))
    fused = True if on else None
    if r.optimizer == "adam":
        return torch.optim.Adam(params, lr=r.lr, weight_decay=r.weight_decay, fused=fused)
    if r.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay, fused=fused)
    return torch.optim.SGD(params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay, fused=fused)


def steps_every_batch(config: TrainConfig) -> bool:
    """Whether the run's scheduler steps after every batch (onecycle) or after every epoch."""
    return config.recipe.scheduler == "onecycle"


# One-cycle moves SGD's momentum against the learning rate, MOMENTUM_SWING below the recipe's
# and as much above it (at most halfway to 1): 0.85 to 0.95 around the recipes' 0.9, PyTorch's
# own defaults, so that the measured recipes train as they did. It used to take those
# defaults whatever the recipe said, so a --momentum (or a sweep's momentum) under one-cycle
# changed nothing.
MOMENTUM_SWING = 0.05
ADAM_BETA1 = 0.9


def onecycle_momenta(momentum: float) -> tuple[float, float]:
    """(the lowest, the highest) momentum of a one-cycle schedule around `momentum` in [0, 1):
    0.05 below it (not under 0) and 0.05 above, or halfway to 1 where that is nearer (a
    momentum of 1 never forgets)."""
    low = max(0.0, round(momentum - MOMENTUM_SWING, 6))
    top = momentum + min(MOMENTUM_SWING, (1.0 - momentum) / 2)
    high = round(top, 6)  # 0.9 + 0.05 is 0.95 exactly, as PyTorch's default
    if high >= 1.0:  # rounding (or the sum itself, a hair from 1) reached 1: stay below it
        high = max(momentum, min(top, math.nextafter(1.0, 0.0)))
    return low, high


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, batches: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The run's LR schedule; onecycle is stepped every batch, the others every epoch."""
    r = config.recipe
    if r.scheduler == "onecycle":
        # Adam's beta1 (0.9; the recipe has no field for it) cycles as PyTorch's defaults have it.
        low, high = onecycle_momenta(r.momentum if r.optimizer == "sgd" else ADAM_BETA1)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=r.lr, total_steps=r.epochs * batches, pct_start=0.2, base_momentum=low, max_momentum=high)
    if r.scheduler == "cosine":
        # Stepped once per epoch, so T_max = epochs anneals over exactly the whole run.
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=r.epochs)
    if r.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=r.step_size, gamma=0.5)
    return None
