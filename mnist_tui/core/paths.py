"""Where mnist-tui keeps its folders (runs, data, caches, logs), without importing anything heavy.

A source checkout keeps `runs/` and `data/` next to its `pyproject.toml`, as it always has;
an installed copy (`pip install`, `pipx`, `uv tool install`) uses the platform's user folders
(platformdirs), never the folder the user happened to start from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "mnist-tui"
RUNS_ENV = "MNIST_TUI_RUNS"
DATA_ENV = "MNIST_TUI_DATA"
CACHE_ENV = "MNIST_TUI_CACHE"
LOGS_ENV = "MNIST_TUI_LOGS"
# The four MNIST archives inside the package (package data, so the wheel carries them too).
SHIPPED_DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class Location:
    """One folder in use: what it holds, where it is, and what chose it."""

    role: str  # "runs", "data", "cache", ...
    path: Path
    source: str  # "--runs", "$MNIST_TUI_RUNS", "source checkout", "user data folder", ...

    def line(self) -> str:
        return f"{self.role:<14} {self.path}  ({self.source})"


def checkout_dir() -> Path | None:
    """The source checkout holding this package (an editable install), or None when installed."""
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").is_file() and (here / "mnist_tui").is_dir():
        return here
    return None


def cache_location() -> Location:
    """What mnist-tui can rebuild: $MNIST_TUI_CACHE, else the user's cache folder
    (~/.cache/mnist-tui on Linux, ~/Library/Caches/mnist-tui on macOS)."""
    if os.environ.get(CACHE_ENV):
        return Location("cache", Path(os.environ[CACHE_ENV]).expanduser(), f"${CACHE_ENV}")
    return Location("cache", platformdirs.user_cache_path(APP, appauthor=False), "user cache folder")


def cache_dir() -> Path:
    return cache_location().path


def kernel_cache_dir() -> Path:
    """The compiled fused CPU kernels (core/fused.py)."""
    return cache_dir() / "kernels"


def index_cache_dir() -> Path:
    """The runs folders' index files (core/store/index.py)."""
    return cache_dir() / "runs"


def log_location() -> Location:
    """Crash logs: $MNIST_TUI_LOGS, else the user's log folder
    (~/.local/state/mnist-tui/log on Linux, ~/Library/Logs/mnist-tui on macOS)."""
    if os.environ.get(LOGS_ENV):
        return Location("logs", Path(os.environ[LOGS_ENV]).expanduser(), f"${LOGS_ENV}")
    return Location("logs", platformdirs.user_log_path(APP, appauthor=False), "user log folder")


def _installed_default(name: str) -> Location:
    if name == "runs":
        return Location("runs", platformdirs.user_data_path(APP, appauthor=False) / "runs", "user data folder")
    if name == "data":  # the MNIST files extracted from the shipped archives: rebuildable
        cache = cache_location()
        return Location("data", cache.path / "data", cache.source)
    raise ValueError(f"no default folder named {name!r}")


def locate(explicit: str | os.PathLike[str] | None, env: str, name: str, option: str | None = None) -> Location:
    """The `name` folder ("runs" or "data"): the explicit path if given (from `option`), else
    $env if set, else the checkout's folder, else the installed copy's user folder."""
    if explicit:
        return Location(name, Path(explicit).expanduser(), option or f"--{name}")
    if os.environ.get(env):
        return Location(name, Path(os.environ[env]).expanduser(), f"${env}")
    checkout = checkout_dir()
    if checkout is not None:
        return Location(name, checkout / name, "source checkout")
    return _installed_default(name)


def resolve_dir(explicit: str | os.PathLike[str] | None, env: str, default_name: str) -> Path:
    """A folder: the explicit path if given, else $env if set, else its default (see locate)."""
    return locate(explicit, env, default_name).path


def where(runs: str | os.PathLike[str] | None = None, data: str | os.PathLike[str] | None = None) -> list[Location]:
    """Every folder mnist-tui uses with these --runs / --data values, and what chose each."""
    cache = cache_location()
    data_root = locate(data, DATA_ENV, "data")
    return [
        locate(runs, RUNS_ENV, "runs"),
        Location("data", data_root.path / "MNIST" / "raw", data_root.source),
        Location("shipped data", SHIPPED_DATA, "inside the package, read only"),
        cache,
        Location("kernel cache", kernel_cache_dir(), cache.source),
        Location("index cache", index_cache_dir(), cache.source),
        log_location(),
    ]
