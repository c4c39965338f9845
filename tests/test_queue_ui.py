"""The run queue in the app (issue 34): the Train form's When choice queues a run while another
trains on its device; Runs lists queued runs with their place and moves (K, J) or cancels (C,
confirmed) them; the watcher counts live trainers, and the dashboard redraws its curves less
often beside a trainer on a small CPU."""

from __future__ import annotations

import time

import pytest
from textual.widgets import DataTable, Select

from mnist_tui.core import hardware
from mnist_tui.core.config import TrainConfig
from mnist_tui.core.events import BatchPoint
from mnist_tui.core.store import queue
from mnist_tui.core.store.trainers import Live, Slot, queue_lock
from mnist_tui.ui import watcher as watcher_module
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.confirm import ConfirmScreen
from mnist_tui.ui.screens.help import HelpScreen
from mnist_tui.ui.screens.train import TrainScreen
from mnist_tui.ui.widgets import dashboard
from mnist_tui.ui.widgets.charts import MetricChart
from mnist_tui.ui.widgets.dashboard import CHARTS_S, Dashboard
from mnist_tui.ui.widgets.footer import KeyFooter
from tests.ui_helpers import InProcessLauncher, drained, press, settle, wait_until, write_run

QUEUED = ["20261201T100000Z-v2-aaaaa1", "20261201T100001Z-v2-aaaaa2", "20261201T100002Z-v2-aaaaa3"]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test's live trainers and queue lock in a cache folder of its own, on a 2-core CPU."""
    monkeypatch.setenv("MNIST_TUI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hardware, "cpu_cores", lambda: 2)


@pytest.fixture
def other_trainer(tmp_path):
    """A trainer live on the CPU of the runs folder (its slot held by this test) until the
    test ends: the device is taken, so nothing queued starts."""
    slot = Slot.take(tmp_path / "runs", Live(run="20261130T000000Z-v2-ffffff", device="cpu"))
    yield slot
    slot.release()


def _queue(runs, names) -> None:
    with queue_lock(runs):
        for name in names:
            queue.enqueue(runs, TrainConfig(model="v2", device="cpu"), name)


def _said(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def test_charts_redraw_a_third_as_often_beside_a_trainer_on_two_cores():
    board = Dashboard()
    assert board.charts_every() == CHARTS_S  # alone
    board.trainers = 1
    assert board.charts_every() == 3 * CHARTS_S


async def test_the_dashboard_counts_the_trainers_the_watcher_sees_and_redraws_less_often(tmp_path, other_trainer, monkeypatch):
    runs = tmp_path / "runs"
    run = write_run(runs, "20261101T100000Z-v2-bbbbbb", "v2", "finished", [98.0, 99.0], epochs_total=2, points=10)
    app = MnistTuiApp(runs_dir=runs, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        screen.attach(run, "Following")
        board = screen.query_one(Dashboard)
        await wait_until(pilot, lambda: board.trainers == 1)  # the watcher's count, in its news
        redraws = []
        monkeypatch.setattr(MetricChart, "replot", lambda chart: redraws.append(chart.id))
        now = [time.monotonic() + 1000]  # long after the followed run's last redraw
        monkeypatch.setattr(dashboard.time, "monotonic", lambda: now[0])
        points = [BatchPoint(epoch=2, batch=100, batches=469, loss=0.1, acc=99.0)]
        board.show_points(points, False, False)
        assert redraws  # long past the last redraw: drawn now
        redraws.clear()
        now[0] += CHARTS_S + 1  # alone, the charts would redraw now
        board.show_points(points, False, False)
        assert not redraws  # beside a trainer on 2 cores, not yet
        now[0] += 2 * CHARTS_S
        board.show_points(points, False, False)
        assert redraws


@pytest.mark.parametrize("when", ["queue", "auto"])
async def test_start_while_another_run_trains_queues_the_run_and_runs_lists_it(tmp_path, other_trainer, when):
    runs = tmp_path / "runs"
    launcher = InProcessLauncher()
    app = MnistTuiApp(runs_dir=runs, launcher=launcher)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        screen.query_one("#field-when", Select).value = when
        await drained(pilot)
        await press(pilot, "ctrl+s")
        queued = queue.queued_runs(runs)
        assert len(queued) == 1 and not launcher.launches  # recorded, not started
        assert screen.follower is None  # not followed until it starts
        said = _said(app)
        assert any(queued[0].name in s and "number 1 in line" in s and "C cancels it" in s for s in said), said
        await press(pilot, "f4")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 1)
        assert "queued #1" in str(table.get_row(queued[0].name))


async def test_queued_runs_move_and_cancel_from_the_runs_screen(tmp_path, other_trainer):
    runs = tmp_path / "runs"
    _queue(runs, QUEUED)
    app = MnistTuiApp(runs_dir=runs, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 3)

        def status(name: str) -> str:
            return str(table.get_row(name))

        assert "queued #3" in status(QUEUED[2])
        table.move_cursor(row=table.get_row_index(QUEUED[2]))
        await press(pilot, "K")  # earlier
        await settle(pilot)
        assert [p.name for p in queue.queued_runs(runs)] == [QUEUED[0], QUEUED[2], QUEUED[1]]
        assert "queued #2" in status(QUEUED[2]) and "queued #3" in status(QUEUED[1])
        assert table.cursor_row == table.get_row_index(QUEUED[2])  # the cursor stays on the run
        await press(pilot, "J")  # later again
        await settle(pilot)
        assert [p.name for p in queue.queued_runs(runs)] == QUEUED

        table.move_cursor(row=table.get_row_index(QUEUED[0]))
        await press(pilot, "C")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "escape")  # keeps it
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen) and len(queue.queued_runs(runs)) == 3
        await press(pilot, "C")
        await pilot.click("#yes")
        await settle(pilot)
        assert [p.name for p in queue.queued_runs(runs)] == QUEUED[1:]
        assert not (runs / QUEUED[0]).exists()
        await wait_until(pilot, lambda: table.row_count == 2)
        assert "queued #1" in status(QUEUED[1])
        assert any(f"Cancelled {QUEUED[0]}" in s for s in _said(app))


async def test_queue_keys_on_a_run_that_is_not_queued_say_so(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "20261101T100000Z-v2-bbbbbb", "v2", "finished", [98.0])
    app = MnistTuiApp(runs_dir=runs, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
        await press(pilot, "C")
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("only queued runs can be moved or cancelled" in s for s in _said(app))


async def test_the_footer_and_help_show_the_queue_keys(tmp_path):
    app = MnistTuiApp(runs_dir=tmp_path / "runs", start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(260, 40)) as pilot:  # wide enough for every key
        await settle(pilot)
        line = str(app.screen.query_one(KeyFooter).render())
        assert "K Earlier" in line and "J Later" in line and "C Cancel queued" in line
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        listed = dict((what, key) for key, what in app.screen.keys)
        assert listed["Earlier"] == "K" and listed["Later"] == "J" and listed["Cancel queued"] == "C"


async def test_the_watcher_starts_the_queue_when_the_device_is_free(tmp_path, monkeypatch):
    """A trainer killed with -9 leaves queued runs behind: the app's watcher starts them."""
    runs = tmp_path / "runs"
    _queue(runs, QUEUED[:1])
    started = []
    monkeypatch.setattr(watcher_module, "start_next", lambda runs_dir: started.append(runs_dir) or [])
    app = MnistTuiApp(runs_dir=runs, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: bool(started))
        assert started[0] == runs
