"""Sweeps broken the way users and other processes break them (issue 35): damaged journals,
untrusted pointer files, storage URLs, odd arguments. Each was a defect found by an
adversarial pass (a strict xfail until it was fixed), kept as a regression test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import optuna
import pytest

from mnist_tui.core.sweep import study as st
from mnist_tui.core.sweep.report import read_sweep
from mnist_tui.core.sweep.run import open_sweep, setup_for
from mnist_tui.core.sweep.space import default_space
from mnist_tui.core.sweep.trial import USER_STOP
from mnist_tui.core.versions import get_version
from tests.test_sweep import SMALL, _sweep  # one way to run the command in-process


def _base(runs_dir):
    return get_version("v1").config(limit=2000, test_limit=500, holdout=500, epochs=1, precision="fp32", device="cpu", runs_dir=str(runs_dir))


def _study(runs_dir, name: str, trials: int) -> optuna.Study:
    """An embedded study made as `sweep --model v1` makes one, with no trial yet."""
    base = _base(runs_dir)
    storage = st.open_storage(runs_dir, name)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr(st.SETUP, setup_for(base, trials, "holdout_acc", default_space(base), None))
    st.remember(runs_dir, name, None)
    return study


def _ended_trial(study: optuna.Study, value: float | None, why: str = "") -> None:
    trial = study.ask()
    trial.suggest_float("lr", 1e-3, 0.1, log=True)
    trial.set_user_attr(st.RUN, f"gone-{trial.number}")
    if why:
        trial.set_user_attr(st.FAILED_WHY, why)
    study.tell(trial, value, state=optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL)


def _torn(runs_dir, name: str = "torn"):
    """A one-trial study whose count is reached, its journal's last record cut short (a disk
    that filled, a machine that lost power mid-write)."""
    _ended_trial(_study(runs_dir, name, 1), 50.0)
    path = st.journal_path(runs_dir, name)
    with open(path, "ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "w", "study_id": 0, "datetime_st')
    return path


# ---------------------------------------------------------------------------------------------
# Reading a study must not create its storage


def test_reading_a_study_never_creates_the_storage_its_pointer_names(runs_dir, tmp_path):
    folder = st.sweeps_dir(runs_dir)
    folder.mkdir(parents=True)
    far = tmp_path / "far" / "deep" / "x.journal"
    db = tmp_path / "made.db"
    (folder / "j.json").write_text(json.dumps({"name": "j", "storage": str(far)}))
    (folder / "q.json").write_text(json.dumps({"name": "q", "storage": f"sqlite:///{db}"}))
    for argv in (("--show", ""), ("--show", "j"), ("--show", "q"), ("--show", "", "--json")):
        code, out, err = _sweep(runs_dir, *argv)
        assert "Traceback" not in err
    assert not (tmp_path / "far").exists(), "a listing made folders and a journal outside the runs folder"
    assert not db.exists(), "a listing made an SQLite database"


def test_a_study_in_a_relative_journal_path_is_found_from_another_folder(runs_dir, tmp_path, monkeypatch):
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir()
    other.mkdir()
    monkeypatch.chdir(first)
    base = _base(runs_dir)
    open_sweep(runs_dir, "rel", "mine.journal", setup_for(base, 1, "holdout_acc", default_space(base), None), base, 1)
    assert (first / "mine.journal").is_file()
    monkeypatch.chdir(other)
    code, out, err = _sweep(runs_dir, "--show", "rel")
    assert code == 0, err
    assert not (other / "mine.journal").exists()


@pytest.mark.slow
def test_a_storage_that_is_a_fifo_is_refused_not_waited_on(runs_dir, tmp_path):
    fifo = tmp_path / "jam.journal"
    os.mkfifo(fifo)
    argv = ["sweep", "--runs", str(runs_dir), "--model", "v1", "--trials", "1", *SMALL, "--study", "jam", "--storage", str(fifo)]
    try:
        done = subprocess.run([sys.executable, "-m", "mnist_tui", *argv], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("sweep --storage FIFO still waits after 20 s")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-300:]


# ---------------------------------------------------------------------------------------------
# What the listing counts, what it prints


def test_a_trial_stopped_by_the_user_does_not_count_in_the_report(runs_dir):
    study = _study(runs_dir, "stopped", 2)
    _ended_trial(study, 60.0)
    _ended_trial(study, None, why=USER_STOP)
    report = read_sweep(runs_dir, "stopped")
    assert (report.done, report.state) == (1, "unfinished")


def test_a_password_in_a_storage_url_query_is_never_printed(runs_dir):
    folder = st.sweeps_dir(runs_dir)
    folder.mkdir(parents=True)
    (folder / "pg.json").write_text(json.dumps({"name": "pg", "storage": "postgresql://bob@db.example/sweeps?password=s3cretPW"}))
    for argv in (("--show", ""), ("--show", "", "--json"), ("--show", "pg"), ("--show", "pg", "--json")):
        code, out, err = _sweep(runs_dir, *argv)
        assert "s3cretPW" not in out + err, argv


def test_a_redis_storage_that_cannot_be_used_is_one_line(runs_dir):
    argv = ["sweep", "--runs", str(runs_dir), "--model", "v1", "--trials", "1", *SMALL, "--study", "r", "--storage", "redis://:pw@127.0.0.1:1/0"]
    done = subprocess.run([sys.executable, "-m", "mnist_tui", *argv], capture_output=True, text=True, timeout=120)
    err = done.stderr
    assert done.returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mnist-tui"), err


# ---------------------------------------------------------------------------------------------
# A journal whose last record was cut short


@pytest.mark.slow
def test_a_new_target_on_a_torn_journal_is_one_line_not_a_traceback(runs_dir):
    _torn(runs_dir)
    _sweep(runs_dir, "--study", "torn")  # its count is reached: nothing trains
    argv = ["sweep", "--runs", str(runs_dir), "--study", "torn", "--trials", "2"]
    done = subprocess.run([sys.executable, "-m", "mnist_tui", *argv], capture_output=True, text=True, timeout=120)
    code, err = done.returncode, done.stderr
    assert "Traceback" not in err, err[-400:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("mnist-tui sweep"), err


@pytest.mark.slow
def test_a_resume_never_glues_a_record_onto_a_torn_one(runs_dir):
    path = _torn(runs_dir)
    _sweep(runs_dir, "--study", "torn", "--trials", "2")  # refused, or the journal mended and one trial run
    lines = path.read_bytes().split(b"\n")
    for line in lines[:-1]:  # a last piece with no newline may be a record still being written
        json.loads(line)  # each whole line a record
    code, out, err = _sweep(runs_dir, "--show", "torn")
    assert code == 0, err


def test_show_json_into_a_closed_pipe_is_no_traceback(runs_dir):
    study = _study(runs_dir, "piped", 1)
    _ended_trial(study, 50.0)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (head) has gone
    try:
        argv = ["sweep", "--runs", str(runs_dir), "--show", "piped", "--json"]
        done = subprocess.run([sys.executable, "-m", "mnist_tui", *argv], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr, done.stderr[-300:]


@pytest.mark.slow
def test_a_study_left_without_settings_by_a_killed_maker_can_be_started_again(runs_dir):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="bare", storage=st.open_storage(runs_dir, "bare"), direction="maximize")  # kill -9 came here
    code, out, err = _sweep(runs_dir, "--model", "v1", "--trials", "1", *SMALL, "--study", "bare")
    assert code == 0, err
    assert read_sweep(runs_dir, "bare").done == 1


# ---------------------------------------------------------------------------------------------
# Arguments


@pytest.mark.slow
def test_an_empty_study_name_is_refused(runs_dir):
    code, out, err = _sweep(runs_dir, "--model", "v1", "--trials", "1", *SMALL, "--study", "")
    assert code == 2, out + err
    assert not st.sweeps_dir(runs_dir).exists() or not list(st.sweeps_dir(runs_dir).glob("*.journal"))


def test_many_jobs_on_a_finished_study_return_at_once(runs_dir):
    _ended_trial(_study(runs_dir, "done", 1), 50.0)
    began = time.monotonic()
    code, out, err = _sweep(runs_dir, "--study", "done", "--jobs", "50000")
    assert code in (0, 2), err  # done at once, or refused as too many
    assert time.monotonic() - began < 5.0


def test_the_journal_and_pointer_stay_in_the_runs_folder(runs_dir, tmp_path, monkeypatch):
    """What held up: a listing of damaged studies writes nothing outside .sweeps/."""
    monkeypatch.chdir(tmp_path)
    folder = st.sweeps_dir(runs_dir)
    folder.mkdir(parents=True)
    (folder / "bin.journal").write_bytes(os.urandom(2000))
    (folder / "list.json").write_text("[1, 2]")
    (folder / "types.json").write_text(json.dumps({"name": 5, "storage": ["x"]}))
    before = set(tmp_path.iterdir())
    code, out, err = _sweep(runs_dir, "--show", "")
    assert code == 0 and "Traceback" not in err
    assert "bin" in out and "damaged" in out
    assert set(tmp_path.iterdir()) == before


# ---------------------------------------------------------------------------------------------
# The Sweep screen on what a study may hold


async def test_the_sweep_screen_survives_a_huge_finite_score(runs_dir):
    from mnist_tui.ui.app import MnistTuiApp
    from mnist_tui.ui.screens.sweep import SweepScreen
    from tests.ui_helpers import press, settle

    study = _study(runs_dir, "huge", 2)
    _ended_trial(study, -5.0)
    _ended_trial(study, 1e308)
    app = MnistTuiApp(runs_dir=runs_dir, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await press(pilot, "f7")
        await settle(pilot)
        assert isinstance(app.screen, SweepScreen)
        assert app.screen.report is not None and app.screen.report.name == "huge"
