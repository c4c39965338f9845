"""A run's note and tags (notes.json): kept, filtered on, shown, and never a cost to the run."""

from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable, Static

from mnist_tui import cli
from mnist_tui.core import history
from mnist_tui.core.store import delete_run, list_runs, read_run
from mnist_tui.core.store.lock import RunLock
from mnist_tui.core.store.notes import NOTES, NotesError, change_notes, read_notes
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.notes import NotesScreen
from mnist_tui.ui.screens.run_detail import RunDetailScreen
from tests.ui_helpers import press, settle, wait_until, write_run

NAME = "20261101T100000Z-v2-aaaaaa"
OTHER = "20261102T100000Z-v2-bbbbbb"


@pytest.fixture
def runs(tmp_path):
    write_run(tmp_path, NAME, "v2", "finished", [98.0, 99.0])
    write_run(tmp_path, OTHER, "v2", "finished", [97.0], created="2026-11-02T10:00:00+00:00")
    return tmp_path


def test_a_note_and_tags_round_trip(runs):
    change_notes(runs / NAME, note="first try\nlr 0.01  ", add=["Best", "baseline", "best"])
    notes = read_notes(runs / NAME)
    assert notes.note == "first try\nlr 0.01" and notes.tags == ("best", "baseline") and not notes.problem
    change_notes(runs / NAME, add=["v2-sweep"], remove=["baseline"])
    assert read_notes(runs / NAME).tags == ("best", "v2-sweep")
    assert read_notes(runs / NAME).note == "first try\nlr 0.01"  # kept when only tags change
    assert read_notes(runs / OTHER).tags == () and read_notes(runs / OTHER).note == ""
    assert json.loads((runs / NAME / NOTES).read_text()) == {"format": 1, "note": "first try\nlr 0.01", "tags": ["best", "v2-sweep"]}


@pytest.mark.parametrize("change", [{"add": ["two words"]}, {"add": ["-x"]}, {"add": ["x" * 33]}, {"note": "x" * 4001}, {"note": "\x1b[2J"}])
def test_a_bad_tag_or_note_is_refused_and_nothing_is_written(runs, change):
    with pytest.raises(NotesError):
        change_notes(runs / NAME, **change)
    assert not (runs / NAME / NOTES).exists()


@pytest.mark.parametrize("content", [b"{half", b"[]", b'{"tags": "best"}', b'{"tags": ["a b"]}', b'{"note": 5}', b'{"format": 2}'])
def test_a_damaged_notes_file_costs_its_run_nothing_and_is_not_overwritten(runs, content):
    (runs / NAME / NOTES).write_bytes(content)
    record = {r.run_id: r for r in list_runs(runs)}[NAME]
    assert record.status == "finished" and record.epochs_done == 2
    assert record.notes.problem.startswith(NOTES)
    with pytest.raises(NotesError, match="left as it is"):
        change_notes(runs / NAME, add=["best"])
    assert (runs / NAME / NOTES).read_bytes() == content


def test_filters_find_runs_by_tag_and_by_note(runs):
    change_notes(runs / NAME, note="The baseline run", add=["best"])
    change_notes(runs / OTHER, note="tried a bigger lr", add=["bestish"])
    records = list_runs(runs)
    assert [r.run for r in history.select(records, "tag:best")] == [NAME]  # a whole tag, not a part of one
    assert [r.run for r in history.select(records, "note:baseline")] == [NAME]
    assert [r.run for r in history.select(records, "note:BIGGER")] == [OTHER]
    assert [r.run for r in history.select(records, "bestish")] == [OTHER]  # a word anywhere, tags included
    with pytest.raises(history.QueryError, match="tag:"):
        history.parse_query("tags:best")


def test_notes_are_written_while_a_trainer_holds_the_run(runs):
    lock = RunLock.acquire(runs / NAME)
    try:
        change_notes(runs / NAME, add=["live"])
    finally:
        lock.release()
    assert read_run(runs / NAME).notes.tags == ("live",)


def test_delete_takes_a_run_with_notes_and_code_diff(runs):
    change_notes(runs / NAME, note="gone soon")
    (runs / NAME / "code.diff").write_text("diff --git a/x b/x\n")
    delete_run(runs / NAME)
    assert not (runs / NAME).exists()


def test_note_and_tag_commands(runs, capsys):
    assert cli.main(["tag", NAME[-6:], "best", "baseline", "--runs", str(runs)]) == 0
    assert cli.main(["note", NAME[-6:], "the one to beat", "--runs", str(runs)]) == 0
    assert cli.main(["tag", NAME[-6:], "--runs", str(runs), "--untag", "baseline"]) == 0
    capsys.readouterr()
    assert cli.main(["note", NAME[-6:], "--runs", str(runs)]) == 0
    assert capsys.readouterr().out == "note: the one to beat\ntags: best\n"
    assert cli.main(["tag", NAME[-6:], "no way", "--runs", str(runs)]) == 1
    assert "is not one word" in capsys.readouterr().err
    assert cli.main(["runs", "--runs", str(runs), "--filter", "tag:best"]) == 0
    out = capsys.readouterr().out
    assert NAME in out and OTHER not in out and "tags" in out  # the tags column shows once a run has tags


async def test_n_and_t_on_runs_and_on_a_run_edit_the_note_and_tags(runs):
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        assert "tags" not in [str(c.label) for c in table.columns.values()]  # no run has tags yet
        await press(pilot, "t")
        assert isinstance(app.screen, NotesScreen)
        await pilot.press(*"best baseline", "enter")
        await wait_until(pilot, lambda: "tags" in [str(c.label) for c in table.columns.values()])
        assert read_notes(runs / OTHER).tags == ("best", "baseline")  # newest first: the cursor's run
        await press(pilot, "n")
        await pilot.press(*"draft")
        await press(pilot, "escape")  # cancels: nothing written
        assert not isinstance(app.screen, NotesScreen) and read_notes(runs / OTHER).note == ""
        await press(pilot, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        await press(pilot, "n")
        await pilot.press(*"kept", "ctrl+s")
        kept = app.screen.query_one("#detail-kept", Static)
        await wait_until(pilot, lambda: "note: kept" in str(kept.render()))
        assert "tags: best baseline" in str(kept.render()) and read_notes(runs / OTHER).note == "kept"
