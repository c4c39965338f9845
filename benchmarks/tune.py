"""One tuning run of a CompactNet variant, on held-out training images only.

    .venv/bin/python benchmarks/tune.py 8,12,8,12,14,16 1 '{"batch_size": 32}'
    .venv/bin/python benchmarks/tune.py 8,12,24,32,32,24 2 '{"batch_size": 32}' --net separable
    .venv/bin/python benchmarks/tune.py WIDTHS SEED [RECIPE-OVERRIDES-JSON] [--net NET] [--threads N]

WIDTHS are the six channel counts of CompactNet (c1, c2, squeeze, c4, c5, c6) or of
SeparableNet (--net separable: c1, c2, the three separable layers, the last 1x1); the recipe
is COMPACT_RECIPE without dropout, with the JSON's fields replaced. The run trains on the first
50,000 training images and is evaluated on the last 10,000 (`--holdout 10000`): the test set
plays no part. Prints one markdown row (widths, overrides, params, seed, final held-out
accuracy, the last five epochs, wall time) and appends it to --out. Two runs on one thread
each use both cores of the project's machine; that is how v5's runs were made
(benchmarks/results/tuning.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("widths", help="six channel counts, comma-separated")
    p.add_argument("seed", type=int)
    p.add_argument("overrides", nargs="?", default="{}", help="recipe fields to replace, as JSON")
    p.add_argument("--net", choices=("compact", "separable"), default="compact", help="the layout (core/nets.py)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default="/tmp/mnist-tui-tuning")
    p.add_argument("--out", type=Path, default=Path("/tmp/mnist-tui-tuning.md"))
    args = p.parse_args()
    widths = tuple(int(w) for w in args.widths.split(","))
    if len(widths) != 6:
        p.error("widths: six channel counts, e.g. 8,12,8,12,14,16")
    overrides = json.loads(args.overrides)

    import torch

    from mnist_tui.core import nets, versions
    from mnist_tui.core.events import EpochFinished, RunFailed
    from mnist_tui.core.train import train

    torch.set_num_threads(args.threads)

    layout = nets.SeparableNet if args.net == "separable" else nets.CompactNet

    class Tuned(layout):  # type: ignore[valid-type,misc]
        def __init__(self, dropout: float = 0.0):
            super().__init__(widths, dropout)

    nets.Tuned = Tuned  # type: ignore[attr-defined]  # the registry builds networks by class name
    params = sum(p.numel() for p in Tuned().parameters())
    recipe = dataclasses.replace(versions.COMPACT_RECIPE, dropout=0.0, **overrides)
    versions.VERSIONS["tuned"] = versions.ModelVersion(name="tuned", title="tuning", net="Tuned", params=params, recipe=recipe, description="")
    config = versions.VERSIONS["tuned"].config(seed=args.seed, holdout=10_000, device="cpu", runs_dir=args.runs, progress_seconds=30)
    started, accs = time.perf_counter(), []
    for ev in train(config, threading.Event()):
        if isinstance(ev, RunFailed):
            raise SystemExit(f"tune.py: {ev.reason}")
        if isinstance(ev, EpochFinished):
            accs.append(ev.test_acc)  # the held-out images: the config's holdout
    last = " ".join(f"{a:.2f}" for a in accs[-5:])
    row = f"| {args.net} {args.widths} | {json.dumps(overrides)} | {params:,} | {args.seed} | {accs[-1]:.2f} | {last} | {time.perf_counter() - started:.0f} s |"
    print(row, flush=True)
    with args.out.open("a") as f:
        f.write(row + "\n")


if __name__ == "__main__":
    main()
