"""The Mistakes screen: the confusion matrix of a run on the whole test set, per-digit
precision and recall, and the digits of the cell under the cursor."""

from __future__ import annotations

import torch
from textual.widgets import DataTable, Static

from mnist_tui.core import data
from mnist_tui.core.insight import Outputs
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.mistakes import MistakesScreen
from mnist_tui.ui.screens.why import WhyScreen
from tests.ui_helpers import drained, press, settle, wait_until


def _matrix(screen) -> list[list[int]]:
    table = screen.query_one("#matrix", DataTable)
    return [[0 if str(c) == "·" else int(str(c)) for c in table.get_row_at(r)[1:]] for r in range(table.row_count)]


async def test_mistakes_from_runs_shows_the_whole_test_set_and_each_cells_digits(trained_v4_run):
    app = MnistTuiApp(runs_dir=trained_v4_run.path.parent, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "m")
        await wait_until(pilot, lambda: isinstance(app.screen, MistakesScreen) and app.screen.matrix is not None)
        screen = app.screen
        matrix = _matrix(screen)
        _, test = data.load()
        assert sum(map(sum, matrix)) == 10_000
        assert [sum(row) for row in matrix] == torch.bincount(test.labels, minlength=10).tolist()  # 980, 1135, 1032, ...
        assert matrix == screen.matrix.matrix
        table = screen.query_one("#matrix", DataTable)
        true, predicted = table.cursor_coordinate.row, table.cursor_coordinate.column - 1
        assert (true, predicted) == screen.matrix.worst(1)[0]  # the cursor starts on the worst cell
        title = str(screen.query_one("#cell-title", Static).render())
        assert title.startswith(f"{matrix[true][predicted]:,} test {true}s mistaken as {predicted}")
        digits = str(screen.query_one("#cell-digits", Static).render())
        assert digits.count("#") == min(matrix[true][predicted], 60) and f"true {true}" in digits
        await press(pilot, "right" if predicted < 9 else "left")
        await drained(pilot)
        moved = table.cursor_coordinate.column - 1
        assert str(screen.query_one("#cell-title", Static).render()).startswith(f"{matrix[true][moved]:,} test {true}s ")
        if len(screen.shown_digits) > 1:  # select the cell's second digit and ask why
            await press(pilot, "right_square_bracket")
            assert "▶ #" + str(screen.shown_digits[1].index) in str(screen.query_one("#cell-digits", Static).render())
        chosen = screen.shown_digits[screen.selected]
        await press(pilot, "y")
        await wait_until(pilot, lambda: isinstance(app.screen, WhyScreen) and app.screen.explanation is not None)
        assert f"#{chosen.index}" in str(app.screen.query_one("#why-title", Static).render())
        await press(pilot, "escape", "escape")
        await drained(pilot)
        assert not isinstance(app.screen, MistakesScreen)


def fixed_outputs() -> Outputs:
    """Outputs made up from the test labels, no model and no randomness: every 23rd image is
    taken for a neighbouring digit, with a confidence that varies with its index."""
    _, test = data.load()
    labels = test.labels
    index = torch.arange(len(labels))
    predicted = torch.where(index % 23 == 0, (labels + 1 + index % 2) % 10, labels)
    probs = torch.full((len(labels), 10), 0.01)
    probs[index, predicted] = 0.5 + (index % 40).float() / 100
    probs[index, labels] += 0.05
    probs /= probs.sum(1, keepdim=True)
    return Outputs("20261128T000000Z-v4-5eed00", "v4", 15, "fp32", probs, predicted, labels, test.images)


def _fixed_screen(monkeypatch):
    from mnist_tui.core import insight

    monkeypatch.setattr(insight, "run_outputs", lambda *_a, **_k: fixed_outputs())

    async def opened(pilot):
        pilot.app.push_screen(MistakesScreen(pilot.app.runs_dir or "runs"))
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, MistakesScreen) and pilot.app.screen.matrix is not None)
        await settle(pilot)

    return opened


def test_mistakes_screen_120x40(snap_compare, tmp_path, monkeypatch):
    assert snap_compare(MnistTuiApp(runs_dir=tmp_path, start_mode="runs"), terminal_size=(120, 40), run_before=_fixed_screen(monkeypatch))


def test_mistakes_screen_80x24(snap_compare, tmp_path, monkeypatch):
    assert snap_compare(MnistTuiApp(runs_dir=tmp_path, start_mode="runs"), terminal_size=(80, 24), run_before=_fixed_screen(monkeypatch))
