"""Shared fixtures: small, CPU-only training configs writing into a temporary runs folder."""

from __future__ import annotations

import pytest

from mnist_tui.core.versions import get_version


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def small_config(runs_dir):
    """v2 on 256 training images for 2 epochs, evaluated on the full test set."""
    return get_version("v2").config(epochs=2, limit=256, device="cpu", runs_dir=str(runs_dir), progress_every=1)
