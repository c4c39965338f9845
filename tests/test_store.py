"""Run folders as untrusted input: every damaged file costs one run its listing, never a crash;
resume either continues exactly or refuses in one line; writes never follow a planted link."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest
import torch

from mnist_tui import cli
from mnist_tui.core.events import EpochFinished, RunFailed
from mnist_tui.core.store import list_runs, read_run
from mnist_tui.core.train import resume, train
from mnist_tui.core.versions import get_version
from tests.builders import stub_checkpoint
from tests.ui_helpers import drained, press, write_run


def _json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _set(file, **fields):
    return lambda run: _json(run / file, lambda d: d.update(fields))


def _set_config(**fields):
    return lambda run: _json(run / "config.json", lambda d: d["config"].update(fields))


def _metric(**fields):
    def change(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        row = json.loads(lines[0])
        row.update(fields)
        (run / "metrics.jsonl").write_text(json.dumps(row) + "\n" + "".join(line + "\n" for line in lines[1:]))

    return change


def _raw_metric(text):
    return lambda run: (run / "metrics.jsonl").write_text(text)


def _metrics_directory(run):
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").mkdir()


def _deep_config(run):
    (run / "config.json").write_text('{"format": 1, "config": ' + "[" * 100_000 + "]" * 100_000 + "}")


def _checkpoint_to_dev_zero(run):
    (run / "checkpoint.pt").unlink()
    (run / "checkpoint.pt").symlink_to("/dev/zero")


# (case, how the folder is damaged, what the listing says: a reason for `damaged`, or None
# when the run must still list as a good one)
DAMAGE = [
    ("config is a list", _set("config.json", config=[1]), "config is not an object"),
    ("config is null", _set("config.json", config=None), "config is not an object"),
    ("recipe is a list", _set_config(recipe=[]), "recipe is not an object"),
    ("params is text", _set("config.json", params="many"), "params is not a number"),
    ("run_id is a number", _set("config.json", run_id=123), None),
    ("run_id is markup", _set("config.json", run_id="[/]"), None),
    ("config nests too deep", _deep_config, "config.json"),
    ("pid is text", _set("status.json", pid="abc"), "pid is not a number"),
    ("pid is null", _set("status.json", pid=None), None),
    ("pid is huge", _set("status.json", pid=10**20), "pid is out of range"),
    ("status is a list", _set("status.json", status=["x"]), "status is not one of"),
    ("reason holds markup", _set("status.json", reason="[bold red]boom[/"), None),
    ("test_acc is text", _metric(test_acc="99"), "test_acc is not a number"),
    (
        "test_acc is 10**400",
        _raw_metric(
            '{"epoch": 1, "epochs": 3, "train_loss": 0.1, "train_acc": 97, "test_loss": 0.1, "test_acc": 1'
            + "0" * 400
            + ', "lr": 0.001, "seconds": 40, "images_per_s": 1500}\n'
        ),
        "test_acc is out of range",
    ),
    ("seconds is null", _metric(seconds=None), "seconds is not a number"),
    ("epochs out of order", _metric(epoch=2), "epochs must be numbered"),
    ("metrics.jsonl is a directory", _metrics_directory, "metrics.jsonl is not a regular file"),
    ("checkpoint links to /dev/zero", _checkpoint_to_dev_zero, "checkpoint.pt is a symbolic link"),
]


@pytest.fixture
def damaged_runs(tmp_path):
    """One run folder per case in DAMAGE, plus a good run and a cp -r copy of it."""
    runs = tmp_path / "runs"
    expected = {}
    for i, (case, damage, reason) in enumerate(DAMAGE):
        name = f"20261101T10{i:04d}Z-v2-{i:06x}"
        damage(write_run(runs, name, "v2", "stopped", [98.0, 98.5], epochs_total=3))
        expected[name] = (case, reason)
    good = write_run(runs, "20261102T100000Z-v2-[good]", "v2", "finished", [98.0, 99.0], epochs_total=2)
    shutil.copytree(good, runs / "20261102T110000Z-v2-[copy]")  # the same run_id inside
    return runs, expected, good


def test_every_damaged_file_costs_its_run_only(damaged_runs):
    runs, expected, good = damaged_runs
    records = {r.run_id: r for r in list_runs(runs)}
    for name, (case, reason) in expected.items():
        record = records[name]
        if reason is None:
            assert record.status == "stopped", case
        else:
            assert record.status == "damaged" and reason in record.reason, (case, record.reason)
    assert records[good.name].status == "finished" and records[good.name].epochs_done == 2
    assert records["20261102T110000Z-v2-[copy]"].status == "finished"  # keyed by folder, not run_id


def test_runs_command_lists_the_good_runs_and_reasons(damaged_runs, capsys):
    runs, _expected, good = damaged_runs
    assert cli.main(["runs", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert good.name in out and "20261102T110000Z-v2-[copy]" in out
    assert "[bold red]boom[/" in out  # shown as written, never interpreted as markup
    assert "damaged" in out


async def test_the_app_lists_a_damaged_store_and_opens_a_good_run(damaged_runs):
    from textual.widgets import DataTable

    from mnist_tui.ui.app import MnistTuiApp
    from mnist_tui.ui.screens.run_detail import RunDetailScreen
    from tests.ui_helpers import settle

    runs, expected, good = damaged_runs
    for start in ("train", "runs"):  # a bad run used to crash the app on launch
        app = MnistTuiApp(runs_dir=runs, start_mode=start)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            if start == "runs":
                table = app.screen.query_one("#runs-table", DataTable)
                assert table.row_count == len(expected) + 2
                table.move_cursor(row=table.get_row_index(good.name))
                await press(pilot, "enter")
                await drained(pilot)
                assert isinstance(app.screen, RunDetailScreen) and app.screen.records[0].path == good


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A real v4 run stopped after its first of two epochs (a template to damage)."""
    runs = tmp_path_factory.mktemp("stopped") / "runs"
    stop = threading.Event()
    config = get_version("v4").config(epochs=2, limit=256, test_limit=500, device="cpu", runs_dir=str(runs))
    for ev in train(config, stop):
        if isinstance(ev, EpochFinished):
            stop.set()
    [record] = list_runs(runs)
    assert record.status == "stopped" and record.epochs_done == 1
    return record.path


def _checkpoint(run, change):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, run / "checkpoint.pt")


def _foreign_weights(run):
    _checkpoint(run, lambda s: s.update(model=get_version("v2").build().state_dict()))


RESUME_REFUSALS = [
    ("weights of another version", _foreign_weights, "checkpoint does not fit v4"),
    ("a setting from a newer version", _set_config(warp_drive=True), "unknown settings warp_drive"),
    ("no config", lambda run: _json(run / "config.json", lambda d: d.pop("config")), "config is not an object"),
    ("checkpoint without model", lambda run: _checkpoint(run, lambda s: s.pop("model")), "lacks model"),
    ("bad random state", lambda run: _checkpoint(run, lambda s: s["rng"].update(order=torch.zeros(3))), "random state 'order'"),
    ("epoch is text", lambda run: _checkpoint(run, lambda s: s.update(epoch="abc")), "epoch is not a positive whole number"),
    ("epoch 0", lambda run: _checkpoint(run, lambda s: s.update(epoch=0)), "epoch is not a positive whole number"),
    ("epoch 99", lambda run: _checkpoint(run, lambda s: s.update(epoch=99)), "holds epoch 99 but metrics.jsonl has 1"),
    ("a finished run", _set("status.json", status="finished"), "only interrupted, stopped or failed runs"),
]


@pytest.mark.parametrize("case, damage, reason", RESUME_REFUSALS, ids=[c[0] for c in RESUME_REFUSALS])
def test_resume_refuses_in_one_line(stopped_run, tmp_path, case, damage, reason):
    run = tmp_path / stopped_run.name
    shutil.copytree(stopped_run, run)
    damage(run)
    events = list(resume(run))
    assert len(events) == 1 and isinstance(events[0], RunFailed), case
    message = events[0].reason
    assert message.startswith("cannot resume") and reason in message and "\n" not in message, message
    assert read_run(run).status != "running"


@pytest.mark.slow
def test_resume_cli_refusal_is_one_line_and_exit_1(stopped_run, tmp_path):
    import subprocess
    import sys

    run = tmp_path / "runs" / stopped_run.name
    shutil.copytree(stopped_run, run)
    _foreign_weights(run)
    result = subprocess.run([sys.executable, "-m", "mnist_tui", "resume", run.name[-6:], "--runs", str(run.parent)], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"mnist-tui: cannot resume {run.name}: its checkpoint does not fit v4: made by another version or an older v4"
    ]


def test_resume_never_creates_the_data_folder_stored_in_the_run(stopped_run, tmp_path):
    run = tmp_path / stopped_run.name
    shutil.copytree(stopped_run, run)
    planted = tmp_path / "elsewhere" / "data"
    _set_config(data_dir=str(planted))(run)
    events = list(resume(run))
    assert events[-1].status == "finished"
    assert not (tmp_path / "elsewhere").exists()
    assert json.loads((run / "config.json").read_text())["config"]["data_dir"] == str(planted)


def test_a_relative_data_folder_is_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["train", "--data", "mydata", "--runs", "myruns"])
    config = cli.config_of(args)
    assert config.data_dir == str(tmp_path / "mydata") and config.runs_dir == str(tmp_path / "myruns")


def test_writes_never_follow_a_planted_symlink(small_config, runs_dir, tmp_path):
    from mnist_tui.core.store import RunWriter

    victim = tmp_path / "victim"
    victim.write_text("precious")
    writer = RunWriter.create(runs_dir, "v2", {"config": small_config.to_dict()})
    for name in (".checkpoint.pt.tmp", f".status.json.{os.getpid()}.tmp", ".metrics.jsonl.tmp", ".progress.json.tmp"):
        (writer.path / name).symlink_to(victim)  # the fixed names earlier versions wrote through
    writer.append_epoch(
        {"epoch": 1, "epochs": 2, "train_loss": 0.2, "train_acc": 97.0, "test_loss": 0.1, "test_acc": 98.0, "lr": 1e-3, "seconds": 1.0, "images_per_s": 1500.0}
    )
    writer.save_checkpoint(stub_checkpoint(1))
    writer.progress({"phase": "training"})
    writer.close("stopped")
    assert victim.read_text() == "precious"


def _shipped_archives(root):
    """A data folder holding only the four shipped .gz files; its raw folder."""
    from mnist_tui.core import data

    raw = data.raw_dir(root)
    raw.mkdir(parents=True)
    for name in data.IDX_MD5:
        shutil.copy(data.SHIPPED_DATA / f"{name}.gz", raw / f"{name}.gz")
    return raw


def test_a_planted_part_symlink_in_the_data_folder_is_not_written_through(tmp_path):
    from mnist_tui.core import data

    raw = _shipped_archives(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (raw / "train-labels-idx1-ubyte.part").symlink_to(victim)
    data.prepare(tmp_path, download=False)
    assert victim.read_text() == "precious"
    assert (raw / "train-labels-idx1-ubyte").stat().st_size == 60_008


def test_a_fifo_in_place_of_a_data_file_does_not_hang(tmp_path, monkeypatch):
    from mnist_tui.core import data

    raw = _shipped_archives(tmp_path)
    os.mkfifo(raw / "t10k-labels-idx1-ubyte")
    data.prepare(tmp_path, download=False)  # the FIFO is replaced from the .gz beside it
    assert (raw / "t10k-labels-idx1-ubyte").is_file()
    os.unlink(raw / "t10k-labels-idx1-ubyte.gz")
    monkeypatch.setattr(data, "SHIPPED_DATA", tmp_path / "no-archives")  # nor one in the package
    os.unlink(raw / "t10k-labels-idx1-ubyte")
    os.mkfifo(raw / "t10k-labels-idx1-ubyte")
    with pytest.raises(data.DataError, match="not a regular file"):
        data.prepare(tmp_path, download=False)


def test_a_failed_run_folder_creation_leaves_nothing(tmp_path, monkeypatch):
    from mnist_tui.core.store import RunWriter, files

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "write_json_atomic", disk_full)
    with pytest.raises(OSError):
        RunWriter.create(tmp_path, "v2", {"config": {}})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_disk(tmp_path, monkeypatch):
    """A 160 KiB tmpfs: room for one v4 checkpoint, not for the next one beside it."""
    import subprocess

    # A dirty checkout's code.diff (core/stamp.py, up to 256 KiB) would take the room measured out here.
    monkeypatch.setattr("mnist_tui.core.stamp.DIFF_KEPT", 0)

    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here (needs root); run this test by hand as root")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_disk_fails_the_run_and_keeps_the_last_checkpoint(tiny_disk):
    config = get_version("v4").config(epochs=3, limit=256, test_limit=500, device="cpu", runs_dir=str(tiny_disk / "runs"))
    events = list(train(config))
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.status == "failed"
    assert failed.reason == "no space left on device while saving epoch 2; the checkpoint of epoch 1 is intact"
    record = read_run(failed.run_dir)
    assert record.status == "failed" and record.epochs_done == 2  # epoch 2's line; its checkpoint is not
    assert torch.load(failed.run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not [p.name for p in failed.run_dir.iterdir() if p.name.endswith(".tmp")]


def test_a_run_whose_host_went_silent_is_stale_and_only_forced_resume_or_delete_take_it(stopped_run, tmp_path):
    import socket
    from datetime import datetime, timedelta, timezone

    from mnist_tui.core.store import RunBusy, delete_run

    run = tmp_path / stopped_run.name
    shutil.copytree(stopped_run, run)
    an_hour_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    _set("status.json", status="running", host=socket.gethostname() + "-gone", updated=an_hour_ago)(run)
    hour_ago = datetime.now().timestamp() - 3600
    os.utime(run / "status.json", (hour_ago, hour_ago))  # silent for an hour: its file's time says so, not the time in it
    assert read_run(run).status == "stale"
    [refused] = list(resume(run))
    assert "stale" in refused.reason and "--force" in refused.reason
    with pytest.raises(RunBusy, match="--force"):
        delete_run(run)
    assert list(resume(run, force=True))[-1].status == "finished"
    assert read_run(run).status == "finished" and read_run(run).host == socket.gethostname()
    delete_run(run, force=True)
    assert not run.exists()


def test_when_even_the_failed_status_cannot_be_written_the_lock_shows_the_run_interrupted(small_config, runs_dir, monkeypatch):
    from mnist_tui.core.store import RunWriter, SaveError

    def disk_full_at_the_first_save(self, ckpt):
        raise SaveError("no space left on device while saving epoch 1; no checkpoint had been saved yet")

    real_set_status = RunWriter.set_status

    def status_fails_too(self, status, reason=None):
        if status == "failed":
            raise OSError(28, "No space left on device")
        real_set_status(self, status, reason)

    monkeypatch.setattr(RunWriter, "save_checkpoint", disk_full_at_the_first_save)
    monkeypatch.setattr(RunWriter, "set_status", status_fails_too)
    failed = list(train(small_config))[-1]
    assert isinstance(failed, RunFailed) and failed.reason.startswith("no space left on device while saving epoch 1")
    record = read_run(failed.run_dir)
    assert record.status == "interrupted"  # status.json still says running, but nobody holds the lock
