"""One epoch as a user feels it: from the command starting to its exit, the seed pipeline
against `mnist-tui train`, alternated in pairs.

    .venv/bin/python benchmarks/whole_epoch.py [--versions v2 v1 v3 v4] [--pairs 3] [--modes fp32 auto] [--isa avx2]

(a) seed: the seed notebooks' pipeline as a script (this file, --seed-side): import torch and
    torchvision, `datasets.MNIST` with `ToTensor()` + `Normalize((0.1307,), (0.3081,))`, a
    `DataLoader(batch_size=128, shuffle=True)`, the version's network and optimizer, fp32,
    eager; one epoch over the 60,000 training images; a test pass over the 10,000 test images
    in batches of 2000 under `no_grad`; `torch.save` of the weights. Always fp32: the seed
    has no other mode.
(b) engine: `python -m mnist_tui train --model V --epochs 1 --batch-size 128` with the
    version's recipe otherwise, augmentation off (the seed does none), `--precision MODE`:
    training, evaluation of all 10,000 test images, the run folder and its checkpoint.

Each pair runs (a) and (b) back to back, which goes first alternating; the table shows the
median wall time of each side, their ratio (seed / engine: above 1 the engine is faster), and
where each side's time went (the engine's from its own records: `elapsed` counts from the
call into the engine): the interpreter and imports (and exit), data and model, training,
the test pass (and saving). With --record, each version's training + test pass of its median
engine run is written to mnist_tui/core/measured.json as its seconds per epoch in that mode
(how v1 and v4's fp32 figures were measured), which the registry and the app read.

`--isa avx2` runs both sides with the CPU capped at AVX2 and FMA (benchmarks/isa.py: PyTorch's
kernels, oneDNN's convolutions and the fused kernels' build), so that an AVX-512 machine times
what an AVX2-only CPU would run; each side reports the ATen capability it ran with, and the
header names the CPU, its flags and the cap. Not with --record: the figures are not this CPU's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
# The engine's command, with the ATen capability its process runs with written to stderr first
ENGINE = "import runpy, sys, torch; print('capability:', torch.backends.cpu.get_cpu_capability(), file=sys.stderr); sys.argv[0] = 'mnist_tui'; runpy.run_module('mnist_tui', run_name='__main__', alter_sys=True)"
KERNELS = "from mnist_tui.core import fused; print(fused.status())"


def seed_side(name: str, out: str) -> None:
    """The seed notebooks' epoch, as a script; prints its parts' seconds as JSON."""
    t0 = time.perf_counter()
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    sys.path.insert(0, str(ROOT))
    from benchmarks.seed_order import in_seed_order
    from mnist_tui.core.optim import make_optimizer
    from mnist_tui.core.versions import get_version

    t_import = time.perf_counter()
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = DataLoader(datasets.MNIST(str(DATA), train=True, download=False, transform=tf), batch_size=128, shuffle=True)
    test = DataLoader(datasets.MNIST(str(DATA), train=False, download=False, transform=tf), batch_size=2000)
    version = get_version(name)
    model = in_seed_order(version.build())  # the seed's layer order, not the engine's quicker one
    optimizer = make_optimizer(version.config(), model.parameters())
    t_setup = time.perf_counter()
    model.train()
    for x, y in train:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    t_train = time.perf_counter()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test:
            correct += int((model(x).argmax(1) == y).sum())
    t_test = time.perf_counter()
    torch.save(model.state_dict(), out)
    t_save = time.perf_counter()
    parts = {"import": t_import - t0, "setup": t_setup - t_import, "train": t_train - t_setup, "test": t_test - t_train, "save": t_save - t_test}
    print(json.dumps({**parts, "accuracy": correct / 100, "capability": torch.backends.cpu.get_cpu_capability()}))


def run_seed(name: str, tmp: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--seed-side", name, "--out", str(tmp / "seed.pt")], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def run_engine(name: str, mode: str, tmp: Path, i: int) -> tuple[float, dict]:
    runs = tmp / f"runs-{name}-{mode}-{i}"
    cmd = [sys.executable, "-c", ENGINE, "train", "--model", name, "--epochs", "1", "--batch-size", "128"]
    cmd += ["--rotate", "0", "--translate", "0", "--scale", "0", "--precision", mode, "--runs", str(runs), "--data", str(DATA)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    capability = next((line.split(":", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("capability:")), "unknown")
    [run] = [p for p in runs.iterdir() if p.is_dir()]
    epoch = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    config = json.loads((run / "config.json").read_text())
    train = config["train_size"] / epoch["images_per_s"]
    parts = {
        "outside": wall - epoch["elapsed"],  # the interpreter, imports, the report, exit
        "setup": epoch["elapsed"] - epoch["seconds"],  # the call into the engine to its first batch: data, model
        "train": train,
        "test": epoch["seconds"] - train,  # the test pass, the metrics line and the checkpoint
        "precision": config["precision"],
        "accuracy": epoch["test_acc"],
        "capability": capability,
    }
    return wall, parts


def record_epoch(name: str, parts: dict, note: str) -> None:
    """One version's seconds per epoch (training + test pass) in the run's numeric mode."""
    from mnist_tui.core import measured

    where = measured.record("versions", name, seconds={parts["precision"]: parts["train"] + parts["test"]}, note=note)
    print(f"{name} {parts['precision']}: {parts['train'] + parts['test']:.1f} s/epoch written to {where}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=["v2", "v1", "v3", "v4"])
    parser.add_argument("--modes", nargs="+", default=["fp32", "auto"], choices=("fp32", "auto", "bf16"))
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="write each engine side's seconds per epoch to mnist_tui/core/measured.json")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native", help="cap both sides' vector instructions (avx2: as an AVX2-only CPU)")
    parser.add_argument("--seed-side", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_side:
        seed_side(args.seed_side, args.out)
        return

    if args.record and args.isa != "native":
        parser.error("--record writes this CPU's figures: not with --isa capped")
    sys.path.insert(0, str(ROOT))
    from benchmarks import isa

    isa.ensure(args.isa)  # the caps are read when the libraries load: this process and its children run under them
    whole_epoch_table(args.versions, args.modes, args.pairs, record=args.record, cap=args.isa)


def whole_epoch_table(versions: list[str], modes: list[str], pairs: int, record: bool = False, cap: str = "native") -> None:
    """Run the alternated pairs and print each pair, then the table (also called by
    benchmarks/throughput.py, whose default run ends with this table)."""
    sys.path.insert(0, str(ROOT))
    import torch

    from benchmarks.accuracy import cpu_model
    from benchmarks.isa import cpu_flags, describe
    from mnist_tui.core.hardware import cpu_bf16_native

    print(
        f"machine: {cpu_model()} ({cpu_flags()}; native bf16: {'yes' if cpu_bf16_native() else 'no'}), torch {torch.__version__}, python {platform.python_version()}"
    )
    kernels = subprocess.run([sys.executable, "-c", KERNELS], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()  # built here, not in a pair
    print(f"instruction set: {describe(cap)}; fused kernels: {kernels}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in versions:
            for mode in modes:
                seed, engine = [], []
                for i in range(pairs):
                    order = ("seed", "engine") if i % 2 == 0 else ("engine", "seed")
                    for side in order:
                        if side == "seed":
                            seed.append(run_seed(name, Path(tmp)))
                        else:
                            engine.append(run_engine(name, mode, Path(tmp), i))
                    print(
                        f"{name} {mode} pair {i + 1}: seed {seed[-1][0]:.1f} s, engine {engine[-1][0]:.1f} s ({seed[-1][0] / engine[-1][0]:.2f}x)", flush=True
                    )
                ratios = [s[0] / e[0] for s, e in zip(seed, engine)]
                mid = sorted(range(len(engine)), key=lambda k: engine[k][0])[len(engine) // 2]
                parts, seed_parts = engine[mid][1], seed[mid][1]
                if record:
                    record_epoch(name, parts, f"benchmarks/whole_epoch.py: training + test pass, median of {pairs}, {cpu_model()}, {datetime.date.today()}")
                rows.append(
                    f"| {name} | {parts['precision']} | {statistics.median(s[0] for s in seed):.1f} s "
                    f"({seed_parts['import']:.1f} / {seed_parts['setup']:.1f} / {seed_parts['train']:.1f} / {seed_parts['test']:.1f}) | "
                    f"{statistics.median(e[0] for e in engine):.1f} s ({parts['outside']:.1f} / {parts['setup']:.1f} / {parts['train']:.1f} / {parts['test']:.1f}) | "
                    f"**{statistics.median(ratios):.2f}x** ({', '.join(f'{r:.2f}' for r in ratios)}) | {seed_parts['capability']} / {parts['capability']} |"
                )
    print()
    print(
        "| version | engine mode | seed script, median (import / data+model / train / test) | `mnist-tui train`, median (imports+exit / data+model / train / test+save) | seed / engine, median (pairs) | ATen capability (seed / engine) |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
