"""A generative walk over the whole app, as a person in their first minutes would go.

Seeded random walks over an app holding a few finished runs (one with a real trained
network) and a launcher that trains for real on a few hundred images: each step is a key
drawn from the current screen's active bindings or from the keys people press anywhere
(tab, escape, enter, arrows, F-keys, ctrl+p, the chart keys, letters and digits typed into
fields), a click on a visible, enabled button, or a terminal resize between 60x20 and
160x50. Each step must return within a few seconds and leave the app running; a failure
prints the seed and the steps so far, to be kept as a named regression test.

`make test` walks a few seeds of a couple of hundred steps; the slow marker walks more.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import threading
import time
from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import Button

from mnist_tui.ui.app import MnistTuiApp
from tests.ui_helpers import InProcessLauncher, drained, fixture_store, press, settle, write_run

STEP_S = 20.0  # a step that has not returned by then is a hang (a loaded 2-core CPU included)
# Keys people press anywhere, whatever the footer says.
GENERIC = [
    "tab",
    "shift+tab",
    "escape",
    "enter",
    "space",
    "up",
    "down",
    "left",
    "right",
    "pageup",
    "pagedown",
    "home",
    "end",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "f6",
    "ctrl+p",
    "question_mark",
    "ctrl+f",
    "s",
    "l",
    "z",
    "plus",
    "minus",
    "0",
    "shift+left",
    "shift+right",
    "left_square_bracket",
    "right_square_bracket",
    "backspace",
    "y",
    "n",
    "k",
    "1",
    "7",
    "a",
    "x",
]
# Quitting ends the walk (the quit question is walked into with a run training, and left
# with escape); ctrl+c is the terminal's.
NEVER = {"ctrl+q", "ctrl+c"}
SIZES = [(60, 20), (80, 24), (100, 30), (120, 40), (160, 50), (72, 22)]


class SmallLauncher(InProcessLauncher):
    """Trains what the form asks for, for real, but on 256 images for at most 2 epochs and
    500 test images, so that a walk can start and stop runs in seconds."""

    def start(self, config, runs_dir, name, place=None, slot=None):
        small = config.replace(epochs=min(2, config.recipe.epochs), limit=256, test_limit=500, holdout=0, target=None)
        return super().start(small, runs_dir, name, place, slot)

    def stop_all(self) -> None:
        for launch in self.launches:
            launch.stop_event.set()
        self.join()


def walk_store(runs_dir: Path, trained: Path) -> None:
    """The fixture runs (finished, stopped, damaged) and a real trained v4 with a per-batch curve."""
    fixture_store(runs_dir)
    shutil.copytree(trained, runs_dir / trained.name)
    write_run(runs_dir, "20261105T100000Z-v3-eeeeee", "v3", "finished", [97.0, 98.2], epochs_total=2, lr=0.02, points=40)


def _clickable(app, buttons: bool) -> list[Widget]:
    """The screen's visible, enabled buttons, or the other widgets a click can focus
    (charts, tables, fields, lists)."""
    widgets = app.screen.query(Button) if buttons else [w for w in app.screen.query("*") if w.can_focus and not isinstance(w, Button)]
    return [w for w in widgets if w.display and w.visible and not w.disabled and w.region.area > 0 and _on_top(app, w)]


def _on_top(app, widget: Widget) -> bool:
    """Whether a click at the widget's corner lands on it (in sight, not scrolled away or covered)."""
    x, y = widget.region.offset
    if not (0 <= x < app.size.width and 0 <= y < app.size.height):
        return False
    try:
        hit, _ = app.screen.get_widget_at(x, y)
    except Exception:  # nothing there
        return False
    return hit is widget or widget in hit.ancestors


def _choose(rng: random.Random, app) -> tuple[str, object]:
    roll = rng.random()
    if roll < 0.05:
        return "resize", rng.choice(SIZES)
    if roll < 0.16:
        widgets = _clickable(app, buttons=roll < 0.12)
        if widgets:
            return "click", rng.choice(widgets)
    bound = [key for key, (_node, binding, enabled, _tip) in app.screen.active_bindings.items() if enabled and key not in NEVER]
    if bound and roll < 0.55:
        return "key", rng.choice(bound)
    return "key", rng.choice(GENERIC)


async def _step(pilot, kind: str, what) -> None:
    if kind == "resize":
        await pilot.resize_terminal(*what)
        await drained(pilot)
    elif kind == "click":
        await pilot.click(what)
        await drained(pilot)
    else:
        await press(pilot, what)


async def _walk(app, launcher: SmallLauncher, seed: int, steps: int, trail: list[str], visited: set[str]) -> None:
    rng = random.Random(seed)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for _ in range(steps):
            kind, what = _choose(rng, app)
            visited.add(type(app.screen).__name__)
            trail.append(
                f"{type(app.screen).__name__} {app.size.width}x{app.size.height}: {kind} {what if kind != 'click' else getattr(what, 'label', None) or what}"
            )
            await _step(pilot, kind, what)
            assert app.is_running and app.return_code is None, "the app ended"
        launcher.stop_all()
        await settle(pilot)


def walk(runs_dir: Path, seed: int, steps: int) -> set[str]:
    """Walk in a thread of its own, so that a step that never returns (a frozen app keeps
    the event loop waiting, not busy) fails the test with the steps that led there."""
    launcher = SmallLauncher()
    app = MnistTuiApp(runs_dir=runs_dir, launcher=launcher)
    trail: list[str] = []
    visited: set[str] = set()
    failure: list[BaseException] = []
    last = [0, time.monotonic()]  # steps seen, and when the count last moved

    def run() -> None:
        try:
            asyncio.run(_walk(app, launcher, seed, steps, trail, visited))
        except BaseException as exc:  # reported below, with the trail
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True, name=f"walk {seed}")
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
        if len(trail) != last[0]:
            last[:] = [len(trail), time.monotonic()]
        elif time.monotonic() - last[1] > STEP_S:
            launcher.stop_all()
            raise AssertionError(f"seed {seed}: step {len(trail)} did not return in {STEP_S:.0f} s; the last steps:\n" + "\n".join(trail[-25:]))
    launcher.stop_all()
    if failure:
        exc = failure[0]
        raise AssertionError(f"seed {seed}: {type(exc).__name__}: {exc} at step {len(trail)}; the last steps:\n" + "\n".join(trail[-25:])) from exc
    return visited


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_random_walk_over_every_screen_never_crashes_or_hangs(tmp_path, trained_v4_run, seed):
    walk_store(tmp_path / "runs", trained_v4_run.path)
    visited = walk(tmp_path / "runs", seed, steps=150)
    assert len(visited) >= 4, f"the walk stayed on {visited}"  # it went places, not round one screen


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 20))
def test_a_longer_random_walk(tmp_path, trained_v4_run, seed):
    walk_store(tmp_path / "runs", trained_v4_run.path)
    visited = walk(tmp_path / "runs", seed, steps=500)
    assert len(visited) >= 5, f"the walk stayed on {visited}"
