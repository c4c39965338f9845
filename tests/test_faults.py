"""Faults and bad input: killed runs resume exactly, damaged files are named, nothing is lost."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import threading

import pytest
import torch

from mnist_tui.core import data
from mnist_tui.core.events import RunFailed
from mnist_tui.core.store import CheckpointError, RunWriter, list_runs, read_run
from mnist_tui.core.store.checkpoint import load_state as load_checkpoint
from mnist_tui.core.train import resume, train
from mnist_tui.core.validate import config_problems
from mnist_tui.core.versions import get_version
from tests.builders import REFERENCE_ARGS, damaged_store

METRIC_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr")


def _cli(*args):
    return [sys.executable, "-m", "mnist_tui", *args]


def _metrics(run_dir):
    return [{k: getattr(m, k) for k in METRIC_KEYS} for m in read_run(run_dir).metrics]


@pytest.mark.slow
def test_killed_mid_epoch_shows_interrupted_and_resumes_to_the_same_metrics(tmp_path, reference_run):
    runs = tmp_path / "runs"
    proc = subprocess.Popen(_cli("train", *REFERENCE_ARGS, "--runs", str(runs)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 1/2"):  # its checkpoint is on disk; epoch 2 is under way
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    [killed] = list_runs(runs)
    assert killed.status == "interrupted" and killed.epochs_done == 1
    assert load_checkpoint(killed.path)["epoch"] == 1

    resumed = subprocess.run(_cli("resume", killed.path.name[-6:], "--runs", str(runs)), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert [line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("epoch ")] == ["2/2"]
    assert read_run(killed.path).status == "finished"

    # Same seed, same recipe, never interrupted, another process: identical epochs.
    [uninterrupted] = list_runs(reference_run[1])
    assert len(_metrics(uninterrupted.path)) == 2
    assert _metrics(killed.path) == _metrics(uninterrupted.path)


@pytest.mark.slow
def test_sighup_stops_cleanly_like_ctrl_c(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        _cli("train", "--model", "v2", "--epochs", "20", "--limit", "256", "--test-limit", "500", "--device", "cpu", "--runs", str(runs)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal, even if this suite runs under nohup (which would be honoured)
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )
    for line in proc.stdout:
        if line.startswith("run "):  # training has started (Ctrl+C's test waits for an epoch)
            break
    proc.send_signal(signal.SIGHUP)  # what a dropped SSH session sends
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    [record] = list_runs(runs)
    assert record.status == "stopped" and record.epochs_done < 20


def test_resume_refuses_a_finished_run(tmp_path):
    writer = RunWriter.create(tmp_path, "v2", {"config": get_version("v2").config(epochs=1).to_dict()})
    writer.close("finished")
    [failed] = list(resume(writer.path))
    assert isinstance(failed, RunFailed) and "finished" in failed.reason and "stopped" in failed.reason


class _Payload:
    def __reduce__(self):
        return (print, ("this ran on load",))


def test_a_checkpoint_crafted_to_run_code_is_refused(tmp_path):
    torch.save({"model": {}, "epoch": 1, "payload": _Payload()}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="was refused"):
        load_checkpoint(tmp_path)


def test_every_kind_of_damage_is_named_and_the_written_run_still_lists(tmp_path):
    expected, good = damaged_store(tmp_path)
    records = {r.path.name: r for r in list_runs(tmp_path)}
    for name, reason in expected.items():
        assert records[name].status == "damaged" and reason in records[name].reason, name
    assert records[good.name].status == "stopped" and records[good.name].epochs_done == 1


def test_a_full_disk_at_the_save_keeps_the_previous_checkpoint(small_config, runs_dir, monkeypatch):
    real_save, calls = torch.save, []

    def save_until_the_disk_fills(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    events = list(train(small_config.replace(epochs=3)))
    failed = events[-1]
    assert isinstance(failed, RunFailed)
    assert failed.reason == "no space left on device while saving epoch 2; the checkpoint of epoch 1 is intact"
    assert load_checkpoint(failed.run_dir)["epoch"] == 1
    assert not any(p.name.endswith(".tmp") for p in failed.run_dir.iterdir())
    assert read_run(failed.run_dir).status == "failed"


def test_two_trainings_at_once_get_their_own_folders(tmp_path):
    made = []
    threads = [threading.Thread(target=lambda: made.append(RunWriter.create(tmp_path, "v2", {}).path)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 16 and all(p.is_dir() for p in made)


@pytest.mark.slow
def test_a_batch_larger_than_the_training_set_is_refused_before_anything_starts(tmp_path):
    config = get_version("v2").config(batch_size=512, limit=256, runs_dir=str(tmp_path))
    assert "larger than the 256 training images" in config_problems(config)["batch_size"]
    result = subprocess.run(_cli("train", "--batch-size", "70000", "--runs", str(tmp_path)), capture_output=True, text=True)
    assert result.returncode == 2 and "larger than the 60,000 training images" in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_damaged_idx_file_is_extracted_again_from_its_gz(tmp_path):
    raw = data.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name in data.IDX_MD5:
        (raw / f"{name}.gz").write_bytes((data.SHIPPED_DATA / f"{name}.gz").read_bytes())
    data.prepare(tmp_path, download=False)
    target = raw / "t10k-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:-10])  # truncated
    messages = []
    data.prepare(tmp_path, download=False, log=messages.append)
    assert any("t10k-labels-idx1-ubyte is damaged; extracting it again" in m for m in messages)
    assert len(target.read_bytes()) == 10_008


def test_out_of_memory_in_the_second_epoch_fails_the_run_saying_what_to_do_and_keeps_the_first(small_config, monkeypatch):
    """Out of GPU memory mid-run, as CUDA raises it (torch.OutOfMemoryError), simulated on the
    CPU: the run is `failed` with a reason that names a smaller batch size, and the finished
    epoch with its checkpoint is kept for a resume."""
    from mnist_tui.core import nets
    from mnist_tui.core.events import EpochFinished

    first_epoch_done = threading.Event()
    forward = nets.SeedV2.forward

    def out_of_memory_after_epoch_1(self, x):
        if first_epoch_done.is_set() and self.training:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, x)

    monkeypatch.setattr(nets.SeedV2, "forward", out_of_memory_after_epoch_1)
    events = []
    for event in train(small_config.replace(epochs=3)):
        events.append(event)
        if isinstance(event, EpochFinished):
            first_epoch_done.set()
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.status == "failed"
    assert failed.reason == "out of memory at batch size 128; try a smaller batch size, e.g. 64"
    record = read_run(failed.run_dir)
    assert record.status == "failed" and record.reason == failed.reason and record.epochs_done == 1
    assert load_checkpoint(failed.run_dir)["epoch"] == 1
