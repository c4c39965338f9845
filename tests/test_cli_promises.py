"""What the command line promises a user: a crash says so and where its traceback is, a
detached run is listed once the command returns, hints name a command that runs, one figure
for the quick recipe's time, and lines that read well (an 8; no dangling separator)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.app import App

from mnist_tui import cli
from mnist_tui.cli import detach
from mnist_tui.core.store import read_run
from tests.builders import written_run


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
    from mnist_tui.present.text import command_name, run_hint

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

    from mnist_tui.present.text import command_name

    monkeypatch.setattr(sys, "argv", ["-c"])
    monkeypatch.setattr(sysconfig, "get_path", lambda *args: str(tmp_path))  # no script installed
    assert command_name() in ("python -m mnist_tui", f"{sys.executable} -m mnist_tui")


def test_the_command_a_hint_names_runs_in_a_shell_without_the_venv_on_path(tmp_path):
    shell = {**os.environ, "PATH": "/usr/bin:/bin"}  # after `make run`: .venv/bin is not on PATH
    ask = [sys.executable, "-c", "from mnist_tui.present.text import command_name; print(command_name())"]
    named = subprocess.run(ask, capture_output=True, text=True, env=shell, check=True).stdout.strip()
    assert named != "mnist-tui"
    ran = subprocess.run(f"{named} --version", shell=True, capture_output=True, text=True, env=shell)
    assert ran.returncode == 0 and ran.stdout.startswith("mnist-tui "), ran.stderr


TINY = ("--model", "v4", "--epochs", "1", "--limit", "256", "--test-limit", "500", "--device", "cpu")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mnist_tui", *args]


@pytest.mark.slow
def test_train_detach_returns_once_runs_lists_the_run_it_printed(tmp_path):
    runs = tmp_path / "runs"
    started = subprocess.run(_cli("train", *TINY, "--runs", str(runs), "--detach"), capture_output=True, text=True, timeout=180)
    listed = subprocess.run(_cli("runs", "--runs", str(runs)), capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.split()[1].rstrip(":")
    assert "-v4-" in run_id and run_id in listed.stdout, listed.stdout
    assert started.stdout.splitlines()[1].startswith("follow it: ") and started.stderr == ""  # no spinner off a terminal
    deadline = time.monotonic() + 120  # let the trainer end before its folder is removed
    while read_run(runs / run_id).status == "running":
        assert time.monotonic() < deadline, "the tiny run did not end in 120 s"
        time.sleep(0.2)
    assert read_run(runs / run_id).status == "finished"


@pytest.mark.slow
def test_resume_detach_returns_once_its_trainer_has_taken_the_run_over(tmp_path):
    import threading

    from mnist_tui.core.events import EpochFinished
    from mnist_tui.core.train import train
    from mnist_tui.core.versions import get_version

    runs = tmp_path / "runs"
    stop = threading.Event()
    config = get_version("v4").config(epochs=2, limit=256, test_limit=500, device="cpu", runs_dir=str(runs))
    for ev in train(config, stop):
        if isinstance(ev, EpochFinished):
            stop.set()  # stopped after its first epoch: a run to resume
    [run_dir] = runs.iterdir()
    assert read_run(run_dir).status == "stopped"
    resumed = subprocess.run(_cli("resume", run_dir.name[-6:], "--runs", str(runs), "--detach"), capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"run {run_dir.name}: resuming in the background") and read_run(run_dir).status in ("running", "finished")
    deadline = time.monotonic() + 120
    while read_run(run_dir).status == "running":
        assert time.monotonic() < deadline, "the resumed run did not end in 120 s"
        time.sleep(0.2)
    assert read_run(run_dir).epochs_done == 2


class _Starting:
    """A Launch whose trainer is still starting (importing torch, reading MNIST)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.log, self.process = run_dir, run_dir.parent / f".{run_dir.name}.log", None

    def ended(self) -> bool:
        return False


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_detach_waiting_on_a_terminal_shows_a_spinner_and_gives_up_waiting_in_bounded_time(monkeypatch, tmp_path, capsys):
    import threading

    polls = iter(range(1_000_000))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    launch = _Starting(tmp_path / "20261128T000000Z-v4-abcdef")
    assert detach.detached(launch, "training", lambda: next(polls) > 3, threading.Event(), new_run=True) == 0
    assert "starting the trainer" in terminal.getvalue()  # the spinner's line, while it waited
    assert "run 20261128T000000Z-v4-abcdef: training in the background" in capsys.readouterr().out

    monkeypatch.setattr(detach, "START_WAIT_S", 0.3)
    t0 = time.monotonic()
    assert detach.detached(launch, "training", lambda: False, threading.Event(), new_run=True) == 0
    assert time.monotonic() - t0 < 5
    assert f"the trainer is still starting (not ready after 0 s); it logs to {launch.log}" in terminal.getvalue()


@pytest.mark.parametrize("bf16", [False, True])
def test_the_quick_recipes_time_is_one_figure_from_the_registry_in_help_and_picker(monkeypatch, capsys, bf16):
    from mnist_tui.core import hardware
    from mnist_tui.core.versions import QUICK
    from mnist_tui.present.times import duration
    from mnist_tui.ui.widgets.version_picker import version_label

    monkeypatch.setattr(hardware, "cpu_bf16_native", lambda: bf16)
    mode = "bf16" if bf16 else "fp32"
    took = QUICK.expected_seconds(QUICK.recipe.epochs, mode)
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"about {duration(took)} on a 2-core CPU in {mode}" in help_text
    assert version_label("quick").endswith(duration(took, "compact"))  # the app's picker: the same figure


def test_digits_are_named_with_the_article_they_are_read_with():
    from mnist_tui.present.text import digit_caption, with_article

    assert [with_article(d) for d in range(10)] == ["a 0", "a 1", "a 2", "a 3", "a 4", "a 5", "a 6", "a 7", "an 8", "a 9"]
    assert (with_article(11), with_article(18), with_article(80), with_article("18,000"), with_article(110)) == (
        "an 11",
        "an 18",
        "an 80",
        "an 18,000",
        "a 110",
    )
    assert digit_caption(61, 8) == "test digit #61 (an 8)"


async def test_asking_why_about_a_mistaken_8_names_it_an_8(tmp_path, monkeypatch):
    from textual.widgets import DataTable

    from mnist_tui.ui.app import MnistTuiApp
    from mnist_tui.ui.screens.mistakes import MistakesScreen
    from mnist_tui.ui.screens.why import WhyScreen
    from tests.test_mistakes import _fixed_screen
    from tests.ui_helpers import drained, press, wait_until

    app = MnistTuiApp(runs_dir=tmp_path, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await _fixed_screen(monkeypatch)(pilot)
        screen = app.screen
        assert isinstance(screen, MistakesScreen)
        screen.query_one("#matrix", DataTable).move_cursor(row=8, column=10)  # 8s read as 9s
        await drained(pilot)
        await wait_until(pilot, lambda: screen.shown_digits and screen.shown_digits[0].label == 8)
        await press(pilot, "y")
        await wait_until(pilot, lambda: isinstance(app.screen, WhyScreen))
        assert app.screen.what == f"test digit #{screen.shown_digits[screen.selected].index} (an 8)"


def _started(**changes):
    from mnist_tui.core.events import RunStarted
    from mnist_tui.core.versions import get_version

    name = "20261101T100000Z-v4-aaaaaa"
    facts = dict(run_id=name, run_dir=Path("runs", name), config=get_version("v4").config(), device="cpu", device_name="CPU, 2 threads")
    facts.update(params=7_432, precision="bf16", train_size=60_000, test_size=10_000, batches_per_epoch=938)
    return RunStarted(**{**facts, **changes})


@pytest.mark.parametrize("width", [30, 60, 80, 100, 120, 160])
def test_the_run_line_breaks_between_whole_parts_never_after_a_separator(width):
    from rich.console import Console

    from mnist_tui.present.training import started_line

    line = started_line(_started())
    console = Console(width=width, record=True, color_system=None)
    console.print(line)
    rows = console.export_text().rstrip("\n").splitlines()
    parts = line.plain.split(" · ")
    assert parts[0] == "v4" and parts[-1] == "20261101T100000Z-v4-aaaaaa"
    shown = []
    for row in rows:
        assert not row.rstrip().endswith("·") and not row.lstrip().startswith("·") and len(row.rstrip()) <= width
        shown += row.strip().split(" · ")
    # Each part once, in order, whole: only one wider than the whole line is cut, with '…'.
    assert len(shown) == len(parts)
    assert all(s == p or (len(p) > width and s.endswith("…") and p.startswith(s[:-1])) for s, p in zip(shown, parts))


async def test_every_versions_layer_table_fits_the_layers_screen_at_80x24_share_bar_and_macs_included(tmp_path):
    from textual.widgets import DataTable, OptionList

    from mnist_tui.core.versions import VERSIONS
    from mnist_tui.ui.app import MnistTuiApp
    from tests.ui_helpers import settle, wait_until

    app = MnistTuiApp(runs_dir=tmp_path, start_mode="layers")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        for index, model in enumerate(VERSIONS):
            screen.query_one("#layer-versions", OptionList).highlighted = index
            await wait_until(pilot, lambda model=model: screen.breakdown is not None and screen.breakdown.model == model)
            await settle(pilot)
            table = screen.query_one("#layer-table", DataTable)
            assert [str(c.label) for c in table.ordered_columns] == ["layer", "output", "params", "share", "MACs"]
            assert table.max_scroll_x == 0, f"{model}'s table scrolls sideways at 80 columns"
            assert "█" in "".join(str(table.get_cell_at((r, 3))) for r in range(table.row_count))  # the share bars


@pytest.mark.parametrize(
    "stdin, deleted, said",
    [("n\n", False, "kept"), ("y\n", True, "deleted"), ("", False, "no answer was given (--yes deletes without asking)"), (None, False, "no answer was given")],
    ids=["piped-no", "piped-yes", "no-input", "stdin-closed"],
)
def test_delete_asks_even_when_its_answer_is_piped(tmp_path, stdin, deleted, said):
    """`echo n | mnist-tui delete RUN` keeps the run (it deleted it unasked when stdin was no
    terminal); a script that gives no answer keeps it too, and is told of --yes; so does one
    started with stdin closed (`<&-`), where input() has no stdin at all."""
    run = written_run(tmp_path / "runs")
    how = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL, "preexec_fn": lambda: os.close(0)}
    done = subprocess.run(_cli("delete", run.name, "--runs", str(tmp_path / "runs")), capture_output=True, text=True, timeout=60, **how)
    assert "Delete run" in done.stderr and said in done.stdout + done.stderr  # asked on stderr, as rm -i asks
    assert done.returncode == (0 if deleted else 1) and run.exists() != deleted


@pytest.mark.parametrize(
    "answer, env",
    [(b"\xff\xfe\n", {"PYTHONIOENCODING": "utf-8:strict"}), (b"y" * 3_000_000, {}), (b" yes\x00\n", {})],
    ids=["bytes-that-are-no-text", "an-endless-line", "a-nul"],
)
def test_an_answer_that_is_no_plain_yes_keeps_the_run_without_a_traceback(tmp_path, answer, env):
    run = written_run(tmp_path / "runs")
    done = subprocess.run(_cli("delete", run.name, "--runs", str(tmp_path / "runs")), input=answer, capture_output=True, timeout=60, env={**os.environ, **env})
    assert done.returncode == 1 and run.exists() and b"Traceback" not in done.stderr and b"kept" in done.stdout


def test_delete_says_a_run_is_training_before_asking(tmp_path):
    """A run that trains cannot be deleted: that is said at once, not after a `y`."""
    from mnist_tui.core.store import RunWriter

    writer = RunWriter.create(tmp_path / "runs", "v2", {"config": {"model": "v2", "recipe": {"epochs": 2}}})
    try:
        done = subprocess.run(_cli("delete", writer.path.name, "--runs", str(tmp_path / "runs")), input="y\n", capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "is still training" in done.stderr and "Delete run" not in done.stdout + done.stderr and writer.path.exists()
    finally:
        writer.close("stopped")


def test_ctrl_c_at_the_delete_question_keeps_the_run_and_says_so_on_a_line_of_its_own(tmp_path):
    import signal

    run = written_run(tmp_path / "runs")
    proc = subprocess.Popen(_cli("delete", run.name, "--runs", str(tmp_path / "runs")), stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    asked = b""
    while b"[y/N]" not in asked:  # the question has no newline: read it byte by byte
        byte = proc.stderr.read(1)
        assert byte, asked
        asked += byte
    proc.send_signal(signal.SIGINT)
    err = asked + proc.stderr.read()
    assert proc.wait(timeout=60) == 130 and b"\nmnist-tui: interrupted" in err and run.exists()
