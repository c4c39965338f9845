"""A run's reproducibility stamp: the code (git commit, uncommitted diff) and the machine
(Python, torch, CUDA, cuDNN, CPU, GPU) it started with, recorded in config.json.

Nothing here may keep a run from starting: git may be missing, slow, or looking at a
checkout that is not this package's; each git call has a timeout, every failure becomes a
`git_problem` in words, and no exception leaves make_stamp.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from mnist_tui import __version__
from mnist_tui.core import hardware
from mnist_tui.core.store import files
from mnist_tui.core.store.provenance import CODE_DIFF

GIT_TIMEOUT_S = 3.0  # each git call; a repository on a slow network disk answers in this
DIFF_KEPT = 256 << 10  # code.diff is saved up to this size; its sha256 is recorded always
DIFF_READ_CAP = 64 << 20  # a diff beyond this is not hashed (someone committed a dataset)
FLAGS_CAP = 4000  # characters of the CPU's flags kept
SOURCE = Path(__file__).resolve().parent.parent.parent  # the folder holding mnist_tui/


def _git(source: Path, *args: str) -> bytes:
    """git's output in `source`; OSError, subprocess errors or TimeoutExpired on failure."""
    env = {
        **os.environ,
        "GIT_OPTIONAL_LOCKS": "0",  # never take the index lock: others may be committing
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }
    done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, timeout=GIT_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL, check=True)
    return done.stdout


def git_state(source: Path = SOURCE) -> tuple[dict[str, Any] | None, str, bytes]:
    """(git's fields, why there are none, the diff) of the checkout at `source`: only when
    `source` is the top of a git work tree (a package installed inside some other repository,
    a virtual environment in a project, is no checkout of this code)."""
    try:
        top, commit = _git(source, "rev-parse", "--show-toplevel", "HEAD").decode().split()[:2]
    except FileNotFoundError:
        return None, "git is not installed", b""
    except subprocess.TimeoutExpired:
        return None, f"git did not answer within {GIT_TIMEOUT_S:g} s", b""
    except (OSError, subprocess.CalledProcessError, UnicodeDecodeError, ValueError):
        return None, "not a git checkout", b""
    try:
        if Path(top).resolve() != Path(source).resolve():
            return None, "not a git checkout", b""
        diff = _git(source, "diff", "HEAD", "--no-ext-diff", "--no-color", "--binary")
    except subprocess.TimeoutExpired:
        return None, f"git did not answer within {GIT_TIMEOUT_S:g} s", b""
    except (OSError, subprocess.CalledProcessError):
        return None, "git could not say whether the checkout has changes", b""
    if len(diff) > DIFF_READ_CAP:
        return {"commit": commit, "dirty": True, "diff_sha256": None, "diff_bytes": len(diff), "diff_saved": False}, "", b""
    fields = {
        "commit": commit,
        "dirty": bool(diff),
        "diff_sha256": hashlib.sha256(diff).hexdigest() if diff else None,
        "diff_bytes": len(diff),
        "diff_saved": bool(diff) and len(diff) <= DIFF_KEPT,
    }
    return fields, "", diff


def cpu_model() -> tuple[str, str]:
    """The CPU's model name and flags (Linux's /proc/cpuinfo; elsewhere what platform says)."""
    info = hardware.cpu_info()
    return info.get("model") or platform.processor() or platform.machine(), info.get("flags", "")[:FLAGS_CAP]


def machine() -> dict[str, str | None]:
    """Python, torch, CUDA, cuDNN, CPU and GPU, as this process sees them."""
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None  # type: ignore[no-untyped-call]  # torch leaves both untyped
    gpu = None
    try:
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(torch.cuda.current_device())
    except Exception:  # a driver in a bad state names no GPU; the run says so itself
        gpu = None
    cpu, flags = cpu_model()
    return {
        "mnist_tui": __version__,
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        # cuDNN's integer version (90100) as 9.1.0
        "cudnn": None if cudnn is None else f"{cudnn // 10000}.{cudnn // 100 % 100}.{cudnn % 100}" if cudnn >= 10000 else str(cudnn),
        "cpu": cpu,
        "cpu_flags": flags,
        "gpu": gpu,
    }


def make_stamp(source: Path = SOURCE) -> tuple[dict[str, Any], bytes]:
    """config.json's stamp, and the diff to keep as code.diff (b"" when clean or too large)."""
    git, problem, diff = git_state(source)
    try:
        found = machine()
    except Exception as exc:  # a half-installed CUDA stack: the run trains on, the stamp says less
        found = {"mnist_tui": __version__, "python": sys.version.split()[0], "torch": f"unknown ({type(exc).__name__})"}
    stamp: dict[str, Any] = {**found, "git": git}
    if problem:
        stamp["git_problem"] = problem
    return stamp, diff if git is not None and git["diff_saved"] else b""


def save_diff(run_dir: Path, diff: bytes) -> None:
    """code.diff beside config.json; a failure to write it never stops the run (config.json
    then says it was not saved)."""
    if diff:
        files.write_atomic(Path(run_dir) / CODE_DIFF, lambda fh: fh.write(diff), binary=True)
