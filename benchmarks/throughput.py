"""Training images/s: the seed notebooks' pipeline against this project's engine, same CPU/GPU.

    .venv/bin/python benchmarks/throughput.py [--versions v1 v2 v3 v4] [--steps 120] [--rounds 3]

For each version, the same number of training steps at batch 128 through:

(a) seed: what the seed notebooks do - `torchvision.datasets.MNIST` with `ToTensor()` and
    `Normalize((0.1307,), (0.3081,))`, a `DataLoader(batch_size=128, shuffle=True)`, the
    version's optimizer, fp32, eager, default memory format;
(b) engine: `mnist_tui.core.train.train` with the version's recipe and the app's defaults
    (tensor-resident data, channels_last but for the batch norms it is slow on, numeric mode
    `auto`, no per-step sync); its
    second epoch's training images/s (the first is the warm-up). Augmentation is switched
    off so that both sides do the same work (v3 and v4's recipes augment; the seed's do not);
(c) tui: the same run as (b) started from the app's Train screen (a Textual worker, the app
    rendering every progress update in a headless terminal), as benchmarks/ui_speed.py
    measures it, with the version picked in the app, in a fresh process as a user's would
    be. (In this process the main thread has already run torch: GNU OpenMP then counts more
    threads than cores and stops spin-waiting in the worker's thread pool, which alone costs
    a thread-run engine 10-35% on two cores.)

The default run ends with the whole-epoch table of benchmarks/whole_epoch.py for the same
versions, fp32 and the default mode, the seed script and `mnist-tui train` alternated in
--whole-epoch-pairs pairs (3): what a user feels, start-up and test pass included, where the
tables above count steady training steps only. --no-whole-epoch skips it.

--batch-norm prints only the table behind core/memory_format.py's choice of layout per batch norm.

--test-chunks prints only the table behind device.test_chunk: seconds for one test pass over
all 10,000 test images per version, numeric mode and chunk size (the recipes' 2000 down to 128).

--ablate adds a table for one version (default v2) of the options weighed for the engine,
each measured on the same tensor-resident loop: fp32 contiguous, channels_last, bf16 autocast,
both, both with NCHW batch norms where channels_last is slow (the engine), and the engine's
options with flushed denormals, with the fused optimizer step, and (with --compile)
torch.compile, whose compile time is reported separately.

(a) and (b) alternate in one process for --rounds rounds after a warm-up, so drift on a noisy
machine hits both; the table shows the median of each side and their ratio. (c) runs once per
version, in this process, after the others.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 128


def seed_loader(data_root: str, train: bool, batch_size: int = BATCH):
    """The seed notebooks' data pipeline: torchvision's MNIST, ToTensor + Normalize, a DataLoader."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    return DataLoader(datasets.MNIST(data_root, train=train, download=False, transform=tf), batch_size=batch_size, shuffle=train)


def seed_pipeline_ips(name: str, steps: int, warmup: int, data_root: str) -> float:
    """Images/s of the seed notebooks' loop over `steps` batches, after `warmup` batches."""
    import torch.nn.functional as F

    from benchmarks.seed_order import in_seed_order
    from mnist_tui.core.optim import make_optimizer
    from mnist_tui.core.versions import get_version

    version = get_version(name)
    loader = seed_loader(data_root, train=True)
    model = in_seed_order(version.build())  # the seed's layer order, not the engine's quicker one
    model.train()
    optimizer = make_optimizer(version.config(), model.parameters())
    batches = iter(loader)
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        x, y = next(batches)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return steps * BATCH / (time.perf_counter() - t0)


def same_work(name: str, steps: int, runs: str, precision: str):
    """The version's recipe at batch 128 without augmentation, for `steps` batches an epoch."""
    from mnist_tui.core.versions import get_version

    return get_version(name).config(
        epochs=2,
        batch_size=BATCH,
        limit=steps * BATCH,
        runs_dir=runs,
        precision=precision,
        rotate=0.0,
        translate=0.0,
        scale=0.0,
    )


def engine_ips(name: str, steps: int, runs: str, precision: str = "auto") -> tuple[float, str]:
    """The engine's training images/s in its second epoch of `steps` batches (epoch 1 warms up)."""
    from mnist_tui.core.events import EpochFinished, RunStarted
    from mnist_tui.core.train import train

    config = same_work(name, steps, runs, precision)
    mode, ips = "", 0.0
    for ev in train(config, threading.Event()):
        if isinstance(ev, RunStarted):
            mode = ev.precision
        elif isinstance(ev, EpochFinished):
            ips = ev.images_per_s
    return ips, mode


def tui_in_fresh_process(name: str, steps: int, precision: str) -> float:
    """(c): the TUI's training images/s for `name`, measured in a new Python process."""
    cmd = [sys.executable, __file__, "--tui-one", name, "--steps", str(steps), "--precision", precision]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def tui_one(name: str, steps: int, precision: str) -> None:
    from benchmarks.ui_speed import tui_ips

    with tempfile.TemporaryDirectory() as runs:
        print(asyncio.run(tui_ips(same_work(name, steps, runs, precision), Path(runs)))[0], flush=True)


def resident_ips(name: str, steps: int, warmup: int, options: set[str]) -> tuple[float, float]:
    """A bare training loop on normalised tensors already in memory, with some options on:
    "cl" channels_last, "bf16" autocast, "bn" the batch norms channels_last is slow on in NCHW
    (core/memory_format.py), "denormal" flush-to-zero, "fused" fused optimizer, "compile"
    torch.compile. Returns (images/s, seconds spent before the first step ends)."""
    import torch
    import torch.nn.functional as F

    from mnist_tui.core import data
    from mnist_tui.core.memory_format import nchw_batch_norms
    from mnist_tui.core.optim import make_optimizer
    from mnist_tui.core.versions import get_version

    version = get_version(name)
    train, _ = data.load()
    n = (warmup + steps) * BATCH
    images, labels = data.normalise(train.images[:n]), train.labels[:n]
    torch.set_flush_denormal("denormal" in options)
    model = version.build()
    if "cl" in options:
        model = model.to(memory_format=torch.channels_last)
    if "bn" in options:
        nchw_batch_norms(model, torch.device("cpu"), "bf16" if "bf16" in options else "fp32")
    params = list(model.parameters())
    optimizer = make_optimizer(version.config(), params)
    if "fused" in options:
        for group in optimizer.param_groups:
            group["fused"] = True
            group["foreach"] = False
    step_model = torch.compile(model) if "compile" in options else model
    order = torch.randperm(n)
    t_start = time.perf_counter()
    first = t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        idx = order[i * BATCH : (i + 1) * BATCH]
        x, y = images[idx], labels[idx]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in options):
            out = step_model(x)
        loss = F.cross_entropy(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if first is None:
            first = time.perf_counter() - t_start
    torch.set_flush_denormal(False)
    return steps * BATCH / (time.perf_counter() - t0), first


ABLATION = (
    ("fp32, contiguous", set()),
    ("channels_last", {"cl"}),
    ("bf16 autocast", {"bf16"}),
    ("channels_last + bf16", {"cl", "bf16"}),
    ("+ NCHW batch norms off 16 channels (the engine)", {"cl", "bf16", "bn"}),
    ("+ flush denormals", {"cl", "bf16", "bn", "denormal"}),
    ("+ fused optimizer step", {"cl", "bf16", "bn", "fused"}),
)


def batch_norm_layouts(batch: int = BATCH, repeats: int = 6, calls: int = 15) -> None:
    """Print forward + backward + ReLU times of a training batch norm in channels_last and routed
    through NCHW (core/memory_format.py, copies both ways included), per channel count, bf16 and fp32:
    the measurements behind `memory_format.slow_in_channels_last`. Best of `repeats` runs of `calls`."""
    import torch
    import torch.nn.functional as F

    from mnist_tui.core.memory_format import CHANNELS_LAST, NCHW, ToFormat, slow_in_channels_last

    def best_ms(fn, x, grad) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(x).backward(grad)
            times.append((time.perf_counter() - t0) / calls * 1e3)
        return min(times)

    print(f"\nBatch norm + ReLU, forward + backward, batch {batch}, best of {repeats} x {calls} calls:\n")
    print("| dtype | channels | size | channels_last ms | via NCHW ms | NCHW / channels_last | engine uses |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for dtype, precision in ((torch.bfloat16, "bf16"), (torch.float32, "fp32")):
        for channels, size in ((8, 28), (12, 28), (16, 28), (24, 28), (32, 28), (48, 14), (64, 7)):
            bn = torch.nn.BatchNorm2d(channels)
            x = torch.randn(batch, channels, size, size, dtype=dtype).contiguous(memory_format=CHANNELS_LAST)
            x.requires_grad_()
            grad = torch.randn_like(x)

            def direct(t, bn=bn):
                return F.relu(bn(t * 1))

            def via_nchw(t, bn=bn):
                inner = bn(ToFormat.apply(t * 1, NCHW, CHANNELS_LAST))
                return F.relu(ToFormat.apply(inner, CHANNELS_LAST, NCHW))

            best_ms(direct, x, grad), best_ms(via_nchw, x, grad)  # warm-up
            cl, nchw = best_ms(direct, x, grad), best_ms(via_nchw, x, grad)
            uses = "NCHW" if slow_in_channels_last(channels, precision) else "channels_last"
            print(f"| {precision} | {channels} | {size}x{size} | {cl:.2f} | {nchw:.2f} | {nchw / cl:.2f} | {uses} |", flush=True)


def test_chunks(versions: list[str], repeats: int = 4) -> None:
    """Print the seconds of a whole test pass (core.train.loop.evaluation, all 10,000 test images) per
    version, numeric mode and chunk size: the measurements behind `device.test_chunk`. Each
    cell is the median of `repeats` passes, the chunk sizes alternated so drift hits all."""
    import torch

    from mnist_tui.core import data
    from mnist_tui.core.device import CPU_TEST_CHUNK, bf16_native
    from mnist_tui.core.train.loop import evaluation
    from mnist_tui.core.versions import get_version

    cpu = torch.device("cpu")
    test = data.DeviceSplit.from_split(data.load()[1], cpu)
    sizes = (2000, 1000, 500, 256, 128)
    modes = ("fp32", "bf16") if bf16_native(cpu) else ("fp32",)
    print(f"\nOne test pass over {len(test):,} images, seconds (median of {repeats}); the engine uses chunks of {CPU_TEST_CHUNK} on the CPU:\n")
    print("| version | mode | " + " | ".join(f"chunk {n}" for n in sizes) + " | 2000 / " + str(CPU_TEST_CHUNK) + " |")
    print("|---|---|" + "---:|" * (len(sizes) + 1))
    for name in versions:
        model = get_version(name).build().to(memory_format=torch.channels_last)
        for mode in modes:
            times: dict[int, list[float]] = {n: [] for n in sizes}
            for _ in range(repeats):
                for n in sizes:
                    t0 = time.perf_counter()
                    for _ in evaluation(model, test, n, mode):
                        pass
                    times[n].append(time.perf_counter() - t0)
            cells = {n: statistics.median(t) for n, t in times.items()}
            print(f"| {name} | {mode} | " + " | ".join(f"{cells[n]:.2f}" for n in sizes) + f" | {cells[2000] / cells[CPU_TEST_CHUNK]:.2f}x |", flush=True)


def ablate(name: str, steps: int, warmup: int, rounds: int, root: str, compile_too: bool) -> None:
    variants = list(ABLATION) + ([("+ torch.compile", {"cl", "bf16", "bn", "compile"})] if compile_too else [])
    results: dict[str, list[float]] = {label: [] for label, _ in variants}
    seed: list[float] = []
    first_step: dict[str, float] = {}
    for _ in range(rounds):
        seed.append(seed_pipeline_ips(name, steps, warmup, root))
        for label, options in variants:
            ips, first = resident_ips(name, steps, warmup, options)
            results[label].append(ips)
            first_step[label] = first
        print(f"  ablation round {len(seed)}/{rounds} done", flush=True)
    base = statistics.median(seed)
    print(f"\nOptions for {name}, tensor-resident loop, {steps} steps of {BATCH}, median of {rounds} rounds:\n")
    print("| variant | img/s | vs seed pipeline | time to first step |")
    print("|---|---:|---:|---:|")
    print(f"| seed pipeline (DataLoader, fp32) | {base:,.0f} | 1.00x | |")
    for label, _ in variants:
        ips = statistics.median(results[label])
        print(f"| {label} | {ips:,.0f} | {ips / base:.2f}x | {first_step[label]:.1f} s |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=["v1", "v2", "v3", "v4"])
    parser.add_argument("--steps", type=int, default=120, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=15, help="untimed batches before the seed side's timing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="the engine's numeric mode")
    parser.add_argument("--no-tui", action="store_true", help="skip the TUI column")
    parser.add_argument("--ablate", metavar="VERSION", nargs="?", const="v2", help="also measure each engine option alone (default v2)")
    parser.add_argument("--compile", action="store_true", help="include torch.compile in the ablation")
    parser.add_argument("--batch-norm", action="store_true", help="only time batch norm in channels_last against NCHW, per channel count")
    parser.add_argument("--no-whole-epoch", action="store_true", help="skip the closing whole-epoch table (benchmarks/whole_epoch.py)")
    parser.add_argument("--whole-epoch-pairs", type=int, default=3, metavar="N", help="alternated pairs per version and mode in that table")
    parser.add_argument("--bn-batches", type=int, nargs="+", default=[BATCH], metavar="N", help="batch sizes for --batch-norm")
    parser.add_argument("--test-chunks", action="store_true", help="only time a test pass per chunk size (device.test_chunk)")
    parser.add_argument("--tui-one", metavar="VERSION", help=argparse.SUPPRESS)  # child process of (c)
    args = parser.parse_args()
    if args.tui_one:
        tui_one(args.tui_one, args.steps, args.precision)
        return 0

    import torch

    from benchmarks.accuracy import cpu_model, git_commit

    if args.batch_norm:
        print(
            f"# {cpu_model()}; {torch.get_num_threads()} threads; torch {torch.__version__}; "
            f"ATen CPU capability {torch.backends.cpu.get_cpu_capability()}; commit {git_commit()}"
        )
        for batch in args.bn_batches:
            batch_norm_layouts(batch)
        return 0
    if args.test_chunks:
        print(f"# {cpu_model()}; {torch.get_num_threads()} threads; torch {torch.__version__}; commit {git_commit()}")
        test_chunks(args.versions)
        return 0

    from mnist_tui.core import data
    from mnist_tui.core.device import device_name, resolve_device

    root = str(data.find_root())
    data.prepare(Path(root))
    device = resolve_device("auto")
    print(
        f"# device: {device_name(device)} ({cpu_model() if device.type == 'cpu' else device.type}); "
        f"torch {torch.__version__}; python {platform.python_version()}; commit {git_commit()}",
        flush=True,
    )
    print(f"# {args.steps} steps of batch {BATCH} per measurement, {args.rounds} alternating rounds, medians", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for name in args.versions:
            seed, engine, mode = [], [], ""
            for _ in range(args.rounds):
                seed.append(seed_pipeline_ips(name, args.steps, args.warmup, root))
                ips, mode = engine_ips(name, args.steps, runs, args.precision)
                engine.append(ips)
                print(f"  {name}: seed {seed[-1]:,.0f}  engine {engine[-1]:,.0f} img/s", flush=True)
            rows.append([name, statistics.median(seed), statistics.median(engine), mode, None])
        if not args.no_tui:
            for row in rows:
                row[4] = tui_in_fresh_process(row[0], args.steps, args.precision)
                print(f"  {row[0]}: tui {row[4]:,.0f} img/s", flush=True)

    print()
    print("| version | seed pipeline img/s | engine img/s | engine mode | engine / seed | TUI img/s | TUI / engine |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name, s, e, mode, t in rows:
        tui = f"{t:,.0f} | {100 * t / e:.0f}%" if t else "- | -"
        print(f"| {name} | {s:,.0f} | {e:,.0f} | {mode} | {e / s:.2f}x | {tui} |")
    print(f"\n{device_name(device)}, torch {torch.__version__}")
    if args.ablate:
        ablate(args.ablate, args.steps, args.warmup, args.rounds, root, args.compile)
    if not args.no_whole_epoch:
        from benchmarks.whole_epoch import whole_epoch_table

        print("\nOne whole epoch as a user feels it (benchmarks/whole_epoch.py), fp32 and the default mode:\n", flush=True)
        whole_epoch_table(args.versions, ["fp32", "auto"], args.whole_epoch_pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
