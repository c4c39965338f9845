"""Issue 33, findings 1, 5, 6, 9, 10, 11, 12 and 16, each as what a user meets: `delete` erases
only a run, an unwritable runs folder is one line, every time left is a short clock, `stop`
goes by the lock, one range per setting, a remote heartbeat is judged by this reader's clock,
`resume --detach` succeeds only for its own trainer, and the minor ones (an early Ctrl+C, a
full disk under --detach, an emptied metrics file, random bytes as a checkpoint, pid 2^31)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mnist_tui import cli
from mnist_tui.core.config import MAX_EPOCHS, MAX_IMAGES, MAX_PROCESSES, MAX_SEED, MNIST_TRAIN_SIZE
from mnist_tui.core.store import read_run
from mnist_tui.core.validate import config_problems
from mnist_tui.core.versions import get_version
from tests.builders import written_run


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mnist_tui", *args]


def _status(run: Path, **fields) -> None:
    data = json.loads((run / "status.json").read_text())
    data.update(fields)
    (run / "status.json").write_text(json.dumps(data))


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# 10. one range per setting, from the CLI to the schema -----------------------------------------


@pytest.mark.parametrize(
    "option, value, complaint",
    [
        ("--epochs", MAX_EPOCHS + 1, "epochs must be at most 1,000,000, got 1,000,001"),
        ("--seed", MAX_SEED + 1, "seed must be a whole number from 0 to 2^62 - 1"),
        ("--limit", MAX_IMAGES + 1, "training subset must be a number of images from 1 to 1,000,000,000"),
        ("--test-limit", MAX_IMAGES + 1, "test subset must be a number of images from 1 to 1,000,000,000"),
        ("--batch-size", MNIST_TRAIN_SIZE + 1, "batch size 60,001 is larger than the 60,000 training images"),
        ("--nproc", MAX_PROCESSES + 1, "processes must be a whole number from 1 to 64"),
    ],
)
def test_train_refuses_a_setting_past_its_range_before_anything_starts(tmp_path, capsys, option, value, complaint):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--runs", str(tmp_path / "runs"), option, str(value)])
    assert exit_info.value.code == 2 and complaint in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_run_started_at_every_settings_highest_value_lists_follows_and_stops(tmp_path):
    """What validate.py lets start, the schema reads: each setting at its bound in config.json."""
    from mnist_tui.core.store import RunWriter
    from mnist_tui.core.store.follow import Follower

    config = get_version("v2").config(epochs=MAX_EPOCHS, batch_size=MNIST_TRAIN_SIZE, seed=MAX_SEED, limit=MAX_IMAGES, test_limit=MAX_IMAGES, target=100)
    assert config_problems(config) == {}
    record = {"config": config.to_dict(), "seed": config.seed, "train_size": MNIST_TRAIN_SIZE, "test_size": 10_000, "params": 99_746, "world_size": 1}
    writer = RunWriter.create(tmp_path / "runs", "v2", record)
    try:
        live = read_run(writer.path)
        assert live.status == "running" and live.epochs_total == MAX_EPOCHS and live.seed == MAX_SEED, live.reason
        [started] = Follower(writer.path).poll()
        assert started.config.recipe.epochs == MAX_EPOCHS
    finally:
        writer.close("stopped")
    assert read_run(writer.path).status == "stopped"


@pytest.mark.parametrize("pid, status", [(2**31 - 1, "stopped"), (2**31, "damaged")])
def test_a_pid_must_be_below_2_to_the_31(tmp_path, pid, status):
    run = written_run(tmp_path / "runs")
    _status(run, pid=pid)
    record = read_run(run)
    assert record.status == status and (status != "damaged" or "status.json's pid is out of range" in record.reason)
