"""Where mnist-tui keeps things: the checkout's folders, the user's folders when installed,
the options and variables that override them, and `where()` naming every folder in use."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_tui.core import data, paths
from mnist_tui.core.store import default_runs_dir

ENV = ("MNIST_TUI_RUNS", "MNIST_TUI_DATA", "MNIST_TUI_CACHE", "MNIST_TUI_LOGS")


@pytest.fixture
def user_folders(tmp_path, monkeypatch):
    """XDG folders in tmp_path and no MNIST_TUI_* variable: (data home, cache home, state home)."""
    homes = tuple(tmp_path / name for name in ("share", "cache", "state"))
    for var, home in zip(("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"), homes):
        monkeypatch.setenv(var, str(home))
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return homes


@pytest.fixture
def installed(monkeypatch, user_folders):
    """As a copy installed from the wheel sees it: no source checkout around the package."""
    monkeypatch.setattr(paths, "checkout_dir", lambda: None)
    return user_folders


def by_role(locations):
    return {loc.role: loc for loc in locations}


def test_a_checkout_keeps_runs_and_data_beside_its_pyproject(user_folders):
    root = Path(__file__).resolve().parents[1]
    assert paths.checkout_dir() == root
    assert default_runs_dir() == root / "runs"
    assert data.find_root() == root / "data"
    where = by_role(paths.where())
    assert where["runs"] == paths.Location("runs", root / "runs", "source checkout")
    assert where["data"] == paths.Location("data", root / "data" / "MNIST" / "raw", "source checkout")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="XDG folders are Linux's")
def test_an_installed_copy_uses_the_users_folders_never_the_current_one(installed, tmp_path):
    share, cache, state = installed
    assert default_runs_dir() == share / "mnist-tui" / "runs"
    assert data.find_root() == cache / "mnist-tui" / "data"
    where = by_role(paths.where())
    assert where["runs"] == paths.Location("runs", share / "mnist-tui" / "runs", "user data folder")
    assert where["data"].path == cache / "mnist-tui" / "data" / "MNIST" / "raw"
    assert where["cache"] == paths.Location("cache", cache / "mnist-tui", "user cache folder")
    assert where["kernel cache"].path == cache / "mnist-tui" / "kernels"
    assert where["index cache"].path == cache / "mnist-tui" / "runs"
    assert where["logs"] == paths.Location("logs", state / "mnist-tui" / "log", "user log folder")
    assert where["shipped data"].path == data.SHIPPED_DATA
    assert all(Path.cwd() not in loc.path.parents for loc in where.values() if loc.role != "shipped data")


def test_options_then_variables_override_the_defaults(installed, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_TUI_RUNS", str(tmp_path / "env-runs"))
    monkeypatch.setenv("MNIST_TUI_DATA", str(tmp_path / "env-data"))
    monkeypatch.setenv("MNIST_TUI_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("MNIST_TUI_LOGS", str(tmp_path / "env-logs"))
    where = by_role(paths.where())
    assert where["runs"] == paths.Location("runs", tmp_path / "env-runs", "$MNIST_TUI_RUNS")
    assert where["data"] == paths.Location("data", tmp_path / "env-data" / "MNIST" / "raw", "$MNIST_TUI_DATA")
    assert where["cache"] == paths.Location("cache", tmp_path / "env-cache", "$MNIST_TUI_CACHE")
    assert where["kernel cache"] == paths.Location("kernel cache", tmp_path / "env-cache" / "kernels", "$MNIST_TUI_CACHE")
    assert where["logs"] == paths.Location("logs", tmp_path / "env-logs", "$MNIST_TUI_LOGS")
    where = by_role(paths.where(runs=tmp_path / "opt-runs", data="~/mnist"))
    assert where["runs"] == paths.Location("runs", tmp_path / "opt-runs", "--runs")
    assert where["data"] == paths.Location("data", Path.home() / "mnist" / "MNIST" / "raw", "--data")


def test_every_location_has_one_printable_line(installed):
    lines = [loc.line() for loc in paths.where()]
    assert [line.split()[0] for line in lines] == ["runs", "data", "shipped", "cache", "kernel", "index", "logs"]
    assert all("\n" not in line and line.endswith(")") for line in lines)


def test_the_readers_ask_the_same_functions_as_where(installed):
    """fused.py and the runs index keep their files where `where()` says they are."""
    from mnist_tui.core import fused
    from mnist_tui.core.store import index

    where = by_role(paths.where())
    assert fused.cache_dir() == where["kernel cache"].path
    assert index.index_path(Path("/some/runs")).parent == where["index cache"].path


def test_mnist_tui_where_prints_every_folder_and_what_chose_it(installed, tmp_path, capsys, monkeypatch):
    from mnist_tui import cli

    share, cache, state = installed
    monkeypatch.setenv("MNIST_TUI_DATA", str(tmp_path / "mnist"))
    assert cli.main(["--where", "--runs", str(tmp_path / "mine")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [loc.line() for loc in paths.where(tmp_path / "mine", None)]
    assert out[0].split() == ["runs", str(tmp_path / "mine"), "(--runs)"]
    assert out[1].split() == ["data", str(tmp_path / "mnist" / "MNIST" / "raw"), "($MNIST_TUI_DATA)"]
    assert f"{cache / 'mnist-tui' / 'kernels'}  (user cache folder)" in out[4]
    assert not list(Path.cwd().iterdir())  # asking writes nothing
