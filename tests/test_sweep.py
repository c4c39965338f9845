"""Sweeps (issue 35): trial marks in a run's config, the search space, the worker and the
`mnist-tui sweep` command."""

from __future__ import annotations

import argparse
import io
import json
import signal
import subprocess
import sys
import threading
import time
from contextlib import redirect_stderr, redirect_stdout

import optuna
import pytest

from mnist_tui import cli
from mnist_tui.core.history import select
from mnist_tui.core.store import RunWriter, read_run
from tests.builders import stub_checkpoint, written_run


def _trial_run(runs_dir, study: object, trial: object):
    """A finished one-epoch run whose config marks it as a trial of `study`."""
    config = {"model": "v2", "recipe": {"epochs": 1}, "study": study, "trial": trial}
    writer = RunWriter.create(runs_dir, "v2", {"config": config})
    writer.close("stopped")
    return writer.path


def test_a_trial_is_listed_with_its_study_and_number_and_old_runs_still_list(runs_dir):
    trial = _trial_run(runs_dir, "lr-v4", 3)
    old = written_run(runs_dir)
    records = {p: read_run(p) for p in (trial, old)}
    assert (records[trial].study, records[trial].trial, records[trial].status) == ("lr-v4", 3, "stopped")
    assert (records[old].study, records[old].trial, records[old].status) == (None, None, "stopped")
    assert [r.run for r in select(list(records.values()), "study:LR-v4")] == [trial.name]
    assert select(list(records.values()), "study:lr") == []  # the whole name, as tags


def test_a_trial_mark_out_of_bounds_makes_its_run_damaged_naming_it(runs_dir):
    for study, trial, named in (("bad name", 1, "study"), ("ok", -1, "trial"), ("ok", 10**10, "trial"), (7, 1, "study")):
        record = read_run(_trial_run(runs_dir, study, trial))
        assert record.status == "damaged" and named in record.reason, (study, trial, record.reason)
    assert json.loads((_trial_run(runs_dir, "ok", None) / "config.json").read_text())["config"]["trial"] is None


# ---------------------------------------------------------------------------------------------
# The command's refusals: one line, no traceback

SMALL = ("--limit", "2000", "--test-limit", "500", "--holdout", "500", "--epochs", "1", "--precision", "fp32", "--device", "cpu")


def _sweep(runs_dir, *argv: str) -> tuple[int, str, str]:
    """`mnist-tui sweep --runs RUNS ARGV` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(["sweep", "--runs", str(runs_dir), *argv])
        except SystemExit as exc:  # argparse's refusal
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def _one_line_refusal(code: int, err: str, expected: int, *words: str) -> None:
    lines = [line for line in err.splitlines() if line and not line.startswith(("usage:", " "))]
    assert code == expected, err
    assert len(lines) == 1 and lines[0].startswith("mnist-tui") and "Traceback" not in err, err
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize(
    "toml, words",
    [
        ("[lr]\nlow = 0.5\nhigh = 0.1\n", ("lr", "not below")),
        ("[nope]\nlow = 1\nhigh = 2\n", ("unknown field", "nope")),
        ("[batch_size]\nchoices = [64, 100000]\n", ("batch_size", "larger than")),
        ("[lr]\nlow = nan\nhigh = 1.0\n", ("lr", "not finite")),
        ("[optimizer]\nchoices = ['adam', 'rmsprop']\n", ("optimizer", "rmsprop")),
        ("[epochs]\nlow = 1.5\nhigh = 3\n", ("epochs", "whole number")),
        ("[lr\n", ("not TOML",)),
        ("x" * 70_000, ("too large",)),
    ],
)
def test_a_bad_space_file_is_refused_in_one_line_naming_the_field(runs_dir, tmp_path, toml, words):
    space = tmp_path / "space.toml"
    space.write_text(toml)
    code, _out, err = _sweep(runs_dir, "--model", "v4", "--space", str(space), *SMALL)
    _one_line_refusal(code, err, 2, *words)
    assert not (runs_dir / ".sweeps").exists()  # nothing was made


def test_a_bad_study_name_an_unopenable_storage_and_a_damaged_journal_are_one_line(runs_dir, tmp_path):
    code, _out, err = _sweep(runs_dir, "--model", "v4", "--study", "../x", *SMALL)
    _one_line_refusal(code, err, 2, "study name")
    code, _out, err = _sweep(runs_dir, "--model", "v4", "--study", "s", "--storage", "nosuchdb://nowhere/x", *SMALL)
    _one_line_refusal(code, err, 1, "storage")
    code, _out, err = _sweep(runs_dir, "--study", "missing", *SMALL)
    _one_line_refusal(code, err, 1, "no study named missing")
    (runs_dir / ".sweeps").mkdir(parents=True, exist_ok=True)
    (runs_dir / ".sweeps" / "broken.journal").write_bytes(b'{"op_code": 0, "worker_id": "x", "study_name": \x00\xff garbage\n[[[\n')
    code, _out, err = _sweep(runs_dir, "--model", "v4", "--study", "broken", *SMALL)
    _one_line_refusal(code, err, 1)


# ---------------------------------------------------------------------------------------------
# Pruning, with runs written in this process (no trainer)


class FakeStarter:
    """Writes each trial's run as a trainer would: one epoch of a poor held-out figure, then
    running until a stop is asked for, then stopped."""

    def __init__(self, epochs=3):
        self.threads = []
        self.epochs = epochs

    def reserve(self, model):
        return f"20260101T000000Z-{model}-{len(self.threads):06x}"

    def start(self, config, runs_dir, name):
        writer = RunWriter.create(runs_dir, config.model, {"config": config.to_dict(), "evaluated_on": "holdout"}, name=name)
        row = {
            "epoch": 1,
            "epochs": self.epochs,
            "train_loss": 0.2,
            "train_acc": 90.0,
            "test_loss": 0.3,
            "test_acc": 50.0,
            "lr": 0.01,
            "seconds": 1.0,
            "images_per_s": 1.0,
        }
        writer.append_epoch(row)
        writer.save_checkpoint(stub_checkpoint(1))

        def until_stopped():
            while self.epochs > 1 and not (writer.path / "stop").exists():
                time.sleep(0.05)
            writer.close("stopped" if self.epochs > 1 else "finished")

        thread = threading.Thread(target=until_stopped, daemon=True)
        thread.start()
        self.threads.append(thread)
        return lambda: None

    def poke(self, runs_dir):
        pass


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_a_pruned_trial_is_recorded_pruned_and_its_run_tagged(runs_dir):
    from mnist_tui.core.sweep.run import Worker, open_sweep, setup_for
    from mnist_tui.core.sweep.space import default_space
    from mnist_tui.core.sweep.trial import Context
    from mnist_tui.core.versions import get_version

    base = get_version("v4").config(epochs=3, limit=2000, test_limit=500, holdout=500, precision="fp32", device="cpu")
    sweep = open_sweep(runs_dir, "pr", None, setup_for(base, 1, "holdout_acc", default_space(base), "median"), base, None)
    sweep.study.pruner = AlwaysPrune()
    ends = []
    ctx = Context(sweep.study, runs_dir, sweep.base, "test_acc", FakeStarter(), threading.Event(), ends.append)
    Worker(sweep, ctx, runs_dir, 1).work()
    [trial] = sweep.study.get_trials()
    assert trial.state == optuna.trial.TrialState.PRUNED and [e.state for e in ends] == ["PRUNED"]
    record = read_run(runs_dir / trial.user_attrs["run"])
    assert record.status == "stopped" and "pruned" in record.notes.tags
    assert (record.study, record.trial) == ("pr", 0)
    assert trial.user_attrs["pruned_at"] == 1  # an adopter of the trial would know why its run stopped
    assert list((runs_dir / ".sweeps").glob("*.trial-*.lock")) == []  # a told trial leaves no lock file


# ---------------------------------------------------------------------------------------------
# Real sweeps: trainers started through the run queue


def _study(runs_dir, name):
    from mnist_tui.core.sweep.study import load

    return load(runs_dir, name)


def _real_sweep(runs_dir, *argv: str, **kwargs):
    return subprocess.run([sys.executable, "-m", "mnist_tui", "sweep", "--runs", str(runs_dir), *argv], capture_output=True, text=True, timeout=600, **kwargs)


def _trial_runs(runs_dir, name):
    return [r for r in (read_run(p) for p in runs_dir.iterdir() if not p.name.startswith(".")) if r.study == name]


@pytest.mark.slow
def test_a_four_trial_sweep_marks_four_runs_and_reports_the_best_once(runs_dir):
    result = _real_sweep(runs_dir, "--model", "v4", "--trials", "4", "--study", "acc", "--seed", "3", *SMALL)
    assert result.returncode == 0, result.stderr
    runs = _trial_runs(runs_dir, "acc")
    assert sorted(r.trial for r in runs) == [0, 1, 2, 3] and all(r.status == "finished" for r in runs)
    study = _study(runs_dir, "acc")
    best = study.user_attrs["best_test"]
    assert best["trial"] == study.best_trial.number and best["test_images"] == 500 and 0 <= best["test_acc"] <= 100
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith(f"best: trial {best['trial']}") and "the test set is looked at once, at the end" in last
    assert sum(line.startswith("trial ") for line in result.stdout.splitlines()) == 4


@pytest.mark.slow
def test_a_sweep_killed_after_two_trials_resumes_to_four_without_repeating_one(runs_dir):
    worker = subprocess.Popen([sys.executable, "-m", "mnist_tui", "sweep", "--runs", str(runs_dir), "--model", "v4", "--trials", "4", "--study", "k", *SMALL],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            journal = runs_dir / ".sweeps" / "k.journal"
            if journal.exists() and sum(t.state.is_finished() for t in _study(runs_dir, "k").get_trials()) >= 2:
                break
            time.sleep(0.5)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait()
    result = _real_sweep(runs_dir, "--study", "k")
    assert result.returncode == 0, result.stderr
    trials = _study(runs_dir, "k").get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len({t.user_attrs["run"] for t in trials}) == 4
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4
    assert sorted(r.trial for r in _trial_runs(runs_dir, "k")) == [0, 1, 2, 3]
    # The trial under way when the worker was killed was adopted and completed, not failed,
    # and no untracked run was made beside it.
    assert all(t.state.name == "COMPLETE" for t in trials), [(t.number, t.state.name, t.user_attrs.get("failed_why")) for t in trials]
    assert len([p for p in runs_dir.iterdir() if not p.name.startswith(".")]) == len(trials)


@pytest.mark.slow
def test_two_workers_on_one_study_see_distinct_trials(runs_dir):
    argv = [sys.executable, "-m", "mnist_tui", "sweep", "--runs", str(runs_dir), "--model", "v4", "--trials", "4", "--study", "two", *SMALL]
    workers = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    trials = _study(runs_dir, "two").get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["run"] for t in trials}) == 4
    told = [line.split()[1] for out, _err in outputs for line in out.splitlines() if line.startswith("trial ")]
    assert sorted(told, key=int) == ["0", "1", "2", "3"]  # each trial driven by one worker


# ---------------------------------------------------------------------------------------------
# The review's regressions (issue 35): trials followed by hand, with runs written here


def _base():
    from mnist_tui.core.versions import get_version

    return get_version("v4").config(epochs=2, limit=2000, test_limit=500, holdout=500, precision="fp32", device="cpu")


def _open(runs_dir, name="r", trials=4, pruner=None):
    from mnist_tui.core.sweep.run import open_sweep, setup_for
    from mnist_tui.core.sweep.space import default_space

    base = _base()
    return open_sweep(runs_dir, name, None, setup_for(base, trials, "holdout_acc", default_space(base), pruner), base, None)


def _write_trial_run(runs_dir, name, study, trial, accs, epochs, status="finished", evaluated_on="holdout"):
    config = _base().replace(study=study, trial=trial).to_dict()
    writer = RunWriter.create(runs_dir, "v4", {"config": config, "evaluated_on": evaluated_on}, name=name)
    for i, acc in enumerate(accs, 1):
        writer.append_epoch(
            {
                "epoch": i,
                "epochs": epochs,
                "train_loss": 0.2,
                "train_acc": 90.0,
                "test_loss": 0.3,
                "test_acc": acc,
                "lr": 0.01,
                "seconds": 1.0,
                "images_per_s": 1.0,
            }
        )
    writer.save_checkpoint(stub_checkpoint(len(accs)))
    if status != "running":
        writer.close(status)
    return writer.path


def _ctx(sweep, runs_dir, ends=None):
    from mnist_tui.core.sweep.trial import Context

    return Context(sweep.study, runs_dir, sweep.base, "test_acc", FakeStarter(), threading.Event(), (ends if ends is not None else []).append)


def _follow(sweep, runs_dir, run, **kw):
    from mnist_tui.core.sweep.trial import follow_trial

    trial = sweep.study.ask()
    trial.set_user_attr("run", run)
    return trial, follow_trial(_ctx(sweep, runs_dir), trial, run, lambda: None, time.monotonic(), **kw)


def test_a_run_that_ended_between_two_looks_reports_every_epoch_and_completes(runs_dir):
    sweep = _open(runs_dir)
    _write_trial_run(runs_dir, "20260101T000000Z-v4-aaaaaa", "r", 0, [91.0, 93.0, 95.0], 3)
    trial, end = _follow(sweep, runs_dir, "20260101T000000Z-v4-aaaaaa")
    frozen = sweep.study.get_trials()[0]
    assert (end.state, end.value) == ("COMPLETE", 95.0) and frozen.intermediate_values == {1: 91.0, 2: 93.0, 3: 95.0}


def test_a_run_of_another_trial_or_scored_on_the_test_set_never_scores_a_trial(runs_dir):
    sweep = _open(runs_dir)
    _write_trial_run(runs_dir, "20260101T000000Z-v4-bbbbbb", "other", 0, [99.0], 1)
    _, end = _follow(sweep, runs_dir, "20260101T000000Z-v4-bbbbbb")
    assert end.state == "FAIL" and "does not record this trial" in end.why
    _write_trial_run(runs_dir, "20260101T000000Z-v4-cccccc", "r", 1, [99.0], 1, evaluated_on="test")
    _, end = _follow(sweep, runs_dir, "20260101T000000Z-v4-cccccc")
    assert end.state == "FAIL" and "test set" in end.why and sweep.study.get_trials()[1].intermediate_values == {}
    _, end = _follow(sweep, runs_dir, "../escape")
    assert end.state == "FAIL" and "cannot name" in end.why


def test_a_trial_that_trained_every_epoch_is_never_pruned(runs_dir):
    from mnist_tui.core.sweep.run import Worker

    sweep = _open(runs_dir, "fin", trials=1, pruner="median")
    sweep.study.pruner = AlwaysPrune()
    ends = []
    ctx = _ctx(sweep, runs_dir, ends)
    ctx.starter = FakeStarter(epochs=1)  # its only epoch is its last
    Worker(sweep, ctx, runs_dir, 1).work()
    assert [(e.state, e.value) for e in ends] == [("COMPLETE", 50.0)]


def test_an_orphan_whose_run_is_still_starting_is_adopted_and_completes(runs_dir):
    from mnist_tui.core.sweep.trial import adopt

    sweep = _open(runs_dir, "ad")
    trial = sweep.study.ask()
    trial.set_user_attr("run", "20260101T000000Z-v4-dddddd")
    frozen = sweep.study.get_trials()[-1]
    later = threading.Timer(1.0, _write_trial_run, (runs_dir, "20260101T000000Z-v4-dddddd", "ad", frozen.number, [97.0], 1))
    later.start()
    end = adopt(_ctx(sweep, runs_dir), frozen)
    later.join()
    assert (end.state, end.value) == ("COMPLETE", 97.0)


def test_an_adopted_trial_whose_run_its_pruner_stopped_is_pruned(runs_dir):
    from mnist_tui.core.sweep.trial import adopt

    sweep = _open(runs_dir, "ap")
    trial = sweep.study.ask()
    trial.set_user_attr("run", "20260101T000000Z-v4-eeeeee")
    trial.set_user_attr("pruned_at", 1)
    _write_trial_run(runs_dir, "20260101T000000Z-v4-eeeeee", "ap", trial.number, [40.0], 3, status="stopped")
    assert adopt(_ctx(sweep, runs_dir), sweep.study.get_trials()[-1]).state == "PRUNED"


def test_a_stored_holdout_of_0_is_refused_on_resume(runs_dir):
    from mnist_tui.core.sweep.run import open_sweep
    from mnist_tui.core.sweep.study import SETUP, SweepError

    sweep = _open(runs_dir, "h0")
    sweep.study.set_user_attr(SETUP, {**sweep.setup, "holdout": 0})
    with pytest.raises(SweepError, match="holdout"):
        open_sweep(runs_dir, "h0", None, None, _base(), None)


def test_best_test_belongs_to_the_current_best_and_a_problem_is_not_stored(runs_dir, monkeypatch):
    from mnist_tui.core.sweep import best

    sweep = _open(runs_dir, "bt")
    measured = []
    monkeypatch.setattr(best, "_test_accuracy", lambda run_dir, data: measured.append(run_dir.name) or {"test_acc": 90.0, "test_images": 500})
    for number, acc in enumerate([95.0, 97.0]):
        run = f"20260101T000000Z-v4-bt{number:04d}"
        trial = sweep.study.ask()
        _write_trial_run(runs_dir, run, "bt", trial.number, [acc], 1)
        trial.set_user_attr("run", run)
        sweep.study.tell(trial, acc)
        first = best.evaluate_best(sweep.study, runs_dir, None)
        assert first["trial"] == trial.number and first["test_acc"] == 90.0 and best.evaluate_best(sweep.study, runs_dir, None) == first
    assert measured == ["20260101T000000Z-v4-bt0000", "20260101T000000Z-v4-bt0001"]  # each best once
    trial = sweep.study.ask()
    trial.set_user_attr("run", "20260101T000000Z-v4-bt0000")  # names another trial's run
    sweep.study.tell(trial, 99.0)
    result = best.evaluate_best(sweep.study, runs_dir, None)
    assert result["trial"] == trial.number and "does not record this trial" in result["problem"]
    assert sweep.study.user_attrs["best_test"]["trial"] == 1  # the problem was not stored


def test_stopped_and_beyond_the_count_failures_do_not_count_in_the_report(runs_dir):
    from mnist_tui.core.sweep.report import read_sweep
    from mnist_tui.core.sweep.study import BEYOND, USER_STOP

    sweep = _open(runs_dir, "cnt", trials=2)
    for why in (USER_STOP, BEYOND, "diverged"):
        trial = sweep.study.ask()
        trial.set_user_attr("failed_why", why)
        sweep.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    report = read_sweep(runs_dir, "cnt")
    assert (report.done, report.state) == (1, "unfinished")


def test_a_study_made_on_another_machine_a_moment_ago_keeps_its_makers_setup(runs_dir, tmp_path):
    from mnist_tui.core.sweep.study import SETUP

    journal = tmp_path / "shared.journal"
    other = optuna.create_study(study_name="race", storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))))
    made = {}
    opener = threading.Thread(target=lambda: made.update(sweep=_open_at(runs_dir, str(journal))))
    opener.start()
    time.sleep(0.5)  # the maker sets its settings and its recipe trial a moment after making the study
    other.set_user_attr(SETUP, {**_open(tmp_path / "elsewhere", "x").setup, "trials": 7})
    other.enqueue_trial({"lr": 0.01})
    opener.join(timeout=60)
    assert made["sweep"].setup["trials"] == 7 and not made["sweep"].created
    assert len(other.get_trials()) == 1  # the recipe trial was enqueued once, by its maker


def _open_at(runs_dir, storage):
    from mnist_tui.core.sweep.run import open_sweep, setup_for
    from mnist_tui.core.sweep.space import default_space

    base = _base()
    return open_sweep(runs_dir, "race", storage, setup_for(base, 3, "holdout_acc", default_space(base), None), base, None)


def test_the_sampler_seed_is_reproducible_alone_and_differs_beside_another_worker():
    from mnist_tui.core.sweep.run import sampler_seed

    assert sampler_seed(3, 2, False) == sampler_seed(3, 2, False) == 5
    assert sampler_seed(3, 2, True) != 5


def test_detach_keeps_the_storage_off_the_command_line_and_the_pointer_private(runs_dir, tmp_path, monkeypatch):
    from mnist_tui.cli import sweeping
    from mnist_tui.core.store import files

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    started, modes = [], []
    monkeypatch.setattr(sweeping.subprocess, "Popen", lambda command, **kw: started.append(command))
    real_replace = files.os.replace
    monkeypatch.setattr(files.os, "replace", lambda a, b: (modes.append((str(b), files.os.stat(a).st_mode & 0o777)), real_replace(a, b)))
    code, _out, err = _sweep(runs_dir, "--model", "v4", "--study", "d", "--storage", url, "--detach", *SMALL)
    assert code == 0, err
    [command] = started
    assert url not in " ".join(command) and "--storage" not in command
    assert [m for path, m in modes if path.endswith("d.json")] == [0o600]  # 0600 before it was in place
    assert sweeping._storage(argparse.Namespace(storage=None, model=None), runs_dir, "d") == url  # the worker finds it


@pytest.mark.parametrize("storage", ["mydb", "user:pw@host/db", "postgres:/x//y"])
def test_a_storage_that_is_neither_a_url_nor_a_path_is_refused_in_one_line(runs_dir, storage):
    code, _out, err = _sweep(runs_dir, "--model", "v4", "--study", "s", "--storage", storage, *SMALL)
    _one_line_refusal(code, err, 2, "storage")
    assert not (runs_dir / ".sweeps").exists() and not (runs_dir.parent / storage).exists()


def test_a_journal_path_is_remembered_absolute(runs_dir, tmp_path, monkeypatch):
    from mnist_tui.cli import sweeping
    from mnist_tui.core.sweep.study import known_studies

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweeping.subprocess, "Popen", lambda command, **kw: None)
    code, _out, err = _sweep(runs_dir, "--model", "v4", "--study", "j", "--storage", "mine.journal", "--detach", *SMALL)
    assert code == 0, err
    assert dict(known_studies(runs_dir))["j"] == str(tmp_path / "mine.journal")


@pytest.mark.parametrize("argv, words", [(("--jobs", "17", "--trials", "40"), ("16",)), (("--jobs", "5", "--trials", "4"), ("4 trials",))])
def test_too_many_jobs_are_refused_in_one_line(runs_dir, argv, words):
    code, _out, err = _sweep(runs_dir, "--model", "v4", "--study", "jb", *argv, *SMALL)
    _one_line_refusal(code, err, 2, "--jobs", *words)


def test_readers_never_create_a_journal_a_database_or_block_on_a_fifo(runs_dir, tmp_path):
    import os

    from mnist_tui.core.sweep.report import list_sweeps, read_sweep
    from mnist_tui.core.sweep.study import SweepError

    folder = runs_dir / ".sweeps"
    folder.mkdir(parents=True)
    os.mkfifo(tmp_path / "fifo.journal")
    pointers = {"gone": str(tmp_path / "new" / "x.journal"), "fifo": str(tmp_path / "fifo.journal"), "db": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    for name, storage in pointers.items():
        (folder / f"{name}.json").write_text(json.dumps({"name": name, "storage": storage}))
    listed = {s.name: s.state for s in list_sweeps(runs_dir)}
    assert listed == {"db": "remote", "fifo": "damaged", "gone": "damaged"}
    assert not (tmp_path / "new").exists() and not (tmp_path / "db.sqlite").exists()
    with pytest.raises(SweepError, match="not a regular file"):
        read_sweep(runs_dir, "fifo", pointers["fifo"])


class EpochByEpoch(FakeStarter):
    """Writes a trial's run one poor epoch (10%) at a time, each once the trial has reported
    the one before, until the run is asked to stop (then stopped) or all are written."""

    def __init__(self, study, epochs):
        super().__init__(epochs)
        self.study = study

    def start(self, config, runs_dir, name):
        writer = RunWriter.create(runs_dir, config.model, {"config": config.to_dict(), "evaluated_on": "holdout"}, name=name)
        number = len(self.study.get_trials(deepcopy=False)) - 1

        def epochs():
            deadline = time.monotonic() + 30
            for epoch in range(1, self.epochs + 1):
                if (writer.path / "stop").exists():
                    break
                row = {"epoch": epoch, "epochs": self.epochs, "train_loss": 0.2, "train_acc": 90.0, "test_loss": 0.3, "test_acc": 10.0}
                writer.append_epoch(row | {"lr": 0.01, "seconds": 1.0, "images_per_s": 1.0})
                writer.save_checkpoint(stub_checkpoint(epoch))
                while epoch not in self.study.get_trials()[number].intermediate_values and time.monotonic() < deadline:
                    time.sleep(0.05)
            while not (writer.path / "stop").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            writer.close("stopped")

        thread = threading.Thread(target=epochs, daemon=True)
        thread.start()
        self.threads.append(thread)
        return lambda: None


def test_the_median_pruner_never_prunes_in_the_first_half_of_a_trial(runs_dir):
    """A one-cycle schedule is still warming up in a trial's first epochs: a 5-epoch trial far
    below the median is pruned at epoch 3, never at 1 or 2."""
    from mnist_tui.core.sweep.run import Worker, open_sweep, setup_for
    from mnist_tui.core.sweep.space import default_space
    from mnist_tui.core.versions import get_version

    base = get_version("v4").config(epochs=5, limit=2000, test_limit=500, holdout=500, precision="fp32", device="cpu")
    sweep = open_sweep(runs_dir, "half", None, setup_for(base, 3, "holdout_acc", default_space(base), "median"), base, None)
    for _ in range(2):  # two good trials: the median to fall below
        trial = sweep.study.ask()
        for step in range(1, 6):
            trial.report(99.0, step)
        sweep.study.tell(trial, 99.0)
    ends = []
    ctx = _ctx(sweep, runs_dir, ends)
    ctx.starter = EpochByEpoch(sweep.study, 5)
    Worker(sweep, ctx, runs_dir, 1).work()
    trial = sweep.study.get_trials()[-1]
    assert [e.state for e in ends] == ["PRUNED"]
    # pruned_at is the pruner's first "prune": epochs 1 and 2 passed it by. The run may finish
    # one more epoch before the stop reaches it; that epoch is reported too.
    assert trial.user_attrs["pruned_at"] == 3 and sorted(trial.intermediate_values)[:3] == [1, 2, 3]
