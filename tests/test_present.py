"""What both front ends show of many runs: which columns fit, the legend's labels, the
settings that differ, and `mnist-tui runs` at 80 columns; and how long things take, in each
of the one time formatter's forms."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from mnist_tui.core.history import row_of
from mnist_tui.core.store import list_runs
from mnist_tui.headless import print_runs
from mnist_tui.present.compare import differing_settings, short_labels
from mnist_tui.present.runs import fit_run_columns
from mnist_tui.present.times import duration
from tests.ui_helpers import fixture_store, write_run


def _with_recipe(path, **recipe):
    config = json.loads((path / "config.json").read_text())
    config["config"]["recipe"].update(recipe)
    (path / "config.json").write_text(json.dumps(config))


def test_columns_are_chosen_for_the_width_and_the_run_id_is_always_whole(tmp_path):
    fixture_store(tmp_path)
    rows = [row_of(r) for r in list_runs(tmp_path)]
    narrow = [c.key for c in fit_run_columns(rows, 78)]
    wide = [c.key for c in fit_run_columns(rows, 200)]
    assert narrow[0] == "run" and "final_acc" in narrow and "status" in narrow
    assert "lr" not in narrow and "seed" not in narrow  # the extra settings wait for room
    assert {"lr", "batch", "images", "seed", "precision", "device", "params"} <= set(wide)
    assert [c.key for c in fit_run_columns(rows, 10)] == ["run"]  # never cut below the id


def test_runs_command_at_80_columns_keeps_ids_whole_and_wraps_the_reason(tmp_path):
    fixture_store(tmp_path)
    out = io.StringIO()
    print_runs(list_runs(tmp_path), tmp_path, Console(file=out, width=80, color_system=None))
    text = out.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines())
    for name in ("20261101T100000Z-v1-aaaaaa", "20261103T100000Z-v2-cccccc", "20261104T100000Z-v2-dddddd"):
        assert name in text  # whole, distinguishable
    assert "final acc" in text and "98.40%" in text
    assert "20261104T100000Z-v2-dddddd damaged:" in text  # the reason, below the table


def test_labels_name_the_setting_that_tells_runs_apart(tmp_path):
    a = write_run(tmp_path, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [98.0])
    b = write_run(tmp_path, "20261102T100000Z-v2-bbbbbb", "v2", "finished", [98.5])
    _with_recipe(a, lr=0.01)
    _with_recipe(b, lr=0.001)
    records = list_runs(tmp_path)
    assert differing_settings(records) == {"lr": [0.01, 0.001]}
    assert short_labels(records) == ["v2 lr=0.01", "v2 lr=0.001"]


def test_labels_of_runs_alike_fall_back_to_the_short_id(tmp_path):
    write_run(tmp_path, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [98.0])
    write_run(tmp_path, "20261102T100000Z-v2-bbbbbb", "v2", "finished", [98.5])
    assert short_labels(list_runs(tmp_path)) == ["v2 aaaaaa", "v2 bbbbbb"]


def test_labels_put_the_most_telling_setting_first(tmp_path):
    a = write_run(tmp_path, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [98.0])
    b = write_run(tmp_path, "20261102T100000Z-v2-bbbbbb", "v2", "finished", [98.5])
    c = write_run(tmp_path, "20261103T100000Z-v1-cccccc", "v1", "finished", [97.5])
    for path, limit in ((a, 2000), (b, 256), (c, 2000)):
        config = json.loads((path / "config.json").read_text())
        config["config"]["limit"] = limit
        (path / "config.json").write_text(json.dumps(config))
    _with_recipe(c, batch_size=64, optimizer="adam")
    records = list_runs(tmp_path)
    assert differing_settings(records) == {"images": [2000, 256, 2000], "batch": [128, 128, 64], "optimizer": [None, None, "adam"]}
    # Every setting that differs (issue 32 item 13); the optimizer, by its value alone, where it was set.
    assert short_labels(records) == ["v2 images=2,000 batch=128", "v2 images=256 batch=128", "v1 images=2,000 batch=64 adam"]


@pytest.mark.parametrize(
    "seconds, words, compact, clock",
    [
        (40, "40 s", "40s", "0:40"),
        (480, "8 min", "8m", "8:00"),
        (3907, "1 h 05 min", "1h05", "1:05:07"),
        (1e7, "2777 h 46 min", "2777h46", "> 999 h"),
        (float("inf"), ">9999 h", ">9999h", "> 999 h"),
        (float("nan"), "?", "?", "?"),
        (-1, "?", "?", "?"),
    ],
)
def test_one_time_formatter_says_how_long_in_words_a_column_and_a_clock(seconds, words, compact, clock):
    """The estimate on the Train screen and in --help (words), the Runs table's time column
    (compact) and the progress lines' time left (clock): one formatter, one rule for what is
    not a time."""
    assert (duration(seconds), duration(seconds, "compact"), duration(seconds, "clock")) == (words, compact, clock)
