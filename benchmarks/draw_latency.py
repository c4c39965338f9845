"""How long the draw pad takes from the end of a stroke to the class bars, per version.

    .venv/bin/python benchmarks/draw_latency.py [--strokes 15]

For each version a run folder is written with the version's network (untrained weights: the
work per prediction is the same as a trained one's) and the app's Draw screen is driven in a
headless terminal: each stroke is painted from the keyboard, and the screen's own measure
(stroke's end to bars drawn, the preprocessing and the model's forward pass included, on the
CPU) is collected. The first stroke of each version also loads its checkpoint and is
reported apart. Prints a table; the target is 100 ms for every version.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_runs(runs: Path) -> None:
    import torch

    from mnist_tui.core.store import Checkpoint, RunWriter
    from mnist_tui.core.versions import VERSIONS, get_version

    for name in VERSIONS:
        model = get_version(name).build()
        config = get_version(name).config(device="cpu").to_dict()
        writer = RunWriter.create(runs, name, {"config": config, "precision": "fp32", "params": 0}, name=f"20261128T000000Z-{name}-000000")
        writer.append_epoch(
            {
                "epoch": 1,
                "epochs": 1,
                "train_loss": 1.0,
                "train_acc": 50.0,
                "test_loss": 1.0,
                "test_acc": 50.0,
                "lr": 0.001,
                "seconds": 1.0,
                "images_per_s": 1.0,
            }
        )
        rng = {k: torch.zeros(8, dtype=torch.uint8) for k in ("torch", "order", "augment")}
        writer.save_checkpoint(Checkpoint(model=model.state_dict(), optimizer={}, scheduler={}, epoch=1, config=config, rng=rng))
        writer.close("finished")


async def measure(runs: Path, strokes: int) -> dict[str, tuple[float, list[float]]]:
    from textual.widgets import Select

    from mnist_tui.ui.app import MnistTuiApp
    from mnist_tui.ui.screens.draw import DrawScreen

    results = {}
    app = MnistTuiApp(runs_dir=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f6")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DrawScreen)
        for record in screen.records:
            screen.query_one("#draw-run", Select).value = str(record.path)
            times = []
            for i in range(strokes + 1):
                screen.probs = []
                await pilot.press("space", "down" if i % 2 else "right")
                while not screen.probs:
                    await asyncio.sleep(0.002)
                await app.workers.wait_for_complete()
                times.append(screen.latency)
            results[record.model] = (times[0], times[1:])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strokes", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        write_runs(runs)
        results = asyncio.run(measure(runs, args.strokes))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    print(f"Draw pad, stroke's end to bars, {args.strokes} strokes per version, {cpu}, {os.cpu_count()} cores, fp32\n")
    print("| version | first stroke (loads the checkpoint) | median | slowest |")
    print("|---|---:|---:|---:|")
    for name, (first, rest) in sorted(results.items()):
        print(f"| {name} | {1000 * first:.0f} ms | {1000 * statistics.median(rest):.0f} ms | {1000 * max(rest):.0f} ms |")


if __name__ == "__main__":
    main()
