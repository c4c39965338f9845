"""The core runs without a terminal UI, and listing runs never pays for torch."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_core_imports_no_ui_library():
    """The import contract: every module of mnist_tui.core, imported together, brings in no UI
    library and nothing of the package outside the core (the UI, the presentation, the CLI)."""
    mods = _modules_after(
        "import importlib, pkgutil, mnist_tui.core\nfor m in pkgutil.walk_packages(mnist_tui.core.__path__, 'mnist_tui.core.'): importlib.import_module(m.name)"
    )
    assert {"mnist_tui.core.train.loop", "mnist_tui.core.predict", "mnist_tui.core.store.follow"} <= mods  # every module was imported
    assert not {m for m in mods if m.split(".")[0] in {"textual", "rich", "plotext", "textual_plotext"}}
    assert not {m for m in mods if m.startswith("mnist_tui.") and not m.startswith("mnist_tui.core")} - {"mnist_tui.__main__"}


def test_listing_runs_does_not_import_torch(tmp_path):
    mods = _modules_after(
        f"from mnist_tui.core.store import list_runs; list_runs({str(tmp_path)!r})\nfrom mnist_tui import cli; cli.main(['runs', '--runs', {str(tmp_path)!r}])"
    )
    assert "mnist_tui.core.store.records" in mods
    assert "torch" not in mods
