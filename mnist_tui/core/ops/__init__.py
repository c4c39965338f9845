"""The operators the networks call: batch norm with ReLU, and with 2x2 max pooling too.

Each function here takes the modules a network holds and picks, for a training pass, the
fused operator (core/ops/bn_pool.py: one pass each way in the compiled kernels) where it
applies (a plain training-mode BatchNorm2d on an fp32 channels_last CPU tensor, the kernels
built and checked: core/fused.py), and the modules themselves elsewhere, so that their hooks
(core/memory_format.py's layout detours) and PyTorch's numbers stay as they were. Both compute
the same function: ReLU and max pooling commute (both keep order), so pooling first, and its
gradient, are those of pooling after ReLU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from mnist_tui.core import fused
from mnist_tui.core.ops import bn_pool

Tensor = torch.Tensor
__all__ = ["batch_norm_pool_relu", "batch_norm_relu", "bn_pool"]


def _fused(op: Callable[..., tuple[Tensor, ...]], bn: nn.BatchNorm2d, x: Tensor) -> Tensor:
    assert bn.num_batches_tracked is not None and bn.running_mean is not None and bn.running_var is not None and isinstance(bn.momentum, float)
    out, *_, mean, var = op(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.momentum, bn.eps)
    with torch.no_grad():  # the operators are functional: the new running statistics come back
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.add_(1)  # as nn.BatchNorm2d counts its training batches
    return out


def batch_norm_relu(bn: nn.BatchNorm2d, x: Tensor, relu: Callable[[Tensor], Tensor] = F.relu) -> Tensor:
    """relu(bn(x)): the fused operator where it applies, else the modules."""
    if fused.applies(bn, x):
        return _fused(torch.ops.mnist_tui.bn_relu, bn, x)
    return relu(cast(Tensor, bn(x)))  # nn.Module calls are typed Any


def batch_norm_pool_relu(bn: nn.BatchNorm2d, x: Tensor, pool: nn.Module, relu: Callable[[Tensor], Tensor] = F.relu) -> Tensor:
    """relu(pool(bn(x))), pooled before ReLU (the same function, ReLU on a quarter of the
    values): the fused operator where it applies, else the modules."""
    if fused.applies(bn, x, pool):
        return _fused(torch.ops.mnist_tui.bn_pool_relu, bn, x)
    return relu(cast(Tensor, pool(bn(x))))  # nn.Module calls are typed Any
