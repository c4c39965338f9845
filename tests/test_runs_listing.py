"""A long history, listed: `mnist-tui runs` and the Runs screen with hundreds of runs, huge
figures among good runs, filters that cannot be read, compare labels, and the index that
keeps a listing from reading every run folder again."""

from __future__ import annotations

import csv
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.widgets import DataTable, Input, Static

from mnist_tui import cli
from mnist_tui.core import history
from mnist_tui.core.events import EpochFinished
from mnist_tui.core.store import RunRecord, index, list_runs, records
from mnist_tui.present.compare import short_labels
from mnist_tui.present.runs import RUN_COLUMNS, run_cell
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.run_detail import RunDetailScreen
from tests.ui_helpers import drained, press, settle, type_into, wait_until, write_run

BIG = 1e308  # schema-valid (finite, at least 0): the figures made from it must stay sane


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """The index file goes to this test's folder, never the user's cache."""
    monkeypatch.setenv("MNIST_TUI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(index, "_memory", {})
    monkeypatch.setattr(index, "_saved_at", {})


def _rewrite_metrics(path, **values) -> None:
    lines = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    (path / "metrics.jsonl").write_text("".join(json.dumps({**line, **values}) + "\n" for line in lines))


def _store_with_a_huge_run(runs):
    good = [write_run(runs, f"20261101T10000{i}Z-v2-00000{i}", "v2", "finished", [98.0, 99.0 + i / 10]) for i in range(3)]
    huge = write_run(runs, "20261102T100000Z-v4-b1gb1g", "v4", "finished", [97.0, 98.0])
    _rewrite_metrics(huge, seconds=BIG, images_per_s=BIG, test_loss=BIG, elapsed=BIG)
    return good, huge


def test_runs_command_lists_the_good_runs_beside_one_of_1e308_seconds(tmp_path, capsys):
    runs = tmp_path / "runs"
    good, huge = _store_with_a_huge_run(runs)
    assert cli.main(["runs", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    for path in good:
        assert path.name in out
    [line] = [line for line in out.splitlines() if huge.name in line]
    assert ">9999h" in line and "1e+308" in line and "finished" in line  # the time and speed, short
    assert all(len(line) <= 160 for line in out.splitlines())


async def test_runs_screen_lists_the_good_runs_beside_one_of_1e308_seconds(tmp_path):
    runs = tmp_path / "runs"
    good, huge = _store_with_a_huge_run(runs)
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.row_count == 4
        row = table.get_row(huge.name)
        assert str(row[table.get_column_index("seconds")]) == ">9999h" and str(row[table.get_column_index("img_s")]) == "1e+308"
        assert {str(table.get_row(p.name)[table.get_column_index("status")]) for p in good} == {"finished"}


async def test_a_run_whose_figures_fail_is_listed_damaged_and_the_others_still_list(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    good, huge = _store_with_a_huge_run(runs)
    speed = records.RunRecord.images_per_s

    def failing(record):
        if record.run_id == huge.name and record.metrics:  # a failure in its figures
            raise OverflowError("a figure too large")
        return speed.fget(record)

    monkeypatch.setattr(records.RunRecord, "images_per_s", property(failing))
    assert cli.main(["runs", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert all(p.name in out for p in good)
    assert f"{huge.name} damaged: its figures cannot be worked out (OverflowError: a figure too large)" in out
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.row_count == 4
        assert str(table.get_row(huge.name)[table.get_column_index("status")]) == "damaged"


finite = st.floats(min_value=0, max_value=1.7976931348623157e308, allow_nan=False, allow_infinity=False)
whole = st.integers(min_value=0, max_value=2**63 - 1)


@settings(max_examples=150, deadline=None)
@given(
    seconds=st.lists(st.one_of(finite, whole), min_size=0, max_size=4),
    speed=st.one_of(finite, whole),
    loss=st.one_of(finite, whole),
    elapsed=st.one_of(st.none(), finite),
    lr=st.one_of(st.none(), finite),
)
def test_every_cell_of_schema_valid_figures_is_short_text(tmp_path_factory, seconds, speed, loss, elapsed, lr):
    """Whatever numbers the schema lets through, every cell is text a column can hold and the
    CSV can be written (issue 33: a sum of 1e308s made `mnist-tui runs` die)."""
    metrics = [
        EpochFinished(i, len(seconds), 0.1, 90.0, loss, 99.0, 1e-3, s, speed, elapsed=None if elapsed is None else elapsed * i)
        for i, s in enumerate(seconds, start=1)
    ]
    record = RunRecord(tmp_path_factory.mktemp("r") / "20261101T100000Z-v2-aaaaaa", "finished", "v2", lr=lr, target=50.0, metrics=metrics)
    row = history.row_of(record)
    assert row.status == "finished"
    for column in RUN_COLUMNS:
        assert len(run_cell(row, column.key)) <= 28, column.key
    out = history.export_csv([row], record.path.parent / "runs.csv")
    assert len(list(csv.reader(out.open()))) == 2


def test_a_time_before_the_first_epoch_comes_from_the_run_start_and_end(tmp_path, capsys):
    runs = tmp_path / "runs"
    path = write_run(runs, "20261101T100000Z-v2-aaaaaa", "v2", "stopped", [], created="2026-11-01T10:00:00+00:00")
    status = json.loads((path / "status.json").read_text())
    (path / "status.json").write_text(json.dumps({**status, "updated": "2026-11-01T10:01:10+00:00"}))
    [row] = history.select(list_runs(runs))
    assert run_cell(row, "seconds") == "70s"
    assert cli.main(["runs", "--runs", str(runs)]) == 0
    assert "70s" in capsys.readouterr().out


def test_csv_rounds_epoch_seconds_and_images_per_second(tmp_path):
    runs = tmp_path / "runs"
    path = write_run(runs, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [98.0, 99.0])
    _rewrite_metrics(path, seconds=41.23456, images_per_s=1512.6789)
    out = history.export_csv(history.select(list_runs(runs)), tmp_path / "runs.csv")
    [row] = list(csv.DictReader(out.open()))
    assert (row["seconds"], row["epoch_s"], row["img_s"]) == ("82.5", "41.23", "1513")


BAD_FILTERS = {
    "acc>>99": "'>99' is not a number",
    "lr<": "no number after '<'",
    ":x": "no column before ':'",
    "model:": "nothing after ':'",
    "speed=fast": "'fast' is not a number",
    "colour:red": "unknown column 'colour'",
    "accuracy>99": "unknown figure 'accuracy'",
    "model=v2": "model is text; write model:v2",
}


@pytest.mark.parametrize(("term", "why"), BAD_FILTERS.items())
def test_runs_command_names_a_filter_it_cannot_read(tmp_path, capsys, term, why):
    runs = tmp_path / "runs"
    write_run(runs, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [99.5])
    assert cli.main(["runs", "--runs", str(runs), "--filter", f"v2 {term}"]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert f"'{term}'" in line and why in line and captured.out == ""


def test_filters_that_can_be_read_still_match_as_before(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [99.5], created="2026-11-01T10:00:00+00:00", lr=0.01)
    rows = history.select(list_runs(runs))
    for query in ("v2", "10:00", "model:v2 status:fin", "acc>99.4 best>=99 loss<0.5 speed>1000 epochs>=1 lr<0.02 batch=128 seed=0", "aaaa"):
        assert len(history.filter_sort(rows, query)) == 1, query
    assert history.filter_sort(rows, "acc>99.6") == []


async def test_runs_screen_names_a_filter_it_cannot_read_and_keeps_the_rows(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "20261101T100000Z-v1-aaaaaa", "v1", "finished", [98.0])
    write_run(runs, "20261102T100000Z-v2-bbbbbb", "v2", "finished", [99.5])
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        problem = app.screen.query_one("#runs-filter-problem", Static)
        assert not problem.display
        await type_into(pilot, "#runs-filter", "model:v2")
        assert table.row_count == 1
        for term, why in BAD_FILTERS.items():
            app.screen.query_one("#runs-filter", Input).value = term  # pasted: no readable prefix on the way
            await drained(pilot)
            assert problem.display and term in str(problem.render()) and why in str(problem.render()), term
            assert app.screen.query_one("#runs-filter", Input).has_class("-invalid")
            assert table.row_count == 1  # the last filter that could be read still holds
        await type_into(pilot, "#runs-filter", "acc<99")
        assert not problem.display and table.row_count == 1 and "aaaaaa" in str(table.get_row_at(0)[table.get_column_index("run")])


def _with_settings(path, limit, **recipe) -> None:
    config = json.loads((path / "config.json").read_text())
    config["config"]["recipe"].update(recipe)
    config["config"]["limit"] = limit
    (path / "config.json").write_text(json.dumps(config))


def test_compare_labels_hold_every_setting_that_differs_lr_first(tmp_path):
    a = write_run(tmp_path, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [98.0], epochs_total=15)
    b = write_run(tmp_path, "20261102T100000Z-v2-bbbbbb", "v2", "finished", [98.5], epochs_total=3)
    _with_settings(a, 20000, lr=0.02)
    _with_settings(b, None, lr=0.1)
    assert short_labels(list_runs(tmp_path)) == ["v2 lr=0.02 images=20,000 epochs=15", "v2 lr=0.1 images=all epochs=3"]


async def test_the_compare_view_legend_names_the_learning_rates(tmp_path):
    a = write_run(tmp_path, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [98.0], epochs_total=15)
    b = write_run(tmp_path, "20261102T100000Z-v2-bbbbbb", "v2", "finished", [98.5], epochs_total=3)
    _with_settings(a, 20000, lr=0.02)
    _with_settings(b, None, lr=0.1)
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs")
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "space", "space", "c")
        await drained(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.comparing
        legend = str(app.screen.query_one("#compare-legend", Static).render())
        assert "lr=0.1 images=all epochs=3" in legend and "lr=0.02 images=20,000 epochs=15" in legend


def _many_runs(runs, count: int) -> None:
    for i in range(count):
        stamp = f"{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}"
        write_run(
            runs,
            f"20260101T{stamp}Z-v{i % 4 + 1}-{i:06x}",
            f"v{i % 4 + 1}",
            "stopped" if i % 5 == 0 else "finished",
            [98.0, 99.0, 99.0 + (i % 97) / 100][: 1 + i % 3],
            created=f"2026-01-01T{stamp[:2]}:{stamp[2:4]}:{stamp[4:]}+00:00",
        )


def _column(table: DataTable, key: str) -> list[str]:
    at = table.get_column_index(key)
    return [str(table.get_row_at(i)[at]) for i in range(table.row_count)]


async def test_runs_screen_shows_hundreds_of_runs_and_stays_right_after_a_sort_and_a_filter(tmp_path):
    runs = tmp_path / "runs"
    _many_runs(runs, 300)
    expected = history.select(list_runs(runs), "", "started", reverse=True)
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 300)  # the rest of a screenful arrive after refreshes
        assert _column(table, "run") == [r.run for r in expected]  # newest first
        assert "300 of 300 runs" in str(app.screen.query_one("#runs-summary", Static).render())

        app.screen.sort_by("final_acc")  # as a click on the header does
        await wait_until(pilot, lambda: table.row_count == 300 and app.screen.sort_column == "final_acc")
        accs = [float(a.rstrip("%")) for a in _column(table, "final_acc")]
        assert accs == sorted(accs) and _column(table, "run") == [r.run for r in history.select(list_runs(runs), "", "final_acc")]

        await type_into(pilot, "#runs-filter", "model:v3 acc>99.5")
        await wait_until(pilot, lambda: table.row_count == len(history.select(list_runs(runs), "model:v3 acc>99.5")))
        assert table.row_count > 0 and set(_column(table, "model")) == {"v3"}
        assert all(float(a.rstrip("%")) > 99.5 for a in _column(table, "final_acc"))
        await press(pilot, "escape", "S")  # the sort reversed, the filter kept
        await wait_until(pilot, lambda: app.screen.sort_reverse)
        accs = [float(a.rstrip("%")) for a in _column(table, "final_acc")]
        assert accs == sorted(accs, reverse=True) and set(_column(table, "model")) == {"v3"}


def _index_listing(runs, monkeypatch) -> list[RunRecord]:
    """A listing as a fresh process makes it: nothing in memory, the index file read."""
    monkeypatch.setattr(index, "_memory", {})
    monkeypatch.setattr(index, "_saved_at", {})
    return list_runs(runs)


def _summary(listed: list[RunRecord]) -> list[tuple]:
    return [(r.run_id, r.status, r.reason, r.epochs_done, r.final_test_acc, r.seconds) for r in listed]


@pytest.fixture
def indexed(tmp_path, monkeypatch):
    """Six runs (one damaged) and an index of them; every file counts as settled."""
    monkeypatch.setattr(index, "INDEX_MIN_RUNS", 1)
    monkeypatch.setattr(index, "RACY_NS", 0)
    runs = tmp_path / "runs"
    _many_runs(runs, 5)
    (runs / "20260102T000000Z-v2-dddddd").mkdir()
    (runs / "20260102T000000Z-v2-dddddd" / "config.json").write_text("{half")
    listed = list_runs(runs)
    assert index.index_path(runs).is_file()
    return runs, _summary(listed)


def test_a_listing_with_an_index_reads_no_run_file_and_says_the_same(indexed, monkeypatch):
    runs, first = indexed
    reads = []
    monkeypatch.setattr(index, "read_files", lambda path: reads.append(path) or records.read_files(path))
    assert _summary(_index_listing(runs, monkeypatch)) == first and reads == []
    assert sorted(p.name for p in runs.iterdir()) == sorted(name for name, *_ in first)  # nothing added to the runs folder


def test_a_run_folder_that_changes_shows_its_change(indexed, monkeypatch):
    runs, first = indexed
    path = runs / first[1][0]
    with open(path / "metrics.jsonl", "a") as fh:  # one more epoch, as a trainer writes it
        epoch = first[1][3] + 1
        fh.write(
            json.dumps(
                {
                    "epoch": epoch,
                    "epochs": 3,
                    "train_loss": 0.1,
                    "train_acc": 99.0,
                    "test_loss": 0.1,
                    "test_acc": 99.9,
                    "lr": 1e-3,
                    "seconds": 40.0,
                    "images_per_s": 1500.0,
                }
            )
            + "\n"
        )
    status = json.loads((path / "status.json").read_text())
    (path / "status.json").write_text(json.dumps({**status, "status": "stopped"}))
    changed = {r.run_id: r for r in _index_listing(runs, monkeypatch)}[path.name]
    assert (changed.epochs_done, changed.final_test_acc, changed.status) == (epoch, 99.9, "stopped")
    (path / "config.json").write_text("[]")  # damaged now
    assert {r.run_id: r for r in list_runs(runs)}[path.name].status == "damaged"


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: "not json at all",
        lambda data: json.dumps(data)[: len(json.dumps(data)) // 2],
        lambda data: json.dumps({**data, "format": 99}),
        lambda data: json.dumps({**data, "runs_dir": "/elsewhere"}),
        lambda data: json.dumps([data]),
        lambda data: json.dumps({**data, "runs": {name: {**entry, "metrics": [[1e400] * 15]} for name, entry in data["runs"].items()}}).replace(
            "Infinity", "1e400"
        ),
        lambda data: json.dumps({**data, "runs": {name: {**entry, "metrics": "x"} for name, entry in data["runs"].items()}}),
        lambda data: json.dumps({**data, "runs": {name: {**entry, "config": {"format": 1}} for name, entry in data["runs"].items()}}),
        lambda data: json.dumps({**data, "runs": {name: {**entry, "sig": [[1, 2, 3]] * 4} for name, entry in data["runs"].items()}}),
        lambda data: json.dumps({**data, "runs": {name: {**entry, "damaged": 5} for name, entry in data["runs"].items()}}),
    ],
    ids=[
        "garbage",
        "cut short",
        "format",
        "another folder",
        "a list",
        "a huge number",
        "metrics not a list",
        "config too thin",
        "bad signature",
        "reason not text",
    ],
)
def test_a_bad_index_costs_nothing_but_a_rebuild(indexed, monkeypatch, damage):
    runs, first = indexed
    path = index.index_path(runs)
    data = json.loads(path.read_text())
    path.write_text(damage(data))
    assert _summary(_index_listing(runs, monkeypatch)) == first
    assert index.load_index(runs).keys() == {name for name, *_ in first}  # written again, whole
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_lying_index_entry_is_checked_as_the_files_are(indexed, monkeypatch):
    """An entry whose signature matches but whose figures break the schema is read again
    from its folder, not believed."""
    runs, first = indexed
    path = index.index_path(runs)
    data = json.loads(path.read_text())
    name = first[1][0]
    data["runs"][name]["metrics"][0][5] = 250.0  # test accuracy over 100%
    path.write_text(json.dumps(data))
    assert name not in index.load_index(runs)
    assert _summary(_index_listing(runs, monkeypatch)) == first


def test_files_changed_just_now_are_never_taken_from_the_index(tmp_path, monkeypatch):
    """A file written within the filesystem's timestamp granularity of a listing could be
    written again with the same signature: its folder is read again by the next listing."""
    monkeypatch.setattr(index, "INDEX_MIN_RUNS", 1)
    runs = tmp_path / "runs"
    _many_runs(runs, 2)
    list_runs(runs)
    reads = []
    monkeypatch.setattr(index, "read_files", lambda path: reads.append(path) or records.read_files(path))
    list_runs(runs)
    assert len(reads) == 2  # every file is younger than RACY_NS


async def test_a_slow_first_reading_is_not_started_again_by_the_poll(tmp_path, monkeypatch):
    """Reading thousands of runs can outlast the one-second poll: the reading under way is
    left to finish, not cancelled and started again."""
    import threading

    from mnist_tui.ui.screens import runs as runs_screen

    runs = tmp_path / "runs"
    _many_runs(runs, 3)
    calls, release = [], threading.Event()

    def slow(folder):
        calls.append(folder)
        release.wait(5)  # longer than a poll
        return list_runs(folder)

    monkeypatch.setattr(runs_screen, "list_runs", slow)
    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(1.5)  # a poll or two while the first reading waits
        release.set()
        await settle(pilot)
        assert len(calls) == 1 and app.screen.query_one("#runs-table", DataTable).row_count == 3
