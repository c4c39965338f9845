"""Make the README's screenshots with the app itself, after real training on the full data.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--size 120x40]

Presses Start three times on the Train screen's first choice, the quick recipe (v4 for 3
epochs on all 60,000 images: seeds 1 and 2, then seed 1 with lr 0.05; about a minute and a
half in all on 2 cores), so every screen shows what a user sees after a real run; then saves
an SVG of each screen (Train with its loss curve smoothed, Layers, Runs, Predictions,
Mistakes, the draw pad with a 7 drawn from the keyboard, Why, and the three runs compared).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual.widgets import Input  # noqa: E402

from mnist_tui.ui.app import MnistTuiApp  # noqa: E402


async def _type(pilot, selector: str, text: str) -> None:
    pilot.app.screen.query_one(selector, Input).focus()
    await pilot.pause()
    await pilot.press("end", *["backspace"] * 12, *text)


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def _train(pilot, seed: str, lr: str = "0.1") -> None:
    """Start the picked recipe with this seed from the keyboard and wait for its trainer."""
    await _type(pilot, "#field-seed", seed)
    await _type(pilot, "#field-lr", lr)
    await pilot.press("ctrl+s")
    screen = pilot.app.screen
    while screen.follower is None or not screen.follower.done:
        await asyncio.sleep(0.5)
    await pilot.pause()


async def shoot(out: Path, size: tuple[int, int], runs: Path) -> None:
    app = MnistTuiApp(runs_dir=runs)
    async with app.run_test(size=size) as pilot:
        for seed, lr in (("1", "0.1"), ("2", "0.1"), ("1", "0.05")):  # runs to compare
            await _train(pilot, seed, lr)
        app.screen.query_one("#loss-chart").focus()
        await pilot.press("s", "s")  # smoothing 0.9, the raw per-batch curve faint beneath
        app.save_screenshot(filename="train.svg", path=str(out))

        await pilot.press("f3")
        await _settle(pilot)
        app.screen.query_one("#layer-versions").focus()
        await pilot.press("down")
        await _settle(pilot)
        app.save_screenshot(filename="layers.svg", path=str(out))

        await pilot.press("f4")
        await _settle(pilot)
        app.save_screenshot(filename="runs.svg", path=str(out))

        await pilot.press("p")
        await _settle(pilot)
        app.save_screenshot(filename="predictions.svg", path=str(out))

        await pilot.press("x")  # the confusion matrix of the same run
        await _settle(pilot)
        app.save_screenshot(filename="mistakes.svg", path=str(out))

        await pilot.press("escape", "escape", "f6")
        await _settle(pilot)
        await pilot.press(*["up"] * 8, *["left"] * 5)  # a 7 from the keyboard: the bar, then the stem
        for key in ["right"] * 9 + ["down", "left"] * 9 + ["down"] * 6:
            await pilot.press("space", key)
        await _settle(pilot)
        app.save_screenshot(filename="draw.svg", path=str(out))

        await pilot.press("w")
        await _settle(pilot)
        app.save_screenshot(filename="why.svg", path=str(out))

        await pilot.press("escape", "f4")
        await _settle(pilot)
        await pilot.press("home", "space", "space", "space", "c")
        await _settle(pilot)
        app.save_screenshot(filename="compare.svg", path=str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--size", default="120x40")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as runs:
        asyncio.run(shoot(out, (width, height), Path(runs)))
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main()
