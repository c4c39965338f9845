"""What the command line promises a user: a crash says so and where its traceback is, a
detached run is listed once the command returns, hints name a command that runs, one figure
for the quick recipe's time, and lines that read well (an 8; no dangling separator)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from textual.app import App

from mnist_tui import cli


class _Crashes(App):
    """An app whose handler raises after its first refresh, as a bug in a screen would."""

    def on_mount(self) -> None:
        self.call_after_refresh(self.boom)

    def boom(self) -> None:
        raise RuntimeError("a bug in a handler")


class _Quits(App):
    def on_mount(self) -> None:
        self.call_after_refresh(self.exit)


def test_a_crashed_app_exits_1_and_leaves_its_traceback_in_a_log_it_names(tmp_path, capsys):
    code = cli.run_app(_Crashes(), log_dir=tmp_path / "logs", headless=True)
    assert code == 1
    [log] = (tmp_path / "logs").iterdir()
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: a bug in a handler" in text and "in boom" in text
    err = capsys.readouterr().err
    assert f"the full traceback is in {log}" in err and "RuntimeError: a bug in a handler" in err


def test_an_app_that_quits_exits_0_and_leaves_no_log(tmp_path):
    assert cli.run_app(_Quits(), log_dir=tmp_path / "logs", headless=True) == 0
    assert not (tmp_path / "logs").exists()


def test_crash_logs_go_to_the_users_log_folder_or_mnist_tui_logs(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_TUI_LOGS", str(tmp_path))
    assert cli.crash_log_dir() == tmp_path
    monkeypatch.delenv("MNIST_TUI_LOGS")
    assert cli.crash_log_dir().parts[-2:] in (("mnist-tui", "log"), ("Logs", "mnist-tui"), ("mnist-tui", "Logs"))


def _script(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "mnist-tui"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return script


def test_hints_name_mnist_tui_only_where_that_name_on_path_is_this_install(monkeypatch, tmp_path):
    from mnist_tui.present import command_name, run_hint

    monkeypatch.chdir(tmp_path)
    ours = _script(tmp_path / "venv" / "bin")
    monkeypatch.setattr(sys, "argv", [str(ours)])  # started as venv/bin/mnist-tui, not on PATH
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name() == "venv/bin/mnist-tui"
    assert "follow it: venv/bin/mnist-tui follow abcdef" in run_hint(tmp_path / "runs" / "20261128T000000Z-v4-abcdef")
    monkeypatch.setenv("PATH", f"{_script(tmp_path / 'other').parent}:/usr/bin")  # another install's mnist-tui
    assert command_name() == "venv/bin/mnist-tui"
    monkeypatch.setenv("PATH", f"{ours.parent}:/usr/bin")  # the venv activated
    assert command_name() == "mnist-tui"


def test_without_a_script_hints_say_python_m_mnist_tui(monkeypatch, tmp_path):
    import sysconfig

    from mnist_tui.present import command_name

    monkeypatch.setattr(sys, "argv", ["-c"])
    monkeypatch.setattr(sysconfig, "get_path", lambda *args: str(tmp_path))  # no script installed
    assert command_name() in ("python -m mnist_tui", f"{sys.executable} -m mnist_tui")


def test_the_command_a_hint_names_runs_in_a_shell_without_the_venv_on_path(tmp_path):
    shell = {**os.environ, "PATH": "/usr/bin:/bin"}  # after `make run`: .venv/bin is not on PATH
    ask = [sys.executable, "-c", "from mnist_tui.present import command_name; print(command_name())"]
    named = subprocess.run(ask, capture_output=True, text=True, env=shell, check=True).stdout.strip()
    assert named != "mnist-tui"
    ran = subprocess.run(f"{named} --version", shell=True, capture_output=True, text=True, env=shell)
    assert ran.returncode == 0 and ran.stdout.startswith("mnist-tui "), ran.stderr
