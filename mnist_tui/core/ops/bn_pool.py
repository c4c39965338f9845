"""Batch norm (training mode), ReLU and 2x2 max pooling as torch.library custom operators.

`mnist_tui::bn_relu` and `mnist_tui::bn_pool_relu` return the output, what their backward
passes read, and the running mean and variance updated, without writing their inputs: PyTorch
registers an autograd formula only on a functional operator (register_autograd refuses one
with mutates_args), so these follow aten's own `_native_batch_norm_legit_functional`, which
returns the new running statistics for the caller to write back (core/ops/__init__.py does).
`mnist_tui::bn_relu_backward` and `mnist_tui::bn_pool_relu_backward` are the backward passes,
operators too, so that a traced backward graph holds them. Each has a fake implementation (shapes and strides, no data) and
the forward ones an autograd formula. Their implementation is the compiled kernels
(core/fused.py) where those are available and take the tensors (fp32 channels_last CPU), and
PyTorch's own operations (core/ops/reference.py: any dtype, any device) elsewhere.
"""

from __future__ import annotations

from typing import Any

import torch

from mnist_tui.core import fused
from mnist_tui.core.ops import reference

CL = torch.channels_last
Tensor = torch.Tensor


def _kernels_take(x: Tensor, *vectors: Tensor) -> bool:
    return fused.takes(x, *vectors) and fused.available()


def _backward_takes(grad: Tensor, x: Tensor, stats: Tensor, weight: Tensor, *pooled: Tensor) -> bool:
    """Whether the backward kernels can run on these: every shape what the forward pass gave
    (the kernels trust them: a wrong one would read past a tensor's end), fp32 channels_last."""
    n, c, h, w = x.shape if x.dim() == 4 else (0, 0, 0, 0)
    out = (n, c, h // 2, w // 2) if pooled else (n, c, h, w)
    shapes = grad.shape == out and all(t.shape == out and fused.takes(t) for t in pooled)
    plain = stats.shape == (4, c) and stats.dtype == torch.float32 and stats.device.type == "cpu" and stats.is_contiguous()
    return shapes and plain and fused.takes(grad) and _kernels_take(x, weight)


@torch.library.custom_op("mnist_tui::bn_relu", mutates_args=())
def bn_relu(
    x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor, momentum: float, eps: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """relu(batch_norm(x)) in training mode: (the output, channels_last; the 4 x C statistics;
    the running mean and variance updated)."""
    mean, var = running_mean.clone(), running_var.clone()
    if _kernels_take(x, weight, bias, mean, var):
        return (*fused.bn_relu_forward(x, weight, bias, mean, var, momentum, eps), mean, var)
    return (*reference.bn_relu_forward(x, weight, bias, mean, var, momentum, eps), mean, var)


@torch.library.custom_op("mnist_tui::bn_relu_backward", mutates_args=())
def bn_relu_backward(grad: Tensor, x: Tensor, stats: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of x, the weight and the bias through bn_relu."""
    grad = grad.contiguous(memory_format=CL)
    if _backward_takes(grad, x, stats, weight):
        return fused.bn_relu_backward(grad, x, stats, weight)
    return reference.bn_relu_backward(grad, x, stats, weight)


@torch.library.custom_op("mnist_tui::bn_pool_relu", mutates_args=())
def bn_pool_relu(
    x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor, momentum: float, eps: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """relu(max_pool2d(batch_norm(x), 2, 2)) in training mode, H and W even: (the output, the
    input value each window picked, the statistics, the running mean and variance updated)."""
    if x.dim() != 4 or x.shape[2] % 2 or x.shape[3] % 2:
        raise ValueError(f"bn_pool_relu takes (N, C, H, W) with H and W even, got {list(x.shape)}")
    mean, var = running_mean.clone(), running_var.clone()
    if _kernels_take(x, weight, bias, mean, var):
        return (*fused.bn_pool_relu_forward(x, weight, bias, mean, var, momentum, eps), mean, var)
    return (*reference.bn_pool_relu_forward(x, weight, bias, mean, var, momentum, eps), mean, var)


@torch.library.custom_op("mnist_tui::bn_pool_relu_backward", mutates_args=())
def bn_pool_relu_backward(grad: Tensor, x: Tensor, picked: Tensor, stats: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of x, the weight and the bias through bn_pool_relu."""
    grad = grad.contiguous(memory_format=CL)
    if _backward_takes(grad, x, stats, weight, picked):
        return fused.bn_pool_relu_backward(grad, x, picked, stats, weight)
    return reference.bn_pool_relu_backward(grad, x, picked, stats, weight)


def _like(x: Tensor, h: Any, w: Any) -> Tensor:
    return torch.empty((x.shape[0], x.shape[1], h, w), dtype=x.dtype, device=x.device, memory_format=CL)


@bn_relu.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor, momentum: float, eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _like(x, x.shape[2], x.shape[3]), x.new_empty((4, x.shape[1])), torch.empty_like(running_mean), torch.empty_like(running_var)


@bn_pool_relu.register_fake
def _(
    x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor, momentum: float, eps: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    torch._check(x.dim() == 4 and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0, lambda: "bn_pool_relu takes H and W even")
    pooled = _like(x, x.shape[2] // 2, x.shape[3] // 2)
    return pooled, torch.empty_like(pooled), x.new_empty((4, x.shape[1])), torch.empty_like(running_mean), torch.empty_like(running_var)


@bn_relu_backward.register_fake
def _(grad: Tensor, x: Tensor, stats: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return _like(x, x.shape[2], x.shape[3]), weight.new_empty(x.shape[1]), weight.new_empty(x.shape[1])


@bn_pool_relu_backward.register_fake
def _(grad: Tensor, x: Tensor, picked: Tensor, stats: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return _like(x, x.shape[2], x.shape[3]), weight.new_empty(x.shape[1]), weight.new_empty(x.shape[1])


# ctx is Any, as in torch.autograd.Function itself; inputs and output are the operator's.
def _save(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    ctx.save_for_backward(inputs[0], inputs[1], *output[1:-2])  # x, the weight, (picked,) statistics
    ctx.mark_non_differentiable(*output[1:])  # all but the output


def _bn_relu_grads(ctx: Any, grad: Tensor, *unused: Tensor | None) -> tuple[Tensor | None, ...]:
    x, weight, stats = ctx.saved_tensors
    gx, gw, gb = torch.ops.mnist_tui.bn_relu_backward(grad, x, stats, weight)
    return gx, gw, gb, None, None, None, None


def _bn_pool_relu_grads(ctx: Any, grad: Tensor, *unused: Tensor | None) -> tuple[Tensor | None, ...]:
    x, weight, picked, stats = ctx.saved_tensors
    gx, gw, gb = torch.ops.mnist_tui.bn_pool_relu_backward(grad, x, picked, stats, weight)
    return gx, gw, gb, None, None, None, None


bn_relu.register_autograd(_bn_relu_grads, setup_context=_save)
bn_pool_relu.register_autograd(_bn_pool_relu_grads, setup_context=_save)
