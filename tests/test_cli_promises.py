"""What the command line promises a user: a crash says so and where its traceback is, a
detached run is listed once the command returns, hints name a command that runs, one figure
for the quick recipe's time, and lines that read well (an 8; no dangling separator)."""

from __future__ import annotations

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
