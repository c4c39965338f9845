"""Installed like a tool (`pip install .` into a fresh venv, as pipx and `uv tool install` do),
mnist-tui trains offline from an empty folder: MNIST comes from the wheel, the run lands in
the user's data folder, and nothing is written where the user started it."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from mnist_tui.core.data import IDX_MD5

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "mnist_tui")

pytestmark = pytest.mark.slow


def _run(args, **kwargs):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def build_wheel(tmp_path: Path) -> Path:
    """The wheel `pip install .` would build, from a copy of the sources (the checkout's own
    build/ and egg-info stay untouched), offline and with the build tools already here."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", src, "-w", tmp_path / "wheel"])
    (wheel,) = (tmp_path / "wheel").glob("mnist_tui-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> Path:
    """A fresh venv holding the wheel; its dependencies (torch and the rest) are the ones this
    suite runs with, reached through a .pth file, so nothing is downloaded. Its python."""
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "_mnist_tui_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n" + "\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])
    return python


def user_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user with no mnist-tui settings and their XDG folders in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_TUI_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[var] = str(tmp_path / var.lower())
    return env


def test_the_wheel_carries_mnist_the_stylesheet_and_the_kernels(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"mnist_tui/data/{name}.gz" for name in IDX_MD5} <= names
    # Every file of the package that is not Python (the app's styling, the kernels' source,
    # the data and its licence note) ships, or an installed copy breaks where a checkout works.
    package = ROOT / "mnist_tui"
    data_files = {
        p.relative_to(ROOT).as_posix()
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts and not p.name.startswith(".")
    }
    assert data_files <= names, f"missing from the wheel: {sorted(data_files - names)}"


def test_an_installed_copy_trains_offline_from_an_empty_folder(tmp_path):
    python = install(build_wheel(tmp_path), tmp_path / "venv")
    env = user_env(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run([python, "-c", "import mnist_tui; print(mnist_tui.__file__)"], cwd=empty, env=env).stdout
    assert where.startswith(str(tmp_path / "venv")), f"the test imported {where}, not the installed copy"
    where = _run([tmp_path / "venv" / "bin" / "mnist-tui", "--where"], cwd=empty, env=env).stdout.splitlines()
    assert where[0].split() == ["runs", str(tmp_path / "xdg_data_home" / "mnist-tui" / "runs"), "(user", "data", "folder)"]
    command = [tmp_path / "venv" / "bin" / "mnist-tui", "train", "--model", "v4", "--epochs", "1", "--limit", "512", "--test-limit", "500", "--device", "cpu"]
    result = _run(command, cwd=empty, env=env)
    assert list(empty.iterdir()) == [], "the run wrote into the folder it was started from"
    runs = tmp_path / "xdg_data_home" / "mnist-tui" / "runs"
    (run,) = [p for p in runs.iterdir() if p.is_dir() and p.name != "exports"]
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    raw = tmp_path / "xdg_cache_home" / "mnist-tui" / "data" / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(IDX_MD5)
    assert "extracting 4 MNIST files" in result.stdout + result.stderr and "downloading" not in result.stdout + result.stderr
