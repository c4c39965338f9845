"""The training engine and the run store, driven as the CLI and the TUI drive them."""

from __future__ import annotations

import json
import os
import threading

import pytest
import torch

from mnist_tui.core.events import BatchProgress, EpochFinished, RunFailed, RunFinished, RunStarted
from mnist_tui.core.store import list_runs, read_run
from mnist_tui.core.store.checkpoint import load_state as load_checkpoint
from mnist_tui.core.train import train
from mnist_tui.core.versions import get_version
from tests.builders import evaluate, written_run


def test_a_small_run_yields_events_and_is_saved(small_config, runs_dir):
    events = list(train(small_config.replace(test_batch_size=100)))
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStarted and kinds[-1] is RunFinished
    started, finished = events[0], events[-1]
    assert started.params == 99_746 and started.train_size == 256 and started.test_size == 500  # --test-limit
    assert started.batches_per_epoch == 2
    epochs = [e for e in events if isinstance(e, EpochFinished)]
    assert [e.epoch for e in epochs] == [1, 2]
    # progress_every=1: one progress event per batch, before its epoch ends
    training = [e for e in events if not isinstance(e, BatchProgress) or e.phase == "training"]
    assert [type(e) for e in training] == [RunStarted, BatchProgress, BatchProgress, EpochFinished, BatchProgress, BatchProgress, EpochFinished, RunFinished]
    # then each test pass has a progress of its own: 500 images in batches of 100
    testing = [(e.epoch, e.batch, e.batches) for e in events if isinstance(e, BatchProgress) and e.phase == "evaluating"]
    assert testing == [(epoch, done, 5) for epoch in (1, 2) for done in range(6)]
    assert kinds.index(EpochFinished) == 1 + 2 + 6  # the test pass comes before its epoch's line
    assert epochs[0].lr == pytest.approx(1e-3) and epochs[1].lr == pytest.approx(5e-4)  # cosine, T_max=2
    assert all(e.images_per_s > 0 and 0 <= e.test_acc <= 100 for e in epochs)
    assert finished.status == "finished" and finished.final_test_acc == epochs[-1].test_acc

    [record] = list_runs(runs_dir)
    assert record.status == "finished" and record.model == "v2" and record.epochs_done == 2
    assert record.final_test_acc == epochs[-1].test_acc
    assert record.config["params"] == 99_746 and record.config["torch_version"] == torch.__version__
    assert "-v2-" in record.path.name
    status = json.loads((record.path / "status.json").read_text())
    assert status["status"] == "finished" and status["epochs_done"] == 2

    # The checkpoint rebuilds the model that scored the last epoch's accuracy.
    ckpt = load_checkpoint(record.path)
    assert ckpt["epoch"] == 2
    from mnist_tui.core import data
    from mnist_tui.core.versions import get_version

    model = get_version("v2").build()
    model.load_state_dict(ckpt["model"])
    _, test = data.load()
    # Evaluated in the numeric mode the run used (recorded in its config).
    assert record.config["precision"] in ("fp32", "bf16") and started.precision == record.config["precision"]
    _, acc = evaluate(model, data.DeviceSplit.from_split(test, "cpu", 500), 100, record.config["precision"])
    assert acc == pytest.approx(epochs[-1].test_acc)  # on the same first 500 test images


def test_holdout_evaluates_on_held_back_training_images_not_the_test_set(small_config, runs_dir):
    from mnist_tui.core import data

    events = list(train(small_config.replace(holdout=1000, epochs=1)))  # and --test-limit 500
    started = events[0]
    assert started.evaluated_on == "holdout" and started.test_size == 500 and started.train_size == 256
    [record] = list_runs(runs_dir)
    assert record.config["evaluated_on"] == "holdout" and record.config["test_size"] == 500
    # The accuracy reported is the trained model's on the first 500 of the last 1,000
    # training images.
    from mnist_tui.core.versions import get_version

    train_split, _ = data.load()
    held = data.Split(train_split.images[-1000:-500], train_split.labels[-1000:-500])
    model = get_version("v2").build()
    model.load_state_dict(load_checkpoint(record.path)["model"])
    _, acc = evaluate(model, data.DeviceSplit.from_split(held, "cpu"), 500, record.config["precision"])
    assert acc == pytest.approx(events[-2].test_acc)


def _first_batch_loss(config) -> float:
    stop = threading.Event()
    for ev in train(config, stop):
        if isinstance(ev, BatchProgress):
            stop.set()
            return ev.loss


def test_same_seed_same_numbers_other_seed_other_numbers(small_config):
    # Whole epochs are compared across processes by the kill-and-resume test (test_faults).
    assert _first_batch_loss(small_config) == _first_batch_loss(small_config)
    assert _first_batch_loss(small_config) != _first_batch_loss(small_config.replace(seed=1))


def test_stop_ends_training_within_one_batch(small_config, runs_dir):
    stop = threading.Event()
    config = small_config.replace(epochs=3, limit=1024)
    events = []
    for ev in train(config, stop):
        events.append(ev)
        if isinstance(ev, BatchProgress) and ev.batch == 3:
            stop.set()
    after_stop = events[events.index(next(e for e in events if isinstance(e, BatchProgress) and e.batch == 3)) + 1 :]
    assert [type(e) for e in after_stop] == [RunFinished]
    assert after_stop[0].status == "stopped" and after_stop[0].epochs_done == 0
    [record] = list_runs(runs_dir)
    assert record.status == "stopped" and record.epochs_done == 0


def test_abandoned_generator_leaves_the_run_stopped(small_config, runs_dir):
    events = train(small_config)
    next(events)  # RunStarted
    next(events)  # first batch
    events.close()
    [record] = list_runs(runs_dir)
    assert record.status == "stopped"


def test_unwritable_runs_folder_fails_before_training(small_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    events = list(train(small_config.replace(runs_dir=str(blocker / "runs"))))
    assert len(events) == 1 and isinstance(events[0], RunFailed)
    assert str(blocker) in events[0].reason


def test_divergence_is_reported_and_recorded(small_config, runs_dir):
    events = list(train(small_config.replace(lr=1e12, epochs=4)))
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.status == "diverged"
    assert "smaller learning rate" in failed.reason
    finished = [e.epoch for e in events if isinstance(e, EpochFinished)]
    assert len(finished) < 4
    record = read_run(failed.run_dir)
    assert record.status == "diverged" and record.epochs_done == len(finished)


def test_divergence_after_a_good_epoch_keeps_that_epoch_and_its_checkpoint(small_config, runs_dir, monkeypatch):
    from mnist_tui.core.train import loop

    real, passes = loop.evaluation, []

    def nan_from_the_second_pass(*args, **kwargs):
        passes.append(1)
        result = yield from real(*args, **kwargs)
        return (float("nan"), 0.0) if len(passes) >= 2 else result

    monkeypatch.setattr(loop, "evaluation", nan_from_the_second_pass)
    events = list(train(small_config.replace(epochs=3)))
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.status == "diverged" and "epoch 2" in failed.reason
    assert [e.epoch for e in events if isinstance(e, EpochFinished)] == [1]
    assert read_run(failed.run_dir).epochs_done == 1
    assert load_checkpoint(failed.run_dir)["epoch"] == 1  # the last good epoch's checkpoint is kept


def _written_run(runs_dir, epochs: int = 1):
    """A finished run of `epochs` epochs whose test accuracy is 90 + the epoch."""
    return written_run(runs_dir, epochs_done=epochs, epochs=epochs, status="finished", test_acc=lambda epoch: 90.0 + epoch)


def test_listing_tolerates_a_half_written_last_metrics_line(runs_dir):
    path = _written_run(runs_dir)
    with open(path / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "train_lo')
    again = read_run(path)
    assert again.status == "finished" and again.epochs_done == 1 and again.final_test_acc == 91.0


def test_unreadable_config_marks_the_run_damaged_and_others_still_list(runs_dir):
    first, second = _written_run(runs_dir), _written_run(runs_dir, epochs=2)
    (first / "config.json").write_text("{not json")
    records = {r.path.name: r for r in list_runs(runs_dir)}
    assert records[first.name].status == "damaged" and "config.json is not valid JSON" in records[first.name].reason
    assert records[second.name].status == "finished" and records[second.name].epochs_done == 2


def test_liveness_comes_from_the_lock_and_a_remote_run_from_its_heartbeat(runs_dir):
    import socket
    from datetime import datetime, timedelta, timezone

    from mnist_tui.core.store import RunLock, heartbeat

    path = _written_run(runs_dir)
    status = json.loads((path / "status.json").read_text())
    status.update(status="running", pid=1)  # pid 1: what a trainer in a container reports
    (path / "status.json").write_text(json.dumps(status))
    assert read_run(path).status == "interrupted"  # nobody holds the lock
    lock = RunLock.acquire(path)
    try:
        assert read_run(path).status == "running"
    finally:
        lock.release()
    assert read_run(path).status == "interrupted"

    # Another host's lock cannot be seen: its heartbeat decides, then --force is needed.
    now = datetime.now(timezone.utc)
    status.update(host=socket.gethostname() + "-elsewhere", updated=now.isoformat())
    (path / "status.json").write_text(json.dumps(status))
    record = read_run(path)
    assert record.status == "running" and "elsewhere" in record.reason and "heartbeat" in record.reason
    status["updated"] = (now - timedelta(hours=1)).isoformat()
    (path / "status.json").write_text(json.dumps(status))
    hour_ago = (now - timedelta(hours=1)).timestamp()
    os.utime(path / "status.json", (hour_ago, hour_ago))  # silent for an hour, as its file's time says
    heartbeat.forget()  # as a reader that did not see it change (one that did counts from then)
    record = read_run(path)
    assert record.status == "stale" and "--force" in record.reason


def test_a_quick_subset_check_does_not_mislead(runs_dir):
    """A short --limit run's test accuracy reflects what the model learned: its batch norms'
    running statistics are recomputed for the final weights before each evaluation."""
    config = get_version("v2").config(epochs=2, limit=2000, test_limit=2000, device="cpu", precision="fp32", runs_dir=str(runs_dir))
    epochs = [e for e in train(config) if isinstance(e, EpochFinished)]
    assert epochs[-1].test_acc > 80.0  # 31% before, with statistics lagging the weights
    assert epochs[-1].test_acc > epochs[-1].train_acc - 10  # and not far below training
    [record] = list_runs(runs_dir)
    assert record.config["bn_recalibrated"] is True


def test_a_stop_after_an_epochs_last_batch_still_evaluates_and_keeps_that_epoch(small_config, runs_dir):
    stop = threading.Event()
    events = []
    for ev in train(small_config.replace(epochs=3), stop):
        events.append(ev)
        if isinstance(ev, BatchProgress) and ev.batch == ev.batches:  # its training is done; the test pass is next
            stop.set()
    assert [e.epoch for e in events if isinstance(e, EpochFinished)] == [1]
    assert events[-1].status == "stopped" and events[-1].epochs_done == 1
    assert read_run(events[-1].run_dir).epochs_done == 1


def test_the_cpu_test_pass_runs_in_small_chunks_and_scores_as_one_big_batch(small_config):
    """The recipe's test batch of 2000 is evaluated on the CPU in chunks of CPU_TEST_CHUNK
    (faster there): the evaluating progress counts those chunks, and the epoch's test loss
    and accuracy are those of the same weights evaluated in one batch of all 500 images."""
    from mnist_tui.core import data
    from mnist_tui.core.device import CPU_TEST_CHUNK
    from mnist_tui.core.versions import get_version

    assert small_config.recipe.test_batch_size == 2000 and small_config.test_limit == 500
    events = list(train(small_config.replace(epochs=1)))
    chunks = -(-500 // CPU_TEST_CHUNK)
    assert chunks > 1
    testing = [(e.batch, e.batches) for e in events if isinstance(e, BatchProgress) and e.phase == "evaluating"]
    assert testing == [(done, chunks) for done in range(chunks + 1)]
    [epoch] = [e for e in events if isinstance(e, EpochFinished)]
    model = get_version("v2").build()
    model.load_state_dict(load_checkpoint(events[0].run_dir)["model"])
    loss, acc = evaluate(model, data.DeviceSplit.from_split(data.load()[1], "cpu", 500), 500, events[0].precision)
    assert acc == pytest.approx(epoch.test_acc) and loss == pytest.approx(epoch.test_loss, rel=1e-3)
