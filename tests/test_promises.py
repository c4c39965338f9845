"""Issue 33, findings 1, 5, 6, 9, 10, 11, 12 and 16, each as what a user meets: `delete` erases
only a run, an unwritable runs folder is one line, every time left is a short clock, `stop`
goes by the lock, one range per setting, a remote heartbeat is judged by this reader's clock,
`resume --detach` succeeds only for its own trainer, and the minor ones (an early Ctrl+C, a
full disk under --detach, an emptied metrics file, random bytes as a checkpoint, pid 2^31)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mnist_tui import cli, trainer
from mnist_tui.core.config import MAX_EPOCHS, MAX_IMAGES, MAX_PROCESSES, MAX_SEED, MNIST_TRAIN_SIZE
from mnist_tui.core.events import BatchProgress, EpochFinished
from mnist_tui.core.store import RunLock, heartbeat, list_runs, read_run
from mnist_tui.core.store.lock import LAUNCH_ENV
from mnist_tui.core.validate import config_problems
from mnist_tui.core.versions import get_version
from mnist_tui.present.times import clock, time_left
from tests.builders import written_run
from tests.ui_helpers import drained, press, settle, wait_until, write_run


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


# 1. delete erases only what is provably a run ------------------------------------------------


def test_delete_refuses_a_folder_that_is_not_a_run_and_leaves_it_intact(tmp_path, capsys):
    project = tmp_path / "x"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('hello')\n")
    (project / "config.json").write_text('{"name": "x"}')
    assert cli.main(["delete", str(project), "--yes", "--runs", str(tmp_path / "runs")]) == 1
    out, err = capsys.readouterr()
    assert "deleted" not in out
    assert _one_line(err) == f"mnist-tui delete: {project} holds src/, which is not a run's file; nothing was deleted"
    assert (project / "src" / "main.py").read_text() == "print('hello')\n" and (project / "config.json").exists()

    (project / "src" / "main.py").unlink()
    (project / "src").rmdir()  # only a config.json left: still no run's
    assert cli.main(["delete", str(project), "--yes"]) == 1
    assert "is not a run folder (unknown format version None" in _one_line(capsys.readouterr().err)
    assert (project / "config.json").exists()


@pytest.mark.parametrize("stranger", ["notes.txt", "plots/", ".hidden"])
def test_delete_refuses_a_run_folder_holding_anything_but_run_files(tmp_path, capsys, stranger):
    run = written_run(tmp_path / "runs")
    if stranger.endswith("/"):
        (run / stranger).mkdir()
        (run / stranger / "acc.png").write_bytes(b"png")
    else:
        (run / stranger).write_text("mine")
    assert cli.main(["delete", run.name[-6:], "--runs", str(tmp_path / "runs"), "--yes"]) == 1
    assert f"holds {stranger}, which is not a run's file; nothing was deleted" in _one_line(capsys.readouterr().err)
    assert (run / stranger).exists() and (run / "config.json").exists() and (run / "checkpoint.pt").exists()


def test_delete_removes_a_run_a_damaged_run_and_a_killed_writers_leftovers(tmp_path, capsys):
    runs = tmp_path / "runs"
    good = written_run(runs)
    (good / ".checkpoint.pt.k2j3h4.tmp").write_bytes(b"half")  # a killed writer's temporary file
    (good / "trainer.log").write_text("run ...\n")
    damaged = runs / "20261104T100000Z-v2-dddddd"  # named as trainers name runs, its config.json cut short
    damaged.mkdir()
    (damaged / "config.json").write_text("{half")
    for run in (good, damaged):
        assert cli.main(["delete", run.name, "--runs", str(runs), "--yes"]) == 0
        assert capsys.readouterr().out == f"deleted {run.name}\n" and not run.exists()


async def test_the_runs_screen_will_not_delete_a_run_folder_holding_a_users_file(tmp_path):
    from textual.widgets import DataTable

    from mnist_tui.ui.app import MnistTuiApp
    from tests.ui_helpers import InProcessLauncher

    runs = tmp_path / "runs"
    run = write_run(runs, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [98.0, 99.0, 99.1])
    (run / "notes.md").write_text("the good one")
    app = MnistTuiApp(runs_dir=runs, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "d", "y")
        await settle(pilot)
        said = [str(n.message) for n in app._notifications]
        assert any("not 20261101T100000Z-v2-aaaaaa: " in m and "holds notes.md, which is not a run's file; nothing was deleted" in m for m in said), said
        assert (run / "notes.md").exists() and (run / "metrics.jsonl").exists()
        assert app.screen.query_one("#runs-table", DataTable).row_count == 1


# 5. an unwritable runs folder is one line -----------------------------------------------------

TINY = ("--model", "v4", "--epochs", "1", "--limit", "256", "--test-limit", "500", "--device", "cpu")


def test_train_detach_into_a_runs_folder_that_is_a_file_says_so_in_one_line(tmp_path, capsys):
    occupied = tmp_path / "runs"
    occupied.write_text("not a folder")
    for runs in (occupied, occupied / "deeper"):
        assert cli.main(["train", *TINY, "--runs", str(runs), "--detach"]) == 1
        out, err = capsys.readouterr()
        assert out == "" and _one_line(err) == f"mnist-tui: cannot write into {runs}: {occupied} is a file, not a folder"
    assert occupied.read_text() == "not a folder"


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a read-only tmpfs (as root, permission bits would not stop a write)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_train_detach_into_a_read_only_runs_folder_says_so_in_one_line(read_only_folder, capsys):
    assert cli.main(["train", *TINY, "--runs", str(read_only_folder), "--detach"]) == 1
    assert _one_line(capsys.readouterr().err) == f"mnist-tui: cannot write into {read_only_folder}: Read-only file system"


async def test_start_in_the_app_with_an_unwritable_runs_folder_says_why(tmp_path):
    from mnist_tui.ui.app import MnistTuiApp

    occupied = tmp_path / "runs"
    occupied.write_text("not a folder")
    app = MnistTuiApp(runs_dir=occupied)  # the app's own launcher: a trainer process each run
    async with app.run_test(size=(120, 40)) as pilot:
        await drained(pilot)
        await press(pilot, "ctrl+s")
        await drained(pilot)
        said = [str(n.message) for n in app._notifications]
        assert f"Cannot start: cannot write into {occupied}: {occupied} is a file, not a folder" in said, said
        assert app.is_running and app.screen.follower is None


# 6. every time left is a short clock -----------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, shown",
    [
        (0, "0:00"),
        (59.4, "0:59"),
        (3599.6, "1:00:00"),
        (999 * 3600 + 3599, "999:59:59"),
        (1e7, "> 999 h"),
        (1e308, "> 999 h"),
        (float("inf"), "> 999 h"),
        (float("nan"), "?"),
        (-1, "?"),
        (float("-inf"), "?"),
    ],
)
def test_a_clock_shows_any_float_in_at_most_nine_characters(seconds, shown):
    assert clock(seconds) == shown and len(shown) <= 9


@pytest.mark.parametrize(
    "progress, done",
    [
        (dict(epochs=MAX_EPOCHS, images_per_s=1e-300, seconds_left=1e308), []),
        (dict(epochs=MAX_EPOCHS, images_per_s=5e-324, seconds_left=0.0), []),
        (dict(epochs=3, images_per_s=1500.0, seconds_left=float("inf")), []),
        (dict(epochs=MAX_EPOCHS, images_per_s=1500.0, seconds_left=1.0), [1e308, 1e308]),
        (dict(epochs=2, images_per_s=1e308, seconds_left=0.0), []),
    ],
)
def test_time_left_is_a_short_line_for_in_range_extremes(progress, done):
    ev = BatchProgress(epoch=1, batch=1, batches=469, loss=0.3, accuracy=90.0, **progress)
    epochs = [EpochFinished(i + 1, 3, 0.1, 99.0, 0.1, 99.0, 1e-3, s, 1500.0) for i, s in enumerate(done)]
    if epochs:
        ev = BatchProgress(epoch=len(epochs) + 1, batch=1, batches=469, loss=0.3, accuracy=90.0, **progress)
    line = time_left(ev, epochs, 60_000)
    assert len(line) <= len("999:59:59 left, run 999:59:59") and " left, run " in line, line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _live_local_run(runs: Path) -> tuple[Path, RunLock]:
    """A run whose trainer is alive here (its lock held by this process): status running."""
    run = write_run(runs, "20261101T100000Z-v2-aaaaaa", "v2", "running", [], epochs_total=2)
    _status(run, host=socket.gethostname(), pid=os.getpid())
    return run, RunLock.acquire(run)


def _end_later(run: Path, lock: RunLock, after_s: float, status: str = "stopped") -> threading.Thread:
    """As its trainer would: after a while write the final status, then release the lock."""

    def end() -> None:
        time.sleep(after_s)
        (run / "progress.json").unlink(missing_ok=True)
        _status(run, status=status)
        lock.release()

    thread = threading.Thread(target=end, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("interactive", [True, False])
def test_follow_shows_a_run_whose_progress_holds_in_range_extremes(tmp_path, monkeypatch, capsys, interactive):
    run, lock = _live_local_run(tmp_path / "runs")
    progress = {"phase": "training", "epoch": 1, "epochs": MAX_EPOCHS, "batch": 1, "batches": 469, "loss": 0.3, "accuracy": 9.0}
    progress.update(images_per_s=1e-300, seconds_left=1e308, updated=time.time())
    (run / "progress.json").write_text(json.dumps(progress))
    if interactive:
        monkeypatch.setattr(sys, "stdout", _Terminal())
    ending = _end_later(run, lock, 1.5)
    assert cli.main(["follow", run.name, "--runs", str(tmp_path / "runs")]) == 130
    ending.join()
    shown = sys.stdout.getvalue() if interactive else capsys.readouterr().out
    assert "Traceback" not in shown + capsys.readouterr().err and "stopped" in shown


# 9. stop goes by the lock ----------------------------------------------------------------------


def test_stop_stops_a_live_run_whose_status_file_is_garbage(tmp_path, capsys):
    run, lock = _live_local_run(tmp_path / "runs")
    (run / "status.json").write_text("{garbage")
    assert read_run(run).status == "damaged"  # what the listing says of the file, not of the trainer

    def trainer_stops_when_asked() -> None:
        deadline = time.monotonic() + 30
        while not (run / "stop").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        (run / "status.json").write_text(json.dumps({"status": "stopped", "epochs_done": 0, "host": socket.gethostname()}))
        (run / "stop").unlink()
        lock.release()

    thread = threading.Thread(target=trainer_stops_when_asked, daemon=True)
    thread.start()
    assert cli.main(["stop", run.name, "--runs", str(tmp_path / "runs")]) == 0
    thread.join()
    assert capsys.readouterr().out == f"{run.name}: stopped after 0 epochs\n"


def test_stop_refuses_a_run_nobody_trains_whatever_its_status_says(tmp_path, capsys):
    run = written_run(tmp_path / "runs", status="running")  # its trainer died: the lock is free
    assert cli.main(["stop", run.name, "--runs", str(tmp_path / "runs")]) == 1
    assert _one_line(capsys.readouterr().err) == f"mnist-tui stop: {run.name} is not training (it is interrupted)"
    assert not (run / "stop").exists()


def test_stop_of_a_run_folder_without_config_json_says_damaged_at_once(tmp_path, capsys):
    """A trainer renames its folder into place complete, so a folder lacking config.json is
    damaged, not starting: stop answers at once instead of waiting two minutes for it."""
    run = tmp_path / "runs" / "20261101T000000Z-v4-abcdef"
    run.mkdir(parents=True)
    started = time.monotonic()
    assert cli.main(["stop", "abcdef", "--runs", str(tmp_path / "runs")]) == 1
    assert time.monotonic() - started < 5
    assert _one_line(capsys.readouterr().err) == f"mnist-tui stop: {run.name} is not training (it is damaged)"


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


# 11. a remote heartbeat is judged by this reader's clock ---------------------------------------


def _remote_running(run: Path, silent_s: float) -> None:
    """status.json as another host's trainer writes it, dated 2999 by that host's clock, and
    last changed `silent_s` ago as the shared disk's time says."""
    _status(run, status="running", host=socket.gethostname() + "-elsewhere", updated="2999-01-01T00:00:00+00:00")
    then = time.time() - silent_s
    os.utime(run / "status.json", (then, then))


def test_a_remote_heartbeat_dated_in_the_future_goes_stale_and_force_takes_the_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    run = written_run(runs, status="stopped")
    _remote_running(run, silent_s=11 * 60)
    heartbeat.forget()  # a fresh `mnist-tui` process: it has only the file's time to go by
    record = read_run(run)
    assert record.status == "stale" and "last heartbeat 660s ago" in record.reason
    assert cli.main(["delete", run.name, "--runs", str(runs), "--yes"]) == 1
    assert "add --force to delete it anyway" in _one_line(capsys.readouterr().err)
    assert cli.main(["delete", run.name, "--runs", str(runs), "--yes", "--force"]) == 0 and not run.exists()


def test_a_remote_heartbeat_seen_unchanged_for_ten_minutes_is_stale_whatever_it_says(tmp_path, monkeypatch):
    run = written_run(tmp_path / "runs", status="stopped")
    _remote_running(run, silent_s=0)
    heartbeat.forget()
    assert read_run(run).status == "running"  # just written: alive for now
    later = time.monotonic() + 601
    monkeypatch.setattr(time, "monotonic", lambda: later)  # ten minutes on, nothing changed
    assert read_run(run).status == "stale"
    _status(run, epochs_done=0)  # a heartbeat: the file changes
    assert read_run(run).status == "running"


def test_a_remote_heartbeat_whose_file_is_dated_far_in_the_future_is_not_fresh(tmp_path):
    run = written_run(tmp_path / "runs", status="stopped")
    _remote_running(run, silent_s=-1e9)  # a modification time 30 years ahead
    heartbeat.forget()
    record = read_run(run)
    assert record.status == "stale" and "last heartbeat ? ago" in record.reason


# 12. resume --detach succeeds only once its own trainer has taken the run over ------------------


class _Ended:
    """A trainer process that has ended with status 1."""

    returncode = 1

    def poll(self) -> int:
        return 1


def _refused_launch(run: Path, words: str, monkeypatch, holder: str | None = None, then=lambda: None) -> list[RunLock]:
    """ProcessLauncher.resume replaced by a trainer that refuses at once, `words` its last line
    in the run's shared trainer.log; the lock taken meanwhile by the launch token `holder`
    (its own "mine", or another resume's), and held for the rest of the test; then `then()`."""
    held: list[RunLock] = []

    def resume(self, run_dir, data_dir, force=False, processes=None):
        launch = trainer.Launch(Path(run_dir), Path(run_dir) / "trainer.log", process=_Ended())
        launch.token, launch.since_ns = "mine", time.time_ns()
        launch.log_offset = (run / "trainer.log").stat().st_size if (run / "trainer.log").exists() else 0
        if holder is not None:
            monkeypatch.setenv(LAUNCH_ENV, holder)
            held.append(RunLock.acquire(run))
            monkeypatch.delenv(LAUNCH_ENV)
        then()
        with open(run / "trainer.log", "a") as log:
            log.write(f"mnist-tui: {words}\nrun {run.name}: epoch 2 of the other trainer\n")
        return launch

    monkeypatch.setattr(trainer.ProcessLauncher, "resume", resume)
    return held


def test_resume_detach_refused_because_another_resume_took_the_run_exits_1_naming_it(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    run = written_run(runs, status="stopped")
    (run / "trainer.log").write_text("run ...: an earlier trainer's words\nmnist-tui: failed: long ago\n")
    first_took_it = lambda: _status(run, status="running", host=socket.gethostname())  # noqa: E731
    words = f"cannot resume: {run.name} is being trained by pid 42 on host h"
    held = _refused_launch(run, words, monkeypatch, holder="the first resume", then=first_took_it)
    try:
        assert cli.main(["resume", run.name, "--runs", str(runs), "--detach"]) == 1
        assert read_run(run).status == "running"  # what the old check took for its own trainer
    finally:
        for lock in held:
            lock.release()
    out, err = capsys.readouterr()
    assert out == "" and _one_line(err) == f"mnist-tui: {words}"


def test_resume_detach_of_an_interrupted_run_its_trainer_refuses_exits_1(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    run = written_run(runs, status="running")  # its trainer died: interrupted
    then = time.time() - 60
    os.utime(run / "status.json", (then, then))
    held = _refused_launch(run, f"cannot resume {run.name}: its checkpoint does not fit v2", monkeypatch, holder="mine")
    try:
        assert cli.main(["resume", run.name, "--runs", str(runs), "--detach"]) == 1
    finally:
        for lock in held:
            lock.release()
    assert _one_line(capsys.readouterr().err) == f"mnist-tui: cannot resume {run.name}: its checkpoint does not fit v2"


def _stopped_after_one_epoch(runs: Path, epochs: int = 3) -> Path:
    from mnist_tui.core.train import train

    stop = threading.Event()
    config = get_version("v4").config(epochs=epochs, limit=256, test_limit=500, device="cpu", runs_dir=str(runs))
    for ev in train(config, stop):
        if isinstance(ev, EpochFinished):
            stop.set()
    [run] = runs.iterdir()
    assert read_run(run).status == "stopped"
    return run


@pytest.mark.slow
def test_two_resume_detach_at_once_one_resumes_and_the_other_exits_1_saying_the_run_is_taken(tmp_path):
    runs = tmp_path / "runs"
    run = _stopped_after_one_epoch(runs, epochs=1000)  # the resumed trainer is still training when stop comes
    # Which of the two wins is the machine's choice (on a loaded CI the later one won): exactly one must.
    both = [
        subprocess.Popen(_cli("resume", run.name, "--runs", str(runs), "--detach"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    done = sorted(((p.wait(timeout=240), *p.communicate(timeout=240)) for p in both), key=lambda r: r[0])
    (won, won_out, won_err), (lost, lost_out, lost_err) = done
    assert won == 0 and won_out.startswith(f"run {run.name}: resuming in the background"), won_err
    assert lost == 1 and lost_out == "", lost_out
    taken = (f"mnist-tui: cannot resume: {run.name} is being trained by pid ", f"mnist-tui: cannot resume {run.name}: it is running")
    assert _one_line(lost_err).startswith(taken), lost_err
    assert cli.main(["stop", run.name, "--runs", str(runs)]) == 0


@pytest.mark.slow
def test_resume_detach_of_an_interrupted_run_with_another_versions_checkpoint_exits_1(tmp_path):
    runs = tmp_path / "runs"
    run = _stopped_after_one_epoch(runs)
    _status(run, status="running")  # its trainer "died": interrupted, and resumable
    config = json.loads((run / "config.json").read_text())
    config["config"]["model"] = "v2"  # the checkpoint is v4's
    (run / "config.json").write_text(json.dumps(config))
    assert read_run(run).status == "interrupted"
    resumed = subprocess.run(_cli("resume", run.name, "--runs", str(runs), "--detach"), capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 1 and "resuming in the background" not in resumed.stdout, resumed.stdout
    assert _one_line(resumed.stderr) == f"mnist-tui: cannot resume {run.name}: its checkpoint does not fit v2: made by another version or an older v2"


# 16. the minor ones -----------------------------------------------------------------------------


def test_ctrl_c_before_a_command_has_its_handlers_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_runs", interrupted)
    assert cli.main(["runs"]) == 130
    assert _one_line(capsys.readouterr().err) == "mnist-tui: interrupted"

    def process_exit(code: int) -> None:  # run() ends a process that loaded torch with os._exit
        raise SystemExit(code)

    monkeypatch.setattr(cli, "main", lambda: 130)
    monkeypatch.setattr(os, "_exit", process_exit)
    with pytest.raises(SystemExit) as exit_info:
        cli.run()
    assert exit_info.value.code == 130


@pytest.mark.slow
@pytest.mark.parametrize("after_s", [0.1, 0.2, 0.4, 1.0])
def test_ctrl_c_early_in_a_train_prints_no_traceback_and_exits_130(tmp_path, after_s):
    # Started as from a terminal, where Ctrl+C is not ignored: a suite run as a background job
    # of a script (`make test-slow &`) hands its processes an ignored SIGINT, which Python keeps
    # ignored until the command installs its own handlers.
    as_from_a_terminal = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen(
        _cli("train", *TINY, "--runs", str(tmp_path / "runs")), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal
    )
    time.sleep(after_s)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=240)
    assert process.returncode == 130 and "Traceback" not in err + out, err


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs filled to the last block, with an empty runs folder on it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here (needs root); run this test by hand as root")
    (disk / "runs").mkdir()
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 1024):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)
    yield disk / "runs"
    subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.slow
def test_train_detach_onto_a_full_disk_exits_1_saying_so_and_leaves_nothing(full_disk):
    started = subprocess.run(_cli("train", *TINY, "--runs", str(full_disk), "--detach"), capture_output=True, text=True, timeout=240)
    assert started.returncode == 1 and "in the background" not in started.stdout, started.stdout
    assert "no space" in _one_line(started.stderr).lower(), started.stderr
    assert os.listdir(full_disk) == [] and list_runs(full_disk) == []


def test_a_finished_run_whose_metrics_were_emptied_lists_as_damaged(tmp_path, capsys):
    runs = tmp_path / "runs"
    run = written_run(runs, epochs_done=3, epochs=3, status="finished")
    (run / "metrics.jsonl").write_text("")
    record = read_run(run)
    assert record.status == "damaged" and record.reason == "metrics.jsonl holds no epoch, but the run finished"
    stopped = written_run(runs, epochs_done=2, epochs=3, status="stopped")
    (stopped / "metrics.jsonl").write_text((stopped / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    assert read_run(stopped).reason == "metrics.jsonl holds 1 epoch, but status.json says 2 were done"
    assert cli.main(["runs", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert f"{run.name} damaged: metrics.jsonl holds no epoch, but the run finished" in out
    assert f"{stopped.name} damaged: metrics.jsonl holds 1 epoch, but status.json says 2 were done" in out


def test_a_checkpoint_of_random_bytes_is_not_a_checkpoint_rather_than_could_run_code(tmp_path):
    from mnist_tui.core.store import CheckpointError
    from mnist_tui.core.store.checkpoint import load_weights

    for seed in range(20):
        (tmp_path / "checkpoint.pt").write_bytes(os.urandom(2000 + seed))
        with pytest.raises(CheckpointError) as refused:
            load_weights(tmp_path)
        assert str(refused.value) == "checkpoint.pt is not a checkpoint (unreadable)"


async def test_predictions_of_a_random_bytes_checkpoint_say_not_a_checkpoint(tmp_path):
    from textual.widgets import Static

    from mnist_tui.ui.app import MnistTuiApp
    from tests.ui_helpers import InProcessLauncher

    run = write_run(tmp_path, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [99.0])
    (run / "checkpoint.pt").write_bytes(os.urandom(4096))
    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs", launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "p")
        title = app.screen.query_one("#predictions-title", Static)
        await wait_until(pilot, lambda: not str(title.render()).startswith("Classifying"))
        shown = str(title.render())
        assert shown.startswith("Cannot load this run's model: checkpoint.pt is not a checkpoint (unreadable)") and "run code" not in shown


@pytest.mark.parametrize("pid, status", [(2**31 - 1, "stopped"), (2**31, "damaged")])
def test_a_pid_must_be_below_2_to_the_31(tmp_path, pid, status):
    run = written_run(tmp_path / "runs")
    _status(run, pid=pid)
    record = read_run(run)
    assert record.status == status and (status != "damaged" or "pid is out of range (2147483648)" in record.reason)


def test_a_refused_resume_is_named_by_its_own_words_in_a_log_the_holding_trainer_writes_too(tmp_path):
    """A resume refused because another trainer holds the run says so in the run's shared
    trainer.log, where the holder writes its epochs; the holder's line may not have ended
    yet when the refusal follows it (found by CI: the refusal was reported as an epoch line)."""
    from mnist_tui.trainer.launch import Launch

    run = tmp_path / "20261101T100000Z-v4-aaaaaa"
    run.mkdir()
    (run / "trainer.log").write_text(
        "mnist-tui: epoch 10/1000  train loss 2.2\n"
        f"mnist-tui: epoch 11/1000  train loss 2.1656  4,392 img/smnist-tui: cannot resume: {run.name} is being trained by pid 7 on host vm\n"
    )
    assert Launch(run).failure() == f"cannot resume: {run.name} is being trained by pid 7 on host vm"


def test_the_first_use_line_names_a_data_folder_without_its_control_characters(tmp_path, capsys):
    """`train --data DIR` extracts MNIST into a folder the user named; the line saying so
    names it without escapes (found by the slow Hypothesis profile: `--data $'\\x1f'`)."""
    from mnist_tui.trainer.start import Start

    folder = tmp_path / "\x1b]0;pwned\x07\x1f"
    config = get_version("v4").config(device="cpu", data_dir=str(folder), runs_dir=str(tmp_path / "runs"))
    assert Start(config).prepare_data()
    said = capsys.readouterr().err
    assert "extracting 4 MNIST files" in said and str(tmp_path) in said
    assert not set(said) & ({chr(c) for c in range(0x20)} - {"\n"}), repr(said)
