"""Filtering and sorting many runs: what the Runs screen's filter box and `runs --filter` do."""

from __future__ import annotations

from mnist_tui import cli
from mnist_tui.core import history
from mnist_tui.core.store import list_runs
from tests.ui_helpers import write_run


def _store(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "20261101T100000Z-v1-aaaaaa", "v1", "finished", [97.1, 98.0, 98.4], epochs_total=3)
    write_run(runs, "20261102T100000Z-v2-bbbbbb", "v2", "finished", [98.4] * 10, epochs_total=10)
    write_run(runs, "20261103T100000Z-v2-cccccc", "v2", "stopped", [99.1] * 9, epochs_total=20)
    return runs


def _names(rows):
    return [row.run[-6:] for row in rows]


def test_column_filters_match_within_the_column_whatever_the_case(tmp_path):
    records = list_runs(_store(tmp_path))
    assert len(history.select(records, "device:cpu")) == 3  # the column reads "CPU, 2 threads"
    assert _names(history.select(records, "model:V2 status:stop")) == ["cccccc"]
    assert _names(history.select(records, "aaaa")) == ["aaaaaa"]


def test_numeric_filters_compare_numbers(tmp_path):
    records = list_runs(_store(tmp_path))
    assert _names(history.select(records, "acc>99")) == ["cccccc"]
    assert _names(history.select(records, "epochs>=10")) == ["bbbbbb"]
    assert _names(history.select(records, "acc<=98.4 epochs<5")) == ["aaaaaa"]
    assert _names(history.select(records, "lr<0.01")) == []  # these fixture runs record no lr
    assert _names(history.select(records, "batch=128")) == ["aaaaaa", "bbbbbb", "cccccc"]


def test_epochs_sort_by_the_number_done(tmp_path):
    records = list_runs(_store(tmp_path))
    assert _names(history.select(records, "", sort="epochs")) == ["aaaaaa", "cccccc", "bbbbbb"]  # 3, 9, 10


def test_runs_command_filters_the_same_way(tmp_path, capsys):
    runs = _store(tmp_path)
    assert cli.main(["runs", "--runs", str(runs), "--filter", "acc>99"]) == 0
    out = capsys.readouterr().out
    assert "cccccc" in out and "aaaaaa" not in out and "bbbbbb" not in out
    assert cli.main(["runs", "--runs", str(runs), "--filter", "zzz"]) == 0
    assert capsys.readouterr().out.strip() == f"No runs in {runs} match 'zzz' (3 runs in all)."
