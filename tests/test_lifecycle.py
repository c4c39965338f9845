"""Runs outlive the terminal: trainer processes own their run under a lock, clients follow
and stop them, crashes at any point resume exactly, and signals end runs without tracebacks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_tui.core.store import list_runs, read_run
from tests.builders import REFERENCE_ARGS

pytestmark = pytest.mark.slow  # real processes: each pays torch's import

LONG = ("--model", "v4", "--epochs", "50", "--limit", "2000", "--test-limit", "500", "--device", "cpu")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mnist_tui", *args]


def _wait_for(condition, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout}s"
        time.sleep(0.05)


def _only_run(runs: Path):
    records = list_runs(runs)
    return records[0] if len(records) == 1 else None


def _epochs(record) -> list[dict]:
    keys = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr")
    return [{k: getattr(m, k) for k in keys} for m in record.metrics]


def test_detach_returns_at_once_then_stop_and_follow_are_clients(tmp_path):
    runs = tmp_path / "runs"
    started = subprocess.run(_cli("train", *LONG, "--runs", str(runs), "--detach"), capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.split()[1].rstrip(":")
    assert run_id.endswith(tuple("0123456789abcdef")) and "-v4-" in run_id
    assert (runs / run_id / "config.json").exists()  # it returned once the trainer made its run

    follow = subprocess.Popen(_cli("follow", run_id[-6:], "--runs", str(runs)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (r := _only_run(runs)) is not None and r.status == "running" and r.epochs_done >= 1, what="a live epoch")
    stop = subprocess.run(_cli("stop", run_id[-6:], "--runs", str(runs)), capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr
    out, err = follow.communicate(timeout=60)
    assert follow.returncode == 130 and "Traceback" not in err
    assert f"run {run_id}" in out and "epoch 1/50" in out and out.rstrip().splitlines()[-1].startswith("stopped:")
    record = read_run(runs / run_id)
    assert record.status == "stopped" and 1 <= record.epochs_done < 50
    assert (runs / run_id / "trainer.log").read_text().startswith(f"run {run_id}")  # its output, kept
    stopped_again = subprocess.run(_cli("stop", run_id[-6:], "--runs", str(runs)), capture_output=True, text=True)
    assert stopped_again.returncode == 1 and "is not training (it is stopped)" in stopped_again.stderr


def test_a_detached_trainer_that_cannot_start_leaves_a_failed_run_saying_why(tmp_path):
    runs = tmp_path / "runs"
    started = subprocess.run(_cli("train", "--model", "v4", "--device", "mps", "--runs", str(runs), "--detach"), capture_output=True, text=True)
    assert started.returncode == 1 and "Apple MPS is not available" in started.stderr  # it waited for the trainer's verdict
    run_id = started.stderr.split()[2]  # "mnist-tui: run ID failed: ..."
    followed = subprocess.run(_cli("follow", run_id, "--runs", str(runs)), capture_output=True, text=True, timeout=120)
    assert followed.returncode == 1 and "mps" in followed.stderr and "Traceback" not in followed.stderr
    record = read_run(runs / run_id)
    assert record.status == "failed" and "Apple MPS is not available" in record.reason


def test_nohup_keeps_training_through_sighup(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        ["nohup", *_cli("train", "--model", "v4", "--epochs", "3", "--limit", "3000", "--test-limit", "500", "--device", "cpu", "--runs", str(runs))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        if line.startswith("run "):  # training has started: epoch 1 is under way
            break
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err
    assert read_run(_only_run(runs).path).status == "finished"


def test_two_resumes_at_once_one_trains_the_other_names_the_holder(tmp_path):
    runs = tmp_path / "runs"
    # 10 epochs of 2,000 images (~2 s each with the test pass): the second resume comes
    # while the first one trains.
    first = subprocess.Popen(_cli("train", *LONG[:3], "10", *LONG[4:], "--runs", str(runs)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in first.stdout:
        if line.startswith("epoch 1/"):
            first.send_signal(signal.SIGINT)
            break
    first.communicate(timeout=60)
    record = _only_run(runs)
    assert record.status == "stopped"
    a = subprocess.Popen(_cli("resume", record.run_id, "--runs", str(runs)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: read_run(record.path).status == "running", what="the first resume's lock")
    time.sleep(1.0)  # the scenario: the second resume starts a second later
    b = subprocess.run(_cli("resume", record.run_id, "--runs", str(runs)), capture_output=True, text=True, timeout=60)
    a_out, a_err = a.communicate(timeout=120)
    assert a.returncode == 0, a_err
    assert b.returncode == 1 and b.stderr.strip() == f"mnist-tui: cannot resume: {record.run_id} is being trained by pid {a.pid} on host {record.host}"
    done = read_run(record.path)
    assert done.status == "finished" and [m.epoch for m in done.metrics] == list(range(1, 11))


@pytest.mark.parametrize("point", ["training", "after-metrics", "checkpoint-rename"])
def test_kill_9_at_any_point_resumes_to_the_same_metrics(tmp_path, reference_run, point):
    runs = tmp_path / "runs"
    crash = Path(__file__).with_name("crash_at.py")
    killed = subprocess.run([sys.executable, str(crash), point, "train", *REFERENCE_ARGS, "--runs", str(runs)], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    record = _only_run(runs)
    assert record.status == "interrupted"
    resumed = subprocess.run(_cli("resume", record.run_id[-6:], "--runs", str(runs)), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert not [p.name for p in record.path.iterdir() if p.name.endswith(".tmp")]
    [reference] = list_runs(reference_run[1])
    assert _epochs(read_run(record.path)) == _epochs(reference) and len(reference.metrics) == 2


def test_a_closed_pipe_does_not_stop_training_or_print_a_traceback(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.Popen(_cli("train", *REFERENCE_ARGS, "--runs", str(runs)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err
    assert read_run(_only_run(runs).path).status == "finished"


def test_two_quick_ctrl_c_stop_quietly_and_save_the_run(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.Popen(_cli("train", *LONG, "--runs", str(runs)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("run "):
            break
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)  # the second Ctrl+C of an impatient user, 50 ms later
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err
    assert read_run(_only_run(runs).path).status == "stopped"
