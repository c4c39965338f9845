"""Sweeps (issue 35): trial marks in a run's config, the search space, the worker and the
`mnist-tui sweep` command."""

from __future__ import annotations

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
