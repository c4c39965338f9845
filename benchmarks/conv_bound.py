"""How fast an epoch could be if its convolutions ran at this CPU's best fp32 speed.

    .venv/bin/python benchmarks/conv_bound.py [--versions v1 v2 v3 v4] [--seed-seconds v1=88.1 v2=69] [--rate GFLOPS]
    .venv/bin/python benchmarks/conv_bound.py --measure [--versions v2] [--seed-seconds v2=68.6] [--outside v2=5.2]
    .venv/bin/python benchmarks/conv_bound.py --primitives [--versions v2]
    add --isa avx2 to either: as an AVX2-only CPU would (benchmarks/isa.py)

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

--measure times the engine's fp32 training step instead (batch 128, its layout rules and layer
order, the recipe's optimizer; median of rounds of steps) and splits it with torch.profiler
into the convolutions (oneDNN's forward and backward kernels) and everything else (batch norm,
ReLU, pooling, the loss, the optimizer, Python). With --seed-seconds and --outside (the
engine's seconds outside training in `whole_epoch.py`: imports and exit, data and model, test
pass and saving) it prints what a 2.0x epoch leaves for everything but the convolutions, at
the speed they were measured.

--primitives splits the convolutions further, as oneDNN itself times them (its verbose mode,
over steps of the same training loop): for each layer, the forward pass, the gradient of its
input and the gradient of its weights (with the bias), the implementation oneDNN chose for
each and its milliseconds a step and GFLOP/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_tui.core import memory_format, nets  # noqa: E402
from mnist_tui.core.device import keep_freed_memory  # noqa: E402
from mnist_tui.core.optim import make_optimizer  # noqa: E402
from mnist_tui.core.versions import get_version  # noqa: E402

TRAIN_IMAGES = 60_000
BATCH = 128


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


def engine_step(name: str):
    """The engine's fp32 training step for `name`, as it trains (a function of no arguments)."""
    keep_freed_memory()
    torch.manual_seed(0)
    version = get_version(name)
    model = version.build().to(memory_format=torch.channels_last).train()
    cpu = torch.device("cpu")
    # As the engine builds a run: the fused batch-norm layers, the CPU's fused optimizer step.
    memory_format.nchw_batch_norms(model, cpu, "fp32", nets.fused_batch_norms(model))
    optimizer = make_optimizer(version.config(), model.parameters(), cpu)
    x = torch.randn(BATCH, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def measured_step(name: str, rounds: int = 7, steps: int = 10) -> tuple[float, float]:
    """(median step seconds, of which convolutions) of the engine's fp32 training step."""
    step = engine_step(name)
    for _ in range(steps):
        step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    conv = sum(e.self_cpu_time_total for e in events if "convolution" in e.key) / 1e6 / steps
    total = sum(e.self_cpu_time_total for e in events) / 1e6 / steps
    # The profiled steps run slower than plain ones; the convolutions' share of them is kept.
    median = statistics.median(times)
    return median, median * conv / total


def measure(versions: list[str], seed: dict[str, float], outside: dict[str, float]) -> None:
    steps = -(-TRAIN_IMAGES // BATCH)
    print(f"engine's fp32 training step, batch {BATCH}; an epoch = {steps} steps\n")
    print(
        f"{'version':8} {'step':>9} {'convolutions':>13} {'GFLOP/s':>8} {'the rest':>9} {'epoch: convs':>13} {'the rest':>9}"
        f" {'2.0x allows':>12} {'outside':>8} {'left for the rest':>18}"
    )
    for name in versions:
        step, conv = measured_step(name)
        _, engine = conv_macs_per_image(name, engine_order=True)
        rate = 2 * engine * BATCH / conv / 1e9
        allows = seed[name] / 2 if name in seed else None
        left = allows - outside[name] - conv * steps if allows is not None and name in outside else None
        print(
            f"{name:8} {step * 1e3:>6.1f} ms {conv * 1e3:>6.1f} ms {conv / step:>4.0%} {rate:>8.0f} {(step - conv) * 1e3:>6.1f} ms"
            f" {conv * steps:>11.1f} s {(step - conv) * steps:>7.1f} s"
            f" {f'{allows:.1f} s' if allows is not None else '-':>12} {f'{outside[name]:.1f} s' if name in outside else '-':>8}"
            f" {f'{left:.1f} s' if left is not None else '-':>18}"
        )


# onednn_verbose,v1,primitive,exec,cpu,convolution,IMPLEMENTATION,PROP_KIND,...,PROBLEM,MILLISECONDS
VERBOSE = re.compile(r"^onednn_verbose,.*,exec,cpu,convolution,([^,]+),([a-z_]+),.*,(mb\S+?),([0-9.]+)$")
PROBLEM = re.compile(r"mb(\d+)_ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)")
PASSES = {"forward_training": "forward", "backward_data": "input gradient", "backward_weights": "weight gradient"}


def verbose_lines(step, steps: int) -> list[str]:
    """oneDNN's verbose lines over `steps` calls of `step`: it prints them on file descriptor 1,
    which is pointed at a file meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+") as out:
        os.dup2(out.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                for _ in range(steps):
                    step()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        out.seek(0)
        return out.read().splitlines()


def primitives(versions: list[str], steps: int = 10) -> None:
    """Each convolution's three passes as oneDNN runs them in the engine's step."""
    for name in versions:
        step = engine_step(name)
        for _ in range(steps):
            step()
        seconds: dict[tuple[str, str, str], float] = defaultdict(float)
        for line in verbose_lines(step, steps):
            found = VERBOSE.match(line)
            if found:
                implementation, kind, problem, ms = found.groups()
                seconds[(problem, PASSES.get(kind, kind), implementation)] += float(ms) / steps
        print(f"\n{name}: oneDNN's convolutions in the fp32 training step, ms a step (mean of {steps} steps)\n")
        print("| layer | pass | implementation | ms | GFLOP/s |\n|---|---|---|---:|---:|")
        for (problem, kind, implementation), ms in sorted(seconds.items(), key=lambda kv: -kv[1]):
            n, ci, co, _, h, k = (int(v) for v in PROBLEM.search(problem).groups())  # type: ignore[union-attr]
            flops = 2 * n * h * h * ci * co * k * k
            print(f"| {ci}->{co}, {h}x{h} | {kind} | {implementation} | {ms:.2f} | {flops / ms / 1e6:.0f} |")
        print(f"| all | | | {sum(seconds.values()):.2f} | |")


def pairs(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, float]:
    """VERSION=SECONDS items as a dict; a malformed one ends the script with a usage message."""
    out = {}
    for item in items:
        name, _, seconds = item.partition("=")
        try:
            out[name] = float(seconds)
        except ValueError:
            parser.error(f"{item!r}: expected VERSION=SECONDS, e.g. v2=68.6")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=["v1", "v2", "v3", "v4"])
    parser.add_argument("--seed-seconds", nargs="*", default=[], metavar="VERSION=SECONDS", help="the seed pipeline's whole epoch")
    parser.add_argument("--rate", type=float, metavar="GFLOPS", help="count at this fp32 rate instead of the matrix product's")
    parser.add_argument("--measure", action="store_true", help="time the engine's fp32 training step and its convolutions")
    parser.add_argument("--primitives", action="store_true", help="each convolution's passes as oneDNN times them")
    parser.add_argument("--outside", nargs="*", default=[], metavar="VERSION=SECONDS", help="the engine's whole epoch outside training")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native", help="cap the vector instructions (avx2: as an AVX2-only CPU)")
    args = parser.parse_args()
    from benchmarks import isa

    isa.ensure(args.isa)  # re-executes this script under the caps, read when torch loads
    seed = pairs(parser, args.seed_seconds)
    print(f"{platform.processor() or platform.machine()} ({isa.cpu_flags()}), {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"instruction set: {isa.describe(args.isa)}; ATen capability {torch.backends.cpu.get_cpu_capability()}")
    if args.measure:
        measure(args.versions, seed, pairs(parser, args.outside))
        return 0
    if args.primitives:
        primitives(args.versions)
        return 0
    peak = matmul_gflops()
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
