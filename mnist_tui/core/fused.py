"""The compiled batch norm, ReLU and 2x2 max pooling kernels, for fp32 CPU training: built,
loaded, checked, and called on tensors.

In v2's fp32 training step on the CPU, a third of the time went to batch norm, ReLU, max
pooling and their backward passes (benchmarks/results/whole_epoch.md): PyTorch runs each as
its own pass over tensors too large for the cache (v2's second layer: 9.6 MB a batch), and
pooling's backward zero-fills a full-size gradient before it scatters into it. The C file in
kernels/ does the same arithmetic in fewer passes. It is compiled on first use with the
system's C compiler (`cc`, or $CC), about half a second, into a cache folder keyed by the
source, the compiler and the CPU; later runs load it, only if it is exactly what was built
(core/kernel_cache.py), and without running the compiler. It must then reproduce PyTorch's
results on a small check, or it is not used. `MNIST_TUI_FUSED=rebuild` builds it anew,
whatever the cache holds (a failed build is otherwise not retried for a day).
`MNIST_TUI_FUSED_MARCH=x86-64-v3` builds for that -march target instead of the CPU's own (here:
as an AVX2-only CPU would run them), kept apart from the native build in the cache.

This module is the library and nothing else: the operators autograd, FakeTensor and
torch.compile see are core/ops/ (`mnist_tui::bn_relu`, `mnist_tui::bn_pool_relu` and their
backward passes), which call the functions here where applies() says the kernels take the
tensors, and PyTorch's own operations elsewhere (no compiler, another platform, a failed
check, bf16, CUDA, channels other than innermost, `MNIST_TUI_FUSED=0`): the same function,
only slower. The kernels' threads are OpenMP's, which in a PyTorch process on Linux are
PyTorch's own (the same libgomp), as many as torch.get_num_threads(), so the two never
compete for the cores.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mnist_tui.core import kernel_cache, paths
from mnist_tui.core.kernel_cache import KernelError as KernelError  # raised here too; callers catch it from this module

SOURCE = Path(__file__).with_name("kernels") / "bn_pool.c"
ENV_SWITCH = "MNIST_TUI_FUSED"  # "0" turns the fused kernels off; "rebuild" builds them anew
CHANNELS_LAST = torch.channels_last
# Tried in order: the fastest build first, then builds for compilers that lack an option.
FLAG_SETS = (
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-fopenmp"],
    ["-O3", "-march=native"],
    ["-O3"],
)
# A -march target built instead of native's, say x86-64-v3 (AVX2 and FMA, no AVX-512) to time
# on this machine what an AVX2-only CPU would run. Only the sets that name it are tried, so a
# target the compiler does not know fails the build and says so rather than building another.
ENV_MARCH = "MNIST_TUI_FUSED_MARCH"
_MARCH_TARGET = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")  # what GCC and Clang targets look like; nothing a shell or a flag could hide in
_i64, _ptr, _dbl, _int = ctypes.c_int64, ctypes.c_void_p, ctypes.c_double, ctypes.c_int
_SIGNATURES = {
    "bn_relu_forward": [_ptr, _i64, _i64, _ptr, _ptr, _ptr, _ptr, _dbl, _dbl, _ptr, _ptr, _int],
    "bn_relu_backward": [_ptr, _ptr, _ptr, _ptr, _i64, _i64, _ptr, _ptr, _ptr, _int],
    "bn_pool_relu_forward": [_ptr, _i64, _i64, _i64, _i64, _ptr, _ptr, _ptr, _ptr, _dbl, _dbl, _ptr, _ptr, _ptr, _int],
    "bn_pool_relu_backward": [_ptr, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64, _ptr, _ptr, _ptr, _int],
}


def cache_dir() -> Path:
    """Where the compiled kernels are kept (paths.kernel_cache_dir, as `mnist-tui --where` says)."""
    return paths.kernel_cache_dir()


def flag_sets() -> tuple[list[str], ...]:
    """The compiler flag sets to try: FLAG_SETS, or with $MNIST_TUI_FUSED_MARCH's target in
    place of -march=native; KernelError if that is not a target's name."""
    march = os.environ.get(ENV_MARCH, "")
    if not march:
        return FLAG_SETS
    if not _MARCH_TARGET.fullmatch(march):
        raise KernelError(f"{ENV_MARCH}={ascii(march[:40])} is not a -march target (lower-case letters, digits, '.', '_', '-')")
    return tuple([f"-march={march}" if flag == "-march=native" else flag for flag in flags] for flags in FLAG_SETS if "-march=native" in flags)


def switched_on() -> bool:
    """False where `MNIST_TUI_FUSED=0` turns the fused fast paths off: these kernels and the
    fused optimizer step on the CPU (core/optim.py), PyTorch's plain paths in their place."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


@cache
def _library() -> ctypes.CDLL:
    """The compiled kernels, built on first use (core/kernel_cache.py); KernelError if they
    cannot be."""
    switch = os.environ.get(ENV_SWITCH, "1")
    if not switched_on():
        raise KernelError(f"turned off by {ENV_SWITCH}=0")
    if not sys.platform.startswith("linux"):
        raise KernelError(f"not built on {sys.platform}")
    lib = kernel_cache.load(SOURCE, flag_sets(), cache_dir(), rebuild=switch == "rebuild", rebuild_hint=f"{ENV_SWITCH}=rebuild")
    for name, argtypes in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, ctypes.c_int
    return lib


@cache
def status() -> str:
    """'fused', or why PyTorch's own operations run instead (builds and checks the kernels
    on its first call)."""
    try:
        _library()
        with torch.inference_mode(False), torch.enable_grad():
            _check()
    except KernelError as exc:
        return f"PyTorch's operations ({exc})"
    except Exception as exc:  # a crash in the check means the kernels cannot be trusted
        return f"PyTorch's operations (the start-up check failed: {type(exc).__name__}: {exc})"
    return "fused"


def _built_and_checked() -> bool:
    """Whether the fused kernels are built, loaded and checked (builds them if needed)."""
    return status() == "fused"


# available(): _built_and_checked, which torch.compile calls once and takes as a constant (it
# is one for the process) instead of tracing the build into each graph.
available: Callable[[], bool] = torch.compiler.assume_constant_result(_built_and_checked)  # type: ignore[no-untyped-call]  # torch leaves it untyped


def _call(name: str, *args: Any) -> None:
    """The kernel `name` on these arguments, tensors passed as their data pointers."""
    code = getattr(_library(), name)(*(a.data_ptr() if isinstance(a, torch.Tensor) else a for a in args))
    if code != 0:
        raise KernelError(f"{name} returned {code}")


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch before 2.4 took no device
        return bool(torch.is_autocast_cpu_enabled())


def _plain(t: torch.Tensor | None, channels: int) -> bool:
    """A contiguous float32 CPU vector of `channels`: what the kernels read and write."""
    return t is not None and t.device.type == "cpu" and t.dtype == torch.float32 and t.shape == (channels,) and t.is_contiguous()


def _tensors_ok(bn: nn.Module, x: torch.Tensor) -> bool:
    return (
        type(bn) is nn.BatchNorm2d  # not SyncBatchNorm, not a subclass with its own forward
        and bn.training
        and bn.affine
        and bn.track_running_stats
        and isinstance(bn.momentum, float)
        and bn.running_mean is not None
        and bn.running_var is not None
        and takes(x, bn.weight, bn.bias, bn.running_mean, bn.running_var)
        and not _autocast_on()
    )


def applies(bn: nn.Module, x: torch.Tensor, pool: nn.Module | None = None) -> bool:
    """Whether relu(bn(x)), or relu(pool(bn(x))), can run fused: a training-mode plain
    BatchNorm2d on an fp32 channels_last CPU tensor, a 2x2 stride-2 max pool on even sizes,
    and the kernels available. The layout hooks of core/memory_format.py are bypassed: the
    fused kernels have no slow channel counts."""
    if not _tensors_ok(bn, x):
        return False
    if pool is not None:
        plain = isinstance(pool, nn.MaxPool2d) and pool.kernel_size in (2, (2, 2)) and pool.stride in (2, (2, 2))
        plain = plain and pool.padding in (0, (0, 0)) and pool.dilation in (1, (1, 1)) and not pool.ceil_mode and not pool.return_indices
        if not plain or x.shape[2] % 2 or x.shape[3] % 2:
            return False
    return available()


def _threads() -> int:
    return max(1, torch.get_num_threads())


def takes(x: torch.Tensor, *vectors: torch.Tensor) -> bool:
    """Whether the kernels compute on these tensors as they are: x an fp32 channels_last CPU
    tensor of 4 dimensions, the vectors (weight, bias, running statistics) contiguous fp32
    CPU vectors of its channels. Says nothing of whether the library is built (available())."""
    ok = x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4 and x.is_contiguous(memory_format=CHANNELS_LAST)
    return ok and all(_plain(t, x.shape[1]) for t in vectors)


def bn_relu_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, momentum: float, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """relu(batch_norm(x)) in training mode, the running mean and variance updated in place:
    (the output, the 4 x C statistics the backward pass reads). Only where takes(x, ...)."""
    n, c, h, w = x.shape
    out = torch.empty_like(x, memory_format=CHANNELS_LAST)
    st = torch.empty(4, c, dtype=torch.float32)
    _call("bn_relu_forward", x, n * h * w, c, weight, bias, mean, var, momentum, eps, out, st, _threads())
    return out, st


def bn_relu_backward(grad: torch.Tensor, x: torch.Tensor, st: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of x, the weight and the bias, from the output's gradient (channels_last)."""
    n, c, h, w = x.shape
    gx, gw, gb = _gradients_of(x)
    _call("bn_relu_backward", x, grad, st, weight, n * h * w, c, gx, gw, gb, _threads())
    return gx, gw, gb


def bn_pool_relu_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, momentum: float, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """relu(max_pool2d(batch_norm(x), 2, 2)), H and W even: (the output, the input value each
    window picked, the statistics)."""
    n, c, h, w = x.shape
    out = torch.empty((n, c, h // 2, w // 2), dtype=torch.float32, memory_format=CHANNELS_LAST)
    picked = torch.empty_like(out)
    st = torch.empty(4, c, dtype=torch.float32)
    _call("bn_pool_relu_forward", x, n, h, w, c, weight, bias, mean, var, momentum, eps, out, picked, st, _threads())
    return out, picked, st


def bn_pool_relu_backward(
    grad: torch.Tensor, x: torch.Tensor, picked: torch.Tensor, st: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of x, the weight and the bias through the pooled forward pass."""
    n, c, h, w = x.shape
    gx, gw, gb = _gradients_of(x)
    _call("bn_pool_relu_backward", x, grad, picked, st, weight, n, h, w, c, gx, gw, gb, _threads())
    return gx, gw, gb


def _gradients_of(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Empty tensors for the gradients of x, the weight and the bias."""
    return torch.empty_like(x, memory_format=CHANNELS_LAST), torch.empty(x.shape[1], dtype=torch.float32), torch.empty(x.shape[1], dtype=torch.float32)


def _check() -> None:
    """Run both kernels on small cases against PyTorch's operations; KernelError on a mismatch.

    Guards against a compiler that builds the file but computes something else (flags, a
    vectoriser bug): both of the flat passes' paths (channels that tile 16-float blocks, as in
    training, and channels that do not), negative scales and a tie in a pooling window."""
    generator = torch.Generator().manual_seed(0)
    for shape in ((3, 5, 6, 4), (2, 8, 4, 4)):
        x = torch.randn(*shape, generator=generator).contiguous(memory_format=CHANNELS_LAST)
        x[0, 0, 0, 1] = x[0, 0, 0, 0]  # a tie: the first position must take the gradient
        for pooled in (False, True):
            _check_one(x, pooled, generator)


def _check_one(x: torch.Tensor, pooled: bool, generator: torch.Generator) -> None:
    n, c, h, w = x.shape
    ours, theirs = nn.BatchNorm2d(c), nn.BatchNorm2d(c)
    with torch.no_grad():
        ours.weight.copy_(torch.linspace(-1.5, 2.0, c))
        ours.bias.copy_(torch.linspace(0.5, -0.5, c))
    theirs.load_state_dict(ours.state_dict())
    b = x.clone().requires_grad_()
    grad = torch.randn(n, c, h // 2 if pooled else h, w // 2 if pooled else w, generator=generator).contiguous(memory_format=CHANNELS_LAST)
    assert ours.running_mean is not None and ours.running_var is not None
    args = (ours.weight.detach(), ours.bias.detach(), ours.running_mean, ours.running_var, 0.1, 1e-5)
    if pooled:
        out, picked, st = bn_pool_relu_forward(x, *args)
        gx, gw, gb = bn_pool_relu_backward(grad, x, picked, st, ours.weight.detach())
    else:
        out, st = bn_relu_forward(x, *args)
        gx, gw, gb = bn_relu_backward(grad, x, st, ours.weight.detach())
    ref = F.relu(F.max_pool2d(theirs(b), 2, 2)) if pooled else F.relu(theirs(b))
    ref.backward(grad)
    pairs = [
        (out, ref), (gx, b.grad), (gw, theirs.weight.grad), (gb, theirs.bias.grad),
        (ours.running_mean, theirs.running_mean), (ours.running_var, theirs.running_var),
    ]  # fmt: skip
    for got, want in pairs:
        if got is None or want is None or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            raise KernelError("the compiled kernels disagree with PyTorch on the start-up check")
