"""The bell and the desktop notification when a followed run ends: in the app, in `follow`
and in `train --notify`."""

from __future__ import annotations

import pytest
from textual.drivers.headless_driver import HeadlessDriver

from mnist_tui import cli
from mnist_tui.present.notify import sequences
from mnist_tui.ui.app import MnistTuiApp
from tests.ui_helpers import InProcessLauncher, press, type_into, wait_for_run_end, write_run

NAME = "20261101T100000Z-v2-aaaaaa"


@pytest.mark.parametrize(
    "environ, sent",
    [
        ({"MNIST_TUI_NOTIFY": "off"}, ""),
        ({"MNIST_TUI_NOTIFY": "no"}, ""),
        ({"MNIST_TUI_NOTIFY": "bell"}, "\a"),
        ({"MNIST_TUI_NOTIFY": "osc9"}, "\a\x1b]9;mnist-tui: run x ended\a"),
        ({"MNIST_TUI_NOTIFY": "osc777"}, "\a\x1b]777;notify;mnist-tui;run x ended\a"),
        ({"TERM_PROGRAM": "iTerm.app"}, "\a\x1b]9;mnist-tui: run x ended\a"),
        ({"TERM": "foot"}, "\a\x1b]777;notify;mnist-tui;run x ended\a"),
        ({"TERM": "xterm-256color"}, "\a\x1b]9;mnist-tui: run x ended\a\x1b]777;notify;mnist-tui;run x ended\a"),
        ({"TERM": "foot", "TMUX": "/tmp/tmux-0/default,1,0"}, "\a\x1bPtmux;\x1b\x1b]777;notify;mnist-tui;run x ended\a\x1b\\"),
    ],
)
def test_the_setting_and_the_terminal_choose_what_is_sent(environ, sent):
    assert sequences("mnist-tui", "run x ended", environ) == sent


def test_text_from_run_files_cannot_end_the_sequence_or_add_fields():
    sent = sequences("mnist-tui", "run \x1b]0;pwned\a x; y\nz", {"MNIST_TUI_NOTIFY": "osc777"})
    assert sent == "\a\x1b]777;notify;mnist-tui;run  x, y z\a"  # the whole sequence taken out


@pytest.fixture
def written(monkeypatch):
    """What the app writes to the terminal (the headless driver drops it otherwise)."""
    out: list[str] = []
    monkeypatch.setattr(HeadlessDriver, "write", lambda self, data: out.append(data))
    return out


@pytest.mark.parametrize("setting", ["both", "off"])
async def test_the_app_rings_and_notifies_when_the_followed_run_ends(tmp_path, monkeypatch, written, setting):
    monkeypatch.setenv("MNIST_TUI_NOTIFY", setting)
    app = MnistTuiApp(runs_dir=tmp_path, launcher=InProcessLauncher())
    async with app.run_test(size=(120, 40)) as pilot:
        await type_into(pilot, "#field-epochs", "1")
        await type_into(pilot, "#field-limit", "128")
        await type_into(pilot, "#field-test_limit", "128")
        await press(pilot, "ctrl+s")
        await wait_for_run_end(pilot)
    [run] = [p.name for p in tmp_path.iterdir() if p.is_dir()]
    text = "".join(written)
    if setting == "off":
        assert "\x1b]9;" not in text and "\x1b]777;" not in text
    else:
        assert f"\x1b]9;mnist-tui: {run} finished" in text and f"\x1b]777;notify;mnist-tui;{run} finished" in text and "\a" in text


def test_follow_notifies_when_asked_and_not_into_a_pipe_by_default(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MNIST_TUI_NOTIFY", "osc9")
    write_run(tmp_path, NAME, "v2", "finished", [98.0, 99.0], epochs_total=2)
    assert cli.main(["follow", NAME, "--runs", str(tmp_path), "--notify"]) == 0
    assert f"\a\x1b]9;mnist-tui: {NAME} finished: 99.00% after 2 epochs\a" in capsys.readouterr().out
    assert cli.main(["follow", NAME, "--runs", str(tmp_path)]) == 0  # stdout is no terminal here: nothing but lines
    assert "\x1b" not in capsys.readouterr().out


def test_train_notify_rings_at_the_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MNIST_TUI_NOTIFY", "osc777")
    argv = ["train", "--model", "v4", "--epochs", "1", "--limit", "64", "--test-limit", "64", "--device", "cpu", "--runs", str(tmp_path), "--now"]
    assert cli.main([*argv, "--notify"]) == 0
    assert "\x1b]777;notify;mnist-tui;" in capsys.readouterr().out
    assert cli.main(argv) == 0  # off unless asked
    assert "\x1b" not in capsys.readouterr().out
