"""Shared fixtures: small, CPU-only training configs writing into a temporary runs folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, settings

from mnist_tui.core.versions import get_version
from tests.builders import REFERENCE_ARGS

# Hypothesis profiles, chosen by $HYPOTHESIS_PROFILE. "ci" (the default, `make test`): the
# same examples on every run (derandomized, no example database), so a red CI reproduces;
# no deadline, since the shared 2-core machine makes any one example's time meaningless.
# "slow" (`make test-slow`): five times the examples, derandomized as well, so that a CI
# run that fails fails again the same way. Tests of tests/test_properties.py size their example counts from the
# profile's max_examples (100 in ci), so the same knob scales them.
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "slow", max_examples=500, derandomize=True, database=None, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """`mnist-tui train` run once, piped, to the end: (its completed process, its runs folder)."""
    runs = tmp_path_factory.mktemp("reference") / "runs"
    result = subprocess.run([sys.executable, "-m", "mnist_tui", "train", *REFERENCE_ARGS, "--runs", str(runs)], capture_output=True, text=True)
    return result, runs


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def small_config(runs_dir):
    """v2 on 256 training images for 2 epochs, evaluated on the first 500 test images."""
    return get_version("v2").config(epochs=2, limit=256, test_limit=500, device="cpu", runs_dir=str(runs_dir), progress_every=1, progress_seconds=0)


@pytest.fixture
def fixture_runs(tmp_path, monkeypatch):
    """The fixture run store at the relative path `runs`, so the screen text never varies."""
    from tests.ui_helpers import fixture_store

    monkeypatch.chdir(tmp_path)
    fixture_store(tmp_path / "runs")
    return "runs"


@pytest.fixture
def kernels():
    """The fused CPU kernels, built and checked. Skipped only where there is no C compiler
    (or MNIST_TUI_FUSED=0 turned them off); where a compiler is, kernels that do not build or
    fail their start-up check fail the test, so that CI cannot go green with them untested."""
    from mnist_tui.core import fused, kernel_cache

    try:
        kernel_cache.compiler()
    except kernel_cache.KernelError as exc:
        pytest.skip(f"needs a C compiler: {exc}")
    if os.environ.get(fused.ENV_SWITCH) == "0":
        pytest.skip(f"the fused kernels are turned off by {fused.ENV_SWITCH}=0")
    status = fused.status()
    assert status == "fused", f"a C compiler is here, but the fused kernels are not usable: {status}"


needs_kernels = pytest.mark.usefixtures("kernels")


@pytest.fixture(scope="session", autouse=True)
def one_thread_per_parallel_worker():
    """Under pytest-xdist (`-n 2`) the workers share the cores: each trains on one thread,
    not on every core as the engine would, so that two workers do not fight for two cores.
    Session-wide, so that the session fixtures' training runs on one thread too."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    import torch

    from mnist_tui.core.train import ranks as engine

    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "cpu_threads", lambda world: 1)
        yield


@pytest.fixture(autouse=True)
def two_cores_no_gpus(monkeypatch):
    """Screens as on the project's 2-core machine, whatever runs the tests (the Train form
    hides its Processes field there), so that snapshots do not depend on the host."""
    from mnist_tui.core import hardware

    monkeypatch.setattr(hardware, "several_processes_pay", lambda: False)


def _trained(tmp_path_factory, name: str, run_name: str | None = None, **settings):
    from mnist_tui.core.store import list_runs
    from mnist_tui.core.train import train

    runs = tmp_path_factory.mktemp(name) / "runs"
    for _event in train(get_version(name).config(device="cpu", runs_dir=str(runs), **settings), run_name=run_name):
        pass
    [record] = list_runs(runs)
    return record


@pytest.fixture(scope="session")
def trained_v4_run(tmp_path_factory):
    """v4 trained for one epoch on 1,000 images, evaluated on all 10,000 test images."""
    return _trained(tmp_path_factory, "v4", run_name="20261128T000000Z-v4-5eed00", epochs=1, limit=1000)


@pytest.fixture(scope="session")
def trained_v3_run(tmp_path_factory):
    """v3 trained for one epoch on 12,000 images (about 96% accurate), tested on 500."""
    return _trained(tmp_path_factory, "v3", epochs=1, limit=12000, test_limit=500)
