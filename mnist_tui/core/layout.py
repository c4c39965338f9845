"""Memory layout for CPU training: channels_last, except batch norms PyTorch runs slowly in it.

The engine trains in channels_last, where oneDNN's convolutions are fastest. PyTorch's own
channels_last batch norm, though, vectorises over the channel dimension, and when the channel
count does not fill its vectors it falls to scalar code: on this project's 2-core AVX-512 CPU,
forward + backward + ReLU on a 128x12x28x28 bf16 batch takes 12.1 ms in channels_last but 3.1 ms
in NCHW, copies both ways included (128x24x28x28: 9.2 / 7.3 ms; 16 or 48 channels: channels_last
wins 2x). `nchw_batch_norms` routes those layers through NCHW while training: v2 trains 9-10%
faster, v3 15-18% and v4 16% (benchmarks/results/throughput.md). Which layers: in bf16, channel
counts that are not a multiple of 16; in fp32, fewer than 16 channels (24 channels is faster in
channels_last there). Evaluation is left alone: it is faster in channels_last throughout.
"""

from __future__ import annotations

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

    @staticmethod
    def forward(ctx, x, to, back):
        ctx.back = back
        return x.contiguous(memory_format=to)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=ctx.back), None, None


def _into_nchw(module: nn.Module, args: tuple) -> tuple | None:
    if not module.training:
        return None
    return (ToFormat.apply(args[0], NCHW, CHANNELS_LAST), *args[1:])


def _back_to_channels_last(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor | None:
    if not module.training:
        return None
    return ToFormat.apply(out, CHANNELS_LAST, NCHW)


def nchw_batch_norms(model: nn.Module, device: torch.device, precision: str) -> list[str]:
    """Make the model's slow channels_last batch norms train in NCHW; returns their names.

    Only on the CPU (cuDNN's channels_last batch norm has no such gap). The layers keep their
    parameters and state dict; hooks convert the layout around them in training mode only."""
    if device.type != "cpu":
        return []
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d) and slow_in_channels_last(module.num_features, precision):
            module.register_forward_pre_hook(_into_nchw)
            module.register_forward_hook(_back_to_channels_last)
            names.append(name)
    return names
