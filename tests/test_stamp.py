"""The reproducibility stamp in config.json: the code's commit and changes, the machine."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from mnist_tui.core import history, stamp
from mnist_tui.core.store import list_runs, read_run
from mnist_tui.core.store.provenance import check_stamp, stamp_of
from mnist_tui.core.versions import get_version
from mnist_tui.present.kept import stamp_lines
from tests.ui_helpers import write_run

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git checkout holding one committed file."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "checkout"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "model.py").write_text("lr = 0.01\n")
    _git(repo, "add", "model.py")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


@needs_git
def test_the_stamp_holds_the_commit_of_a_clean_checkout(checkout):
    made, diff = stamp.make_stamp(checkout)
    assert made["git"] == {"commit": _git(checkout, "rev-parse", "HEAD"), "dirty": False, "diff_sha256": None, "diff_bytes": 0, "diff_saved": False}
    assert diff == b"" and "git_problem" not in made
    checked = check_stamp(json.loads(json.dumps(made)))  # as config.json holds it, read back
    assert checked.mnist_tui and checked.python and checked.torch and checked.git is not None


@needs_git
def test_uncommitted_changes_are_hashed_and_kept(checkout):
    (checkout / "model.py").write_text("lr = 0.05\n")
    made, diff = stamp.make_stamp(checkout)
    expected = subprocess.run(["git", "-C", str(checkout), "diff", "HEAD", "--binary"], capture_output=True, check=True).stdout
    assert made["git"]["dirty"] and diff == expected and b"+lr = 0.05" in diff
    assert made["git"]["diff_sha256"] == hashlib.sha256(expected).hexdigest() and made["git"]["diff_saved"]


@needs_git
def test_a_large_diff_is_hashed_but_not_kept(checkout, monkeypatch):
    monkeypatch.setattr(stamp, "DIFF_KEPT", 10)
    (checkout / "model.py").write_text("lr = 0.05\n")
    made, diff = stamp.make_stamp(checkout)
    assert made["git"]["dirty"] and made["git"]["diff_sha256"] and not made["git"]["diff_saved"] and diff == b""


@needs_git
def test_outside_a_checkout_or_inside_another_repository_the_stamp_says_none(tmp_path, checkout, monkeypatch):
    plain = tmp_path / "plain"
    plain.mkdir()
    made, _diff = stamp.make_stamp(plain)
    assert made["git"] is None and made["git_problem"] == "not a git checkout"
    inner = checkout / "site-packages"  # an installed copy inside some project's repository
    inner.mkdir()
    made, _diff = stamp.make_stamp(inner)
    assert made["git"] is None and made["git_problem"] == "not a git checkout"


@needs_git
def test_git_missing_or_slow_never_stops_a_start(checkout, monkeypatch):
    monkeypatch.setenv("PATH", "")
    made, _diff = stamp.make_stamp(checkout)
    assert made["git"] is None and made["git_problem"] == "git is not installed"
    monkeypatch.undo()

    def slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout", 0))

    monkeypatch.setattr(stamp.subprocess, "run", slow)
    made, _diff = stamp.make_stamp(checkout)
    assert made["git"] is None and "did not answer" in made["git_problem"]


def test_every_run_is_stamped_and_filtered_by_its_commit(tmp_path):
    from mnist_tui.core.train import train

    config = get_version("v4").config(epochs=1, batch_size=64, limit=64, test_limit=64, device="cpu", runs_dir=str(tmp_path))
    for _event in train(config):
        pass
    [run] = list_runs(tmp_path)
    found, problem = stamp_of(run.config)
    assert found is not None and not problem and found.torch and found.python
    assert (run.path / "code.diff").exists() == (found.git is not None and found.git.diff_saved)
    if found.git is not None:  # this checkout is a git checkout
        assert [r.run for r in history.select([run], f"commit:{found.git.commit[:7]}")] == [run.run_id]
        assert stamp_lines(found, "")[0].startswith(f"code: mnist-tui {found.mnist_tui}, commit {found.git.commit[:12]}")
    assert history.select([run], "commit:0000000") == []


@pytest.mark.parametrize("bad", [5, {"git": {"commit": "zz", "dirty": False}}, {"python": ["x"]}, {"git": {"commit": "a" * 40, "dirty": "yes"}}])
def test_a_bad_stamp_is_named_unreadable_and_costs_its_run_nothing(tmp_path, bad):
    path = write_run(tmp_path, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [99.0])
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "stamp": bad}))
    record = read_run(path)
    assert record.status == "finished"
    found, problem = stamp_of(record.config)
    assert found is None and problem.startswith("config.json's stamp")
    assert stamp_lines(found, problem)[0].startswith("stamp: unreadable")
    assert history.select([record], "commit:a") == []


def test_a_run_made_before_the_stamp_says_so(tmp_path):
    record = read_run(write_run(tmp_path, "20261101T100000Z-v2-aaaaaa", "v2", "finished", [99.0]))
    assert stamp_lines(*stamp_of(record.config)) == ["stamp: none (the run was made before mnist-tui recorded one)"]
