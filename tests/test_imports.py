"""The core runs without a terminal UI, and listing runs never pays for torch."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_core_imports_no_ui_library():
    mods = _modules_after(
        "import mnist_tui.core.config, mnist_tui.core.data, mnist_tui.core.engine, mnist_tui.core.events, "
        "mnist_tui.core.layers, mnist_tui.core.nets, mnist_tui.core.store, mnist_tui.core.store.follow, mnist_tui.core.versions"
    )
    assert "mnist_tui.core.engine" in mods
    assert not {m for m in mods if m.split(".")[0] in {"textual", "rich", "plotext", "textual_plotext"}}


def test_listing_runs_does_not_import_torch(tmp_path):
    mods = _modules_after(f"from mnist_tui.core.store import list_runs; list_runs({str(tmp_path)!r})\nfrom mnist_tui import cli; cli.main(['runs', '--runs', {str(tmp_path)!r}])")
    assert "mnist_tui.core.store.records" in mods
    assert "torch" not in mods
