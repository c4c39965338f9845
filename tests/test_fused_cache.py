"""The fused kernels' cache (core/kernel_cache.py): a planted or replaced library never runs,
a warm start runs no compiler, and a hung or failing compiler costs one bounded attempt that
later starts remember."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from torch import nn

from mnist_tui.core import fused, kernel_cache
from mnist_tui.core.events import RunStarted
from mnist_tui.core.train import train

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")

# A library with every kernel's name whose constructor leaves a marker: if dlopen ever
# opens it, the marker says so, whatever happens after.
PLANTED_C = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) { fputs("the planted library ran", f); fclose(f); }
}
int bn_relu_forward(void) { return 0; }
int bn_relu_backward(void) { return 0; }
int bn_pool_relu_forward(void) { return 0; }
int bn_pool_relu_backward(void) { return 0; }
"""


def _restart() -> None:
    """What a new trainer process would find: nothing built or checked in this one."""
    fused._library.cache_clear()
    fused.status.cache_clear()


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """An empty kernels folder of our own (made, as fused.py makes it, this user's alone)."""
    monkeypatch.setenv("MNIST_TUI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(fused.ENV_SWITCH, raising=False)
    monkeypatch.delenv(fused.ENV_MARCH, raising=False)
    _restart()
    folder = fused.cache_dir()
    folder.mkdir(parents=True, mode=0o700)
    yield folder
    _restart()


@pytest.fixture
def planted(tmp_path):
    """(the planted library, the marker its constructor writes), proven to write it."""
    marker = tmp_path / "marker"
    source = tmp_path / "planted.c"
    source.write_text(PLANTED_C)
    library = tmp_path / "planted.so"
    subprocess.run(["cc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(library), str(source)], check=True)
    subprocess.run([sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])", str(library)], check=True)
    assert marker.exists()  # loading it anywhere runs its code: the attack is real
    marker.unlink()
    return library, marker


def _compiler_script(tmp_path, body: str):
    """$CC as a shell script that appends its arguments to `calls`, then runs `body`."""
    calls = tmp_path / "calls"
    script = tmp_path / "cc-script"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n{body}\n')
    script.chmod(0o755)
    return script, calls


def _lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _train_first_event(small_config) -> RunStarted:
    started = next(iter(train(small_config.replace(epochs=1, limit=128, test_limit=128, precision="fp32"))))
    assert isinstance(started, RunStarted)
    return started


def _load_in_a_new_process(folder) -> None:
    """Load the kernels from `folder` as a new trainer process would (without torch, which
    takes seconds to import and has no say in what is loaded). A new process, since dlopen
    in this one would hand back a library it loaded before under the same name, and so hide
    what a trainer would load."""
    code = "import json, sys; from mnist_tui.core import kernel_cache as k; k.load(k.Path(sys.argv[1]), json.loads(sys.argv[2]), k.Path(sys.argv[3]))"
    args = [str(fused.SOURCE), json.dumps(fused.FLAG_SETS), str(folder)]
    subprocess.run([sys.executable, "-c", code, *args], check=True, timeout=120)


def _plant(kind: str, target, at) -> None:
    at.unlink(missing_ok=True)
    if kind == "symlink":
        at.symlink_to(target)
    else:  # a regular file of ours at the same name, with the permissions a build leaves
        shutil.copyfile(target, at)
        at.chmod(0o700)


@needs_cc
@pytest.mark.parametrize("kind", ["symlink", "replaced file"])
def test_a_library_planted_in_a_warm_cache_never_runs_and_training_stays_fused(kind, cache, planted):
    library, marker = planted
    assert fused.status() == "fused"
    [built] = list(cache.glob("bn_pool-*.so"))
    _plant(kind, library, built)
    _load_in_a_new_process(cache)
    assert not marker.exists()
    assert not built.is_symlink() and built.read_bytes() != library.read_bytes()  # built again in its place
    _restart()
    assert fused.status() == "fused"  # and checked against PyTorch's operations: training runs fused


@needs_cc
def test_a_symlink_planted_before_the_first_build_never_runs(cache, planted):
    library, marker = planted
    target = kernel_cache.library_path(fused.SOURCE, fused.FLAG_SETS, cache)
    original = library.read_bytes()
    target.symlink_to(library)
    assert fused.status() == "fused"
    assert not marker.exists()
    assert not target.is_symlink() and library.read_bytes() == original  # replaced, not written through


@needs_cc
def test_a_fifo_at_the_library_or_record_name_does_not_hang_the_start(cache):
    target = kernel_cache.library_path(fused.SOURCE, fused.FLAG_SETS, cache)
    os.mkfifo(target)
    os.mkfifo(target.with_suffix(".json"))
    assert fused.status() == "fused"
    assert target.is_file()


@needs_cc
def test_a_damaged_record_costs_a_build_not_the_kernels(cache):
    assert fused.status() == "fused"
    [record] = list(cache.glob("bn_pool-*.json"))
    for damage in ("{", json.dumps({**json.loads(record.read_text()), "sha256": "0" * 64})):  # not JSON; another library's
        record.write_text(damage)
        _restart()
        assert fused.status() == "fused"
        assert json.loads(record.read_text())["sha256"] != "0" * 64


@needs_cc
def test_a_warm_start_runs_no_compiler(cache, tmp_path, monkeypatch):
    script, calls = _compiler_script(tmp_path, 'exec cc "$@"')
    monkeypatch.setenv("CC", str(script))
    assert fused.status() == "fused"
    built = _lines(calls)
    assert built and not any("--version" in call for call in built)  # the first start builds, and only builds
    _restart()
    assert fused.status() == "fused"
    assert _lines(calls) == built


def _has_avx2() -> bool:
    try:
        return platform.machine() == "x86_64" and " avx2 " in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@needs_cc
@pytest.mark.skipif(not _has_avx2(), reason="builds for x86-64-v3 (AVX2), which only an x86 CPU with AVX2 can run")
def test_a_march_override_is_built_for_that_target_and_kept_apart_from_the_native_build(cache, tmp_path, monkeypatch):
    script, calls = _compiler_script(tmp_path, 'exec cc "$@"')
    monkeypatch.setenv("CC", str(script))
    assert fused.status() == "fused"
    [native] = list(cache.glob("bn_pool-*.so"))
    monkeypatch.setenv(fused.ENV_MARCH, "x86-64-v3")  # as an AVX2-only CPU would run them
    _restart()
    assert fused.status() == "fused"
    builds = _lines(calls)
    assert len(builds) == 2 and "-march=native" in builds[0]
    assert "-march=x86-64-v3" in builds[1] and "native" not in builds[1]
    libraries = set(cache.glob("bn_pool-*.so"))
    assert native in libraries and len(libraries) == 2  # another cache entry, the native one kept: switching back builds nothing
    monkeypatch.delenv(fused.ENV_MARCH)
    _restart()
    assert fused.status() == "fused" and len(_lines(calls)) == 2


@needs_cc
@pytest.mark.parametrize("value", ["native -o /tmp/x", "x86-64-v3;true", "$(id)", "Skylake", "a" * 41])
def test_a_march_override_that_is_not_a_target_is_refused_without_running_the_compiler(value, cache, tmp_path, monkeypatch):
    script, calls = _compiler_script(tmp_path, 'exec cc "$@"')
    monkeypatch.setenv("CC", str(script))
    monkeypatch.setenv(fused.ENV_MARCH, value)
    status = fused.status()
    assert status.startswith("PyTorch's operations") and f"{fused.ENV_MARCH}=" in status and "is not a -march target" in status
    assert _lines(calls) == []


@needs_cc
def test_a_march_target_the_compiler_does_not_know_fails_rather_than_building_another(cache, tmp_path, monkeypatch):
    script, calls = _compiler_script(tmp_path, 'exec cc "$@"')
    monkeypatch.setenv("CC", str(script))
    monkeypatch.setenv(fused.ENV_MARCH, "no-such-cpu")
    assert fused.status().startswith("PyTorch's operations (")
    tried = _lines(calls)
    assert tried and all("-march=no-such-cpu" in call for call in tried)  # never a build without the asked target
    assert list(cache.glob("bn_pool-*.so")) == []


def _gone(pid: int, within: float = 5.0) -> bool:
    """Whether the process has ended (a zombie counts: pid 1 here does not reap), allowing
    the kill a moment to land on a loaded machine (signals are delivered asynchronously)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_a_hung_compiler_costs_one_bounded_attempt_that_the_next_start_remembers(cache, tmp_path, monkeypatch):
    script, calls = _compiler_script(tmp_path, f'sleep 300 &\necho $! > "{tmp_path / "child"}"\necho $$ > "{tmp_path / "pid"}"\nwait')
    monkeypatch.setenv("CC", str(script))
    monkeypatch.setattr(kernel_cache, "BUILD_SECONDS", 1.0)
    began = time.monotonic()
    reason = fused.status()
    assert time.monotonic() - began < 5
    assert "did not finish the build within 1 s" in reason and "not tried again for a day" in reason
    first = _lines(calls)
    assert len(first) == 1  # one attempt: no other flag set waits on a hung compiler
    for pid_file in ("pid", "child"):  # the script and the child it started: none left running
        assert _gone(int((tmp_path / pid_file).read_text())), pid_file

    _restart()
    began = time.monotonic()
    again = fused.status()
    assert time.monotonic() - began < 1
    assert _lines(calls) == first  # not run again
    assert "did not finish the build within 1 s" in again and f"{fused.ENV_SWITCH}=rebuild" in again
    assert not fused.applies(nn.BatchNorm2d(8), torch.randn(4, 8, 6, 6).contiguous(memory_format=torch.channels_last))


def test_a_failed_build_is_retried_only_when_asked_after_a_day_or_when_the_compiler_changes(cache, tmp_path, monkeypatch):
    script, calls = _compiler_script(tmp_path, 'echo "error: no licence for this host" >&2\nexit 1')
    monkeypatch.setenv("CC", str(script))
    assert "no licence for this host" in fused.status()
    tried = len(_lines(calls))
    assert tried == len(fused.FLAG_SETS)

    _restart()
    assert "no licence for this host" in fused.status() and len(_lines(calls)) == tried  # remembered

    monkeypatch.setenv(fused.ENV_SWITCH, "rebuild")
    _restart()
    assert "no licence" in fused.status() and len(_lines(calls)) == 2 * tried
    monkeypatch.delenv(fused.ENV_SWITCH)

    monkeypatch.setattr(kernel_cache, "FAILURE_KEPT_SECONDS", 0.0)  # as if a day had passed
    _restart()
    fused.status()
    assert len(_lines(calls)) == 3 * tried
    monkeypatch.setattr(kernel_cache, "FAILURE_KEPT_SECONDS", 24 * 3600.0)
    script.write_text(script.read_text() + "# upgraded\n")  # another compiler: another key
    _restart()
    fused.status()
    assert len(_lines(calls)) == 4 * tried


def test_a_run_without_the_kernels_names_the_remembered_reason(cache, tmp_path, monkeypatch, small_config):
    script, _ = _compiler_script(tmp_path, 'echo "error: no licence for this host" >&2\nexit 1')
    monkeypatch.setenv("CC", str(script))
    fused.status()
    _restart()
    warning = _train_first_event(small_config).warning
    assert warning is not None and "without the fused CPU kernels" in warning and "no licence for this host" in warning
