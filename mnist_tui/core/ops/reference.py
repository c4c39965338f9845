"""The fused operators' arithmetic in PyTorch's own operations, for any dtype and device.

What core/ops/bn_pool.py's operators compute where the compiled kernels do not take the
tensors (float64, bf16, CUDA, no compiler): the same outputs, the same 4 x C statistics
(mean, 1 / sqrt(var + eps), a and b of batch_norm(x) = a x + b) and the same backward formula
as kernels/bn_pool.c, so that gradcheck in float64 checks the formula the kernels implement.
The variance is PyTorch's (two passes), the reference the kernels' one-pass merge is held to.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHANNELS_LAST = torch.channels_last
DIMS = (0, 2, 3)  # every position of a channel


def _channel(v: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, 1, 1)


def _laid_out(t: torch.Tensor) -> torch.Tensor:
    """t copied into a fresh channels_last tensor: the strides the kernels and the fake
    implementations give, whatever t's own are."""
    out = torch.empty(t.shape, dtype=t.dtype, device=t.device, memory_format=CHANNELS_LAST)
    return out.copy_(t)


def batch_stats(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, momentum: float, eps: float) -> torch.Tensor:
    """The 4 x C statistics of x; the running mean and (unbiased) variance updated in place,
    as nn.BatchNorm2d updates them."""
    count = x.numel() // x.shape[1]
    if count < 2:
        raise ValueError(f"batch norm in training needs more than 1 value per channel, got input of size {list(x.shape)}")
    m, v = x.mean(DIMS), x.var(DIMS, correction=0)
    inv = torch.rsqrt(v + eps)
    a = weight * inv
    mean.mul_(1 - momentum).add_((momentum * m).to(mean.dtype))
    var.mul_(1 - momentum).add_((momentum * v * count / (count - 1)).to(var.dtype))
    return torch.stack([m, inv, a, bias - m * a])


def bn_relu_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, momentum: float, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    st = batch_stats(x, weight, bias, mean, var, momentum, eps)
    return _laid_out(F.relu(x * _channel(st[2]) + _channel(st[3]))), st


def bn_pool_relu_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, momentum: float, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    st = batch_stats(x, weight, bias, mean, var, momentum, eps)
    pooled, where = F.max_pool2d(x * _channel(st[2]) + _channel(st[3]), 2, 2, return_indices=True)
    picked = x.flatten(2).gather(2, where.flatten(2)).view_as(pooled)
    return _laid_out(F.relu(pooled)), _laid_out(picked), st


def _input_grads(dy: torch.Tensor, x: torch.Tensor, st: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From dy, the gradient of batch_norm(x) (ReLU and pooling already gone through): the
    gradients of x, the weight and the bias; grad_x = w inv (dy - sum(dy) / M - xhat sum(dy xhat) / M)."""
    count = x.numel() // x.shape[1]
    centred = x - _channel(st[0])
    sg, dy_xhat = dy.sum(DIMS), (dy * centred).sum(DIMS) * st[1]
    scale = _channel(weight * st[1])
    gx = scale * (dy - _channel(sg) / count - centred * _channel(st[1] * dy_xhat) / count)
    return _laid_out(gx), dy_xhat, sg


def bn_relu_backward(grad: torch.Tensor, x: torch.Tensor, st: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dy = torch.where(x * _channel(st[2]) + _channel(st[3]) <= 0, 0.0, grad)  # NaN passes, as in ReLU's backward
    return _input_grads(dy, x, st, weight)


def bn_pool_relu_backward(
    grad: torch.Tensor, x: torch.Tensor, picked: torch.Tensor, st: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, b = _channel(st[2]), _channel(st[3])
    _, where = F.max_pool2d(x * a + b, 2, 2, return_indices=True)  # each window's first largest, as forward
    dy = torch.where(picked * a + b <= 0, 0.0, grad)
    dy = F.max_unpool2d(dy.contiguous(), where.contiguous(), (2, 2), (2, 2), output_size=x.shape[-2:])
    return _input_grads(dy, x, st, weight)
