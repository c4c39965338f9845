"""The draw pad: strokes from the mouse and the keyboard reach the model, its answer shows as
bars, every version's latest run can be asked at once, and Why shows saliency and filters."""

from __future__ import annotations

import torch
from textual.widgets import Static

from mnist_tui.core import insight
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.draw import DrawScreen
from mnist_tui.ui.screens.why import WhyScreen
from mnist_tui.ui.widgets.draw_pad import DrawPad
from tests.ui_helpers import press, settle, wait_until


def _column_ink(pad: DrawPad, x: int) -> list[float]:
    return [pad.ink[y][x] for y in range(28)]


async def test_mouse_and_keyboard_strokes_change_the_prediction_and_why_explains_it(trained_v3_run):
    app = MnistTuiApp(runs_dir=trained_v3_run.path.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        await press(pilot, "f6")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DrawScreen)
        pad = screen.query_one(DrawPad)
        # A mouse stroke down the pad's middle (offsets include its border): a 1.
        await pilot.mouse_down(pad, offset=(15, 2))
        for y in range(3, 14):
            await pilot.hover(pad, offset=(15, y))
        await pilot.mouse_up(pad, offset=(15, 13))
        await wait_until(pilot, lambda: bool(screen.probs))
        assert sum(_column_ink(pad, 14)) > 15 and sum(_column_ink(pad, 3)) == 0  # painted where dragged, only there
        assert max(range(10), key=screen.probs.__getitem__) == 1
        after_mouse = list(screen.probs)
        # The keyboard: a bar across the top, to the right (a 7, or at least not that 1).
        pad.focus()
        await press(pilot, *["up"] * 9, *["left"] * 6)
        for _ in range(12):
            await press(pilot, "space", "right")
        await wait_until(pilot, lambda: screen.probs != after_mouse)
        assert sum(pad.ink[5]) > 5
        bars = str(screen.query_one("#bars", Static).render())
        assert bars.count("%") == 10 and "v3 · epoch 1" in bars
        await press(pilot, "v")
        await wait_until(pilot, lambda: "v3" in str(screen.query_one("#draw-versions", Static).render()))
        await press(pilot, "w")
        await wait_until(pilot, lambda: isinstance(app.screen, WhyScreen) and app.screen.explanation is not None)
        why = app.screen
        e = why.explanation
        assert e.saliency.shape == (28, 28) and float(e.saliency.max()) == 1.0
        assert e.filters.shape[0] == e.activations.shape[0] == 12  # v3's first convolution
        assert "filters" in str(why.query_one("#why-filters", Static).render())
        assert str(why.query_one("#why-maps", Static).render()).count("▀") > 12 * 100


class FixedNetwork:
    """A stand-in that answers the same for any drawing (for snapshots: no floats of a model)."""

    run_id, model, epoch, precision = "20261103T100000Z-v2-cccccc", "v2", 1, "fp32"

    def probabilities(self, digits):
        return torch.tensor([[0.01, 0.02, 0.03, 0.01, 0.02, 0.01, 0.02, 0.81, 0.03, 0.04]])


def _drawn(monkeypatch):
    monkeypatch.setattr(insight, "network", lambda *_a, **_k: FixedNetwork())

    async def draw(pilot):
        await press(pilot, "f6")
        await settle(pilot)
        await press(pilot, *["up"] * 8, *["left"] * 5)
        for key in ["right"] * 9 + ["down", "left"] * 9 + ["down"] * 6:
            await press(pilot, "space", key)
        await wait_until(pilot, lambda: bool(pilot.app.screen.probs))
        await settle(pilot)

    return draw


def test_draw_pad_120x40(snap_compare, fixture_runs, monkeypatch):
    assert snap_compare(MnistTuiApp(runs_dir=fixture_runs), terminal_size=(120, 40), run_before=_drawn(monkeypatch))


def test_draw_pad_80x24(snap_compare, fixture_runs, monkeypatch):
    assert snap_compare(MnistTuiApp(runs_dir=fixture_runs), terminal_size=(80, 24), run_before=_drawn(monkeypatch))
