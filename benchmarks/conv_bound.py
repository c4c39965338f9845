"""How fast an epoch could be if its convolutions ran at this CPU's best fp32 speed.

    .venv/bin/python benchmarks/conv_bound.py [--versions v1 v2 v3 v4] [--seed-seconds v1=88.1 v2=69] [--rate GFLOPS]

For each version: the multiply-adds of its convolutions per training image (forward, the
gradient of each input that needs one, the gradient of the weights), counted from the
convolutions' output shapes; the same for a whole epoch of 60,000 images; and the seconds
those take at the speed of one large fp32 matrix product on this machine (the most a CPU
does per second; convolutions reach it at best). With the seed pipeline's whole-epoch seconds
(`--seed-seconds`, from `benchmarks/whole_epoch.py`), it also prints the time a 2.0x epoch
allows and what remains of it once the convolutions alone are paid at that speed.

The last two columns count the convolutions the engine's training pass really runs: v1 and v2
train in a quicker order that computes the same function (core/nets.py: pooling before ReLU,
and v1's last convolution averaged before it is applied, a linear layer of 0.3 M
multiply-adds an image in its place, which is not counted here).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_tui.core.versions import get_version  # noqa: E402

TRAIN_IMAGES = 60_000


def conv_macs_per_image(name: str, engine_order: bool = False) -> tuple[int, int]:
    """(forward multiply-adds, training multiply-adds) of the version's convolutions, as the
    seed's code calls them, or (`engine_order`) as the engine's training pass does."""
    model = get_version(name).build()
    forward, training = 0, 0
    first = True

    def count(module: nn.Conv2d, inputs, output) -> None:
        nonlocal forward, training, first
        k = module.kernel_size[0] * module.kernel_size[1]
        macs = output[0].numel() * (module.in_channels // module.groups) * k
        forward += macs
        # weights' gradient always; the input's gradient except for the image itself
        training += macs * (2 if first else 3)
        first = False

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.train(engine_order)(torch.randn(1, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    return forward, training


def matmul_gflops(size: int = 2048, repeats: int = 8) -> float:
    """fp32 GFLOP/s of a large matrix product, best of `repeats`, on every thread torch uses."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=["v1", "v2", "v3", "v4"])
    parser.add_argument("--seed-seconds", nargs="*", default=[], metavar="VERSION=SECONDS", help="the seed pipeline's whole epoch")
    parser.add_argument("--rate", type=float, metavar="GFLOPS", help="count at this fp32 rate instead of the matrix product's")
    args = parser.parse_args()
    seed = {}
    for item in args.seed_seconds:
        name, _, seconds = item.partition("=")
        seed[name] = float(seconds)
    peak = matmul_gflops()
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"fp32 matrix product (2048x2048): {peak:.0f} GFLOP/s")
    if args.rate:
        peak = args.rate
    print(f"seconds counted at {peak:.0f} GFLOP/s\n")
    print(
        f"{'version':8} {'conv MACs/image':>16} {'train MACs/image':>17} {'TFLOP/epoch':>12} {'s/epoch at peak':>16} "
        f"{'2.0x allows':>12} {'left':>7} {'engine train MACs/image':>24} {'engine s/epoch':>15}"
    )
    for name in args.versions:
        forward, training = conv_macs_per_image(name)
        tflop = 2 * training * TRAIN_IMAGES / 1e12
        seconds = tflop * 1e3 / peak
        allows = f"{seed[name] / 2:.1f} s" if name in seed else "-"
        left = f"{seed[name] / 2 - seconds:.1f} s" if name in seed else "-"
        _, engine = conv_macs_per_image(name, engine_order=True)
        engine_seconds = 2 * engine * TRAIN_IMAGES / 1e9 / peak
        print(
            f"{name:8} {forward / 1e6:>14.2f} M {training / 1e6:>15.2f} M {tflop:>12.2f} {seconds:>14.1f} s "
            f"{allows:>12} {left:>7} {engine / 1e6:>22.2f} M {engine_seconds:>13.1f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
