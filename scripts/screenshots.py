"""Make the README's screenshots with the app itself: real training on a small subset.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--size 120x40]

Trains v2 for 2 epochs on 2,000 images and v1 for 1 epoch (about a minute on 2 cores),
then saves an SVG of each screen.
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


async def shoot(out: Path, size: tuple[int, int], runs: Path) -> None:
    app = MnistTuiApp(runs_dir=runs)
    async with app.run_test(size=size) as pilot:
        # v1 for one epoch first, so that Runs has two versions to show
        for version, epochs in (("v1", "1"), ("v2", "2")):
            await app.train_version(version)
            await pilot.pause()
            await _type(pilot, "#field-epochs", epochs)
            await _type(pilot, "#field-limit", "2000")
            await pilot.press("ctrl+s")
            await _settle(pilot)
        app.screen.query_one("#epochs").focus()
        await pilot.pause()
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
