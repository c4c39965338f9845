"""The run queue and core sharing (issue 34): queued runs start when the device is free,
however the run before them ended; two commands queueing at once keep both; a queued run is
cancelled by `stop`, listed `queued` by `runs`; the queue's files are untrusted input; a run
started beside another with --now takes its share of the cores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnist_tui.cli import main
from mnist_tui.core import hardware
from mnist_tui.core.store import queue, read_run, request_stop
from mnist_tui.core.store.trainers import Live, Slot, live_trainers, queue_lock, state_dir
from mnist_tui.core.versions import get_version

SMALL = ("--epochs", "1", "--limit", "256", "--test-limit", "100", "--device", "cpu", "--precision", "fp32")
LONG = ("--epochs", "200", "--limit", "256", "--test-limit", "100", "--device", "cpu", "--precision", "fp32")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test's live trainers and queue lock in a cache folder of its own."""
    monkeypatch.setenv("MNIST_TUI_CACHE", str(tmp_path / "cache"))


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ}
    return subprocess.run([sys.executable, "-m", "mnist_tui", *args], capture_output=True, text=True, timeout=timeout, env=env)


def _config(runs, device="cpu", processes=1):
    return get_version("v2").config(epochs=1, limit=256, test_limit=100, device=device, runs_dir=str(runs), processes=processes)


def _busy_cpu(runs) -> Slot:
    """A stand-in for a trainer live on the CPU: a slot this test holds."""
    with queue_lock(runs):
        return Slot.take(runs, Live("someone-else", "cpu", (), 2))


def _statuses(runs) -> dict[str, str]:
    return {p.name: read_run(p).status for p in sorted(Path(runs).iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _wait(done, seconds: float = 120.0) -> bool:
    """Poll a condition on the files of real processes (no event to wait on across processes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.2)
    return done()


# --- where a run goes: the thread split and the GPUs (fakes, no process) -------------------


def test_a_cpu_run_waits_for_the_cpu_unless_now_then_takes_its_share_of_the_cores(tmp_path):
    config = _config(tmp_path)
    other = Live("a", "cpu", (), 2)
    assert queue.place(config, [], now=False, cores=2) == queue.Placement(2)
    assert queue.place(config, [other], now=False, cores=2) is None
    assert queue.place(config, [other], now=True, cores=2) == queue.Placement(1, shared=True)
    assert queue.place(config, [other, other, other], now=True, cores=16) == queue.Placement(4, shared=True)
    assert queue.place(config, [other, other], now=True, cores=2) == queue.Placement(1, shared=True)  # at least one
    # A GPU trainer does not hold the CPU's cores, but its threads run on them.
    assert queue.place(config, [Live("g", "cuda", ("0",))], now=False, cores=2) == queue.Placement(2, shared=True)


def test_trainers_sharing_the_cpu_never_spin_wait_and_say_their_threads_before_torch_loads(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    env = queue.Placement(3, shared=True).environment()
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["GOMP_SPINCOUNT"] == "0"
    assert env["OMP_NUM_THREADS"] == "3" and "CUDA_VISIBLE_DEVICES" not in env
    # Alone, a trainer keeps OpenMP's default wait: passive waits cost v4 a third of its speed.
    alone = queue.Placement(2).environment()
    assert alone.get("OMP_WAIT_POLICY") is None and alone.get("GOMP_SPINCOUNT") is None and alone["OMP_NUM_THREADS"] == "2"
    # ... even started by a trainer that waits passively (the queue's next run, when one ends).
    monkeypatch.setattr(os, "environ", hardware.applied(os.environ, env))
    inherited = hardware.applied(os.environ, queue.Placement(2).environment())
    assert not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", hardware.OURS} & set(inherited) and inherited["OMP_NUM_THREADS"] == "2"
    monkeypatch.setattr(os, "environ", {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"})
    monkeypatch.delitem(os.environ, hardware.OURS)
    assert "OMP_WAIT_POLICY" not in queue.Placement(3, shared=True).environment()  # the user's own choice is kept


def test_a_run_waits_passively_beside_its_own_ranks_a_sweeps_other_jobs_or_unseen_trainers(tmp_path, monkeypatch):
    config = _config(tmp_path)
    assert queue.place(_config(tmp_path, processes=2), [], now=False, cores=2) == queue.Placement(2, shared=True)
    assert queue.place(config, [], now=True, cores=2, sharing=True) == queue.Placement(2, shared=True)
    assert queue.place(config, [], now=True, cores=2) == queue.Placement(2)  # --now alone: nothing to share
    from mnist_tui.trainer import schedule

    def unwritable(runs_dir):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(schedule, "queue_lock", unwritable)  # bookkeeping that cannot be written
    assert schedule.admit(tmp_path, config, "r", "auto").placement == queue.Placement(None, shared=True)


def test_gpu_runs_take_the_first_free_gpu_one_run_per_gpu(tmp_path):
    config = _config(tmp_path, device="cuda")
    gpus = ["0", "1", "2"]
    assert queue.place(config, [], now=False, gpus=gpus).gpus == ("0",)
    taken = [Live("a", "cuda", ("0",)), Live("b", "cuda", ("1",))]
    placed = queue.place(config, taken, now=False, gpus=gpus)
    assert placed.gpus == ("2",) and placed.environment()["CUDA_VISIBLE_DEVICES"] == "2"
    full = [*taken, Live("c", "cuda", ("2",))]
    assert queue.place(config, full, now=False, gpus=gpus) is None  # waits for a free GPU
    assert queue.place(config, [*full, Live("d", "cuda", ("0",))], now=True, gpus=gpus).gpus == ("1",)  # the least loaded
    two = _config(tmp_path, device="cuda", processes=2)
    assert queue.place(two, taken, now=False, gpus=gpus) is None  # needs two free GPUs
    assert queue.place(two, taken[:1], now=False, gpus=gpus).gpus == ("1", "2")
    # auto is a GPU run where the driver lists one; a CUDA_VISIBLE_DEVICES the user set is kept to.
    assert hardware.device_kind("auto", gpus=2) == "cuda" and hardware.device_kind("auto", gpus=0) == "cpu"
    assert hardware.visible_gpus({"CUDA_VISIBLE_DEVICES": "3,5"}, gpus=8) == ["3", "5"]


def test_the_app_redraws_less_often_beside_a_trainer_on_a_small_cpu():
    assert hardware.redraw_seconds(3.0, 0, cores=2) == 3.0
    assert hardware.redraw_seconds(3.0, 1, cores=2) > 3.0
    assert hardware.redraw_seconds(3.0, 1, cores=16) == 3.0
    assert hardware.redraw_seconds(3.0, 16, cores=16) > 3.0


# --- the queue's files ---------------------------------------------------------------------


def test_queued_runs_are_run_folders_listed_filtered_moved_and_cancelled(tmp_path, capsys):
    runs = tmp_path / "runs"
    names = [f"20260101T00000{i}Z-v2-00000{i}" for i in range(3)]
    with queue_lock(runs):
        for name in names:
            queue.enqueue(runs, _config(runs), name)
    assert [p.name for p in queue.queued_runs(runs)] == names
    record = read_run(runs / names[0])
    assert record.status == "queued" and record.epochs_done == 0 and not (runs / names[0] / "checkpoint.pt").exists()

    slot = _busy_cpu(runs)  # nothing may start while the test looks
    try:
        assert main(["runs", "--runs", str(runs), "--filter", "status:queued"]) == 0
        out = capsys.readouterr().out
        assert all(name in out for name in names) and "queued" in out
        assert main(["queue", "--runs", str(runs), "--move", names[2][-6:], "--to", "1"]) == 0
        out = capsys.readouterr().out
        assert out.index(names[2]) < out.index(names[0]) < out.index(names[1])
        assert main(["stop", names[0][-6:], "--runs", str(runs)]) == 0
        assert "cancelled" in capsys.readouterr().out
        assert not (runs / names[0]).exists()
        assert [p.name for p in queue.queued_runs(runs)] == [names[2], names[1]]
    finally:
        slot.release()


def test_a_queued_run_deletes_like_any_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    with queue_lock(runs):
        queue.enqueue(runs, _config(runs), "20260101T000000Z-v2-abcdef")
    assert main(["delete", "abcdef", "--runs", str(runs), "--yes"]) == 0
    assert not (runs / "20260101T000000Z-v2-abcdef").exists()


@given(
    st.binary(max_size=300)
    | st.text(max_size=200).map(str.encode)
    | st.recursive(
        st.none() | st.integers() | st.text(max_size=8), lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=12
    ).map(lambda v: json.dumps({"format": 1, "order": v}).encode())
)
def test_a_damaged_queue_file_never_stops_the_queue(tmp_path_factory, data):
    """Whatever `.queue.json` holds, readers list every queued run, each once, and never raise."""
    runs = tmp_path_factory.mktemp("runs")
    for name in ("20260101T000001Z-v2-000001", "20260101T000002Z-v2-000002"):
        queue.enqueue(runs, _config(runs), name)
    (runs / queue.QUEUE_FILE).write_bytes(data)
    order = queue.read_order(runs)
    assert all(isinstance(n, str) for n in order) and len(order) == len(set(order))
    assert sorted(p.name for p in queue.queued_runs(runs)) == ["20260101T000001Z-v2-000001", "20260101T000002Z-v2-000002"]
    queue.move(runs, "20260101T000002Z-v2-000002", 1)
    assert [p.name for p in queue.queued_runs(runs)][0] == "20260101T000002Z-v2-000002"


@given(st.binary(max_size=300))
def test_a_damaged_slot_file_is_read_as_a_trainer_of_no_known_run(tmp_path_factory, data):
    runs = tmp_path_factory.mktemp("runs")
    slot = _busy_cpu(runs)
    try:
        os.pwrite(slot.fd, data, 0)
        os.ftruncate(slot.fd, len(data))
        [live] = live_trainers(runs)
        assert live.device in ("cpu", "cuda", "mps")
    finally:
        slot.release()
    assert live_trainers(runs) == []


def test_a_slot_counts_only_while_its_holder_lives(tmp_path):
    runs = tmp_path / "runs"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from mnist_tui.core.store.trainers import *; s = Slot.take(sys.argv[1], Live('x')); print(flush=True); time.sleep(60)",
            str(runs),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        holder.stdout.readline()  # the slot is taken
        assert len(live_trainers(runs)) == 1
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert live_trainers(runs, prune=True) == []
        assert not any((state_dir(runs) / "slots").iterdir())  # the dead one's file is gone
    finally:
        holder.kill()


# --- real trainers -------------------------------------------------------------------------


@pytest.mark.slow
def test_two_commands_queueing_at_once_keep_both(tmp_path):
    runs = tmp_path / "runs"
    slot = _busy_cpu(runs)  # the CPU is taken: both wait
    try:
        procs = [
            subprocess.Popen([sys.executable, "-m", "mnist_tui", "train", *SMALL, "--runs", str(runs)], stdout=subprocess.PIPE, text=True) for _ in range(2)
        ]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        assert all("queued" in out for out in outs)
        queued = queue.queued_runs(runs)
        assert len(queued) == 2 and sorted(queue.read_order(runs)) == sorted(p.name for p in queued)
    finally:
        slot.release()


def _detached(runs, *args) -> Path:
    result = _cli("train", *args, "--runs", str(runs), "--detach")
    assert result.returncode == 0, result.stderr
    [name] = [w for w in result.stdout.split() if w.endswith(":") and "-v2-" in w]
    return runs / name.rstrip(":")


def _launched(runs, *args) -> Path:
    """A detached trainer started as `train --now --detach` starts one, without the look at
    the queue that every command makes (so that the queue waits for this very trainer)."""
    from mnist_tui.cli import build_parser, config_of
    from mnist_tui.trainer import reserve_name
    from mnist_tui.trainer.launch import start_new

    config = config_of(build_parser().parse_args(["train", *args, "--runs", str(runs)]))
    name = reserve_name(config.model)
    placement = queue.Placement(hardware.cpu_cores())
    with queue_lock(runs):
        slot = Slot.take(runs, Live(name, "cpu", (), placement.threads))
    start_new(config, runs, name, placement, slot)
    return runs / name


def _queued(runs) -> Path:
    result = _cli("train", *SMALL, "--runs", str(runs), "--queue")
    assert result.returncode == 0 and "queued" in result.stdout, result.stdout + result.stderr
    [name] = [w for w in result.stdout.split() if w.endswith(":") and "-v2-" in w]
    return runs / name.rstrip(":")


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["finished", "stopped", "failed", "diverged"])
def test_a_queued_run_starts_when_the_run_before_it_ends(tmp_path, ending):
    """The trainer before it ends and starts it: nothing else looks at the queue meanwhile."""
    runs = tmp_path / "runs"
    (tmp_path / "a-file").touch()
    first_args = {
        "finished": SMALL,
        "stopped": LONG,
        "failed": (*SMALL, "--data", str(tmp_path / "a-file" / "data")),  # MNIST cannot be put there
        "diverged": (*LONG[:2], "--limit", "1024", *LONG[4:], "--lr", "1e9"),
    }[ending]
    blocker = _busy_cpu(runs)  # until the first trainer is launched and the second run queued
    try:
        first = _launched(runs, *first_args)
        waiting = _queued(runs)
    finally:
        blocker.release()
    assert read_run(waiting).status == "queued"
    if ending == "stopped":
        assert _wait(lambda: (first / "status.json").exists())
        request_stop(first)
    assert _wait(lambda: read_run(waiting).status == "finished"), _statuses(runs)
    assert read_run(first).status == ending
    assert read_run(waiting).config["config"]["threads"] == hardware.cpu_cores()  # alone: every core
    assert not [p for p in runs.iterdir() if p.name.startswith(".claimed-")]


@pytest.mark.slow
def test_a_trainer_killed_with_sigkill_does_not_strand_the_queue(tmp_path):
    runs = tmp_path / "runs"
    first = _detached(runs, *LONG)
    waiting = _queued(runs)
    pid = json.loads((first / "status.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    assert _wait(lambda: read_run(first).status == "interrupted", 30)
    assert read_run(waiting).status == "queued"  # nobody has looked yet
    listing = _cli("queue", "--runs", str(runs))  # the next command that looks starts it
    assert listing.returncode == 0
    assert _wait(lambda: read_run(waiting).status == "finished"), _statuses(runs)


@pytest.mark.slow
def test_a_run_started_now_beside_another_records_its_share_of_the_cores(tmp_path):
    runs = tmp_path / "runs"
    slot = _busy_cpu(runs)
    try:
        result = _cli("train", *SMALL, "--runs", str(runs), "--now")
        assert result.returncode == 0, result.stderr
    finally:
        slot.release()
    [run] = [p for p in runs.iterdir() if p.is_dir()]
    threads = read_run(run).config["config"]["threads"]
    assert threads == hardware.thread_share(hardware.cpu_cores(), 1)
    assert f"{threads} thread" in read_run(run).config["device_name"]  # what torch was told


def test_follow_of_a_queued_run_says_it_has_not_started(tmp_path, capsys):
    """`mnist-tui follow` on a queued run said only 'queued: queued'."""
    runs = tmp_path / "runs"
    with queue_lock(runs):
        queue.enqueue(runs, _config(runs), "20260101T000000Z-v2-abcdef")
    assert main(["follow", "abcdef", "--runs", str(runs)]) == 1
    assert "20260101T000000Z-v2-abcdef is queued and has not started; `mnist-tui queue` shows its place" in capsys.readouterr().err
