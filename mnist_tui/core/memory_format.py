"""Memory layout for CPU training: channels_last, except batch norms PyTorch runs slowly in it.

The engine trains in channels_last, where oneDNN's convolutions are fastest. PyTorch's own
channels_last batch norm, though, vectorises across channels, and it is several times slower
when the channel count is not a multiple of 16. `nchw_batch_norms` routes those layers through
NCHW while training (copies both ways included, they still win). The rule: in bf16, channel
counts that are not a multiple of 16; in fp32, fewer than 16 channels. The measurements
behind it are printed by `python benchmarks/throughput.py --batch-norm` and kept, with the
machine, in benchmarks/results/throughput.md. Evaluation is left alone: it is faster in
channels_last throughout.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

CHANNELS_LAST = torch.channels_last
NCHW = torch.contiguous_format


def slow_in_channels_last(channels: int, precision: str) -> bool:
    """Whether a training batch norm over `channels` runs faster in NCHW on the CPU."""
    if precision == "bf16":
        return channels % 16 != 0
    return channels < 16


class ToFormat(torch.autograd.Function):
    """`x.contiguous(memory_format=to)` whose gradient is made contiguous in `back`.

    Plain `.contiguous()` passes the gradient through in whatever layout it arrives, and the
    layer behind it would then run its backward on a layout it is slow on."""

    # ctx is Any, as in torch.autograd.Function itself: forward stores its own attributes on it.
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, to: torch.memory_format, back: torch.memory_format) -> torch.Tensor:
        ctx.back = back
        return x.contiguous(memory_format=to)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad.contiguous(memory_format=ctx.back), None, None


def _into_nchw(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...] | None:
    if not module.training:
        return None
    return (ToFormat.apply(args[0], NCHW, CHANNELS_LAST), *args[1:])


def _back_to_channels_last(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor | None:
    if not module.training:
        return None
    return cast(torch.Tensor, ToFormat.apply(out, CHANNELS_LAST, NCHW))  # Function.apply is typed Any


def nchw_batch_norms(model: nn.Module, device: torch.device, precision: str, fused: list[str] | None = None) -> list[str]:
    """Make the model's slow channels_last batch norms train in NCHW; returns their names.

    Only on the CPU: the gap is in PyTorch's CPU kernel; on CUDA batch norm runs in cuDNN, and
    no gap was measured there. The layers keep their parameters and state dict; hooks convert
    the layout around them in training mode only. The `fused` layers are left alone: they
    train in core/fused.py's kernels, which have no slow channel counts."""
    if device.type != "cpu":
        return []
    names = []
    for name, module in model.named_modules():
        if name in (fused or []):
            continue
        if isinstance(module, nn.BatchNorm2d) and slow_in_channels_last(module.num_features, precision):
            module.register_forward_pre_hook(_into_nchw)
            module.register_forward_hook(_back_to_channels_last)
            names.append(name)
    return names
