"""Where the project's default folders live, without importing anything heavy."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_dir(explicit: str | os.PathLike[str] | None, env: str, default_name: str) -> Path:
    """A folder: the explicit path if given, else $env if set, else the project's folder."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return project_dir() / default_name


def project_dir() -> Path:
    """The source checkout holding this package when there is one, else the current folder.

    In a checkout (an editable install, the normal case) `data/` and `runs/` live next to
    `pyproject.toml`, wherever the user starts the app from.
    """
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").exists() and (here / "mnist_tui").is_dir():
        return here
    return Path.cwd()


def cache_dir() -> Path:
    """Where mnist-tui keeps what it can rebuild: $MNIST_TUI_CACHE, else the user's cache
    folder ($XDG_CACHE_HOME or ~/.cache) / mnist-tui."""
    if os.environ.get("MNIST_TUI_CACHE"):
        return Path(os.environ["MNIST_TUI_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-tui"
