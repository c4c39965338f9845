"""The headless command line as users and scripts meet it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from mnist_tui import __version__, cli


def _run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "mnist_tui", *args], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["--model", "v9"], "invalid choice: 'v9'"),
        (["--epochs", "0"], "--epochs: must be greater than 0"),
        (["--batch-size", "-3"], "--batch-size: must be greater than 0"),
        (["--lr", "0"], "--lr: must be a positive number"),
        (["--lr", "fast"], "--lr: 'fast' is not a number"),
        (["--seed", "-1"], "--seed: must be 0 or more"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
        (["--nproc", "3"], "batch size 128 does not split evenly between 3 processes; choose a multiple of 3"),
        (["--nproc", "0"], "--nproc: must be greater than 0"),
        (["--target", "101"], "target test accuracy must be a percentage above 0 and at most 100, got 101.0"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, complaint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert complaint in err and err.startswith("usage: mnist-tui train")


def test_version(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"mnist-tui {__version__}"


@pytest.mark.parametrize("model, total", [("v1", "420,614"), ("v2", "99,746")])
def test_layers_prints_the_breakdown_and_total(model, total, capsys):
    assert cli.main(["layers", model]) == 0
    out = capsys.readouterr().out
    assert f"Total params: {total}" in out and "Conv2d-1" in out
    assert cli.main(["layers", model, "--classic"]) == 0
    assert f"Total params: {total}" in capsys.readouterr().out


def test_layers_without_a_model_compares_versions(capsys):
    assert cli.main(["layers"]) == 0
    out = capsys.readouterr().out
    assert "420,614" in out and "99,746" in out and "98.47%" in out and "99.55%" in out


@pytest.mark.slow
def test_piped_training_prints_one_line_per_epoch_and_the_run_lists(reference_run):
    result, runs = reference_run  # train --model v4 --epochs 2 --limit 256, stdout a pipe
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"]
    assert all("test loss" in line and "img/s" in line for line in epoch_lines)
    assert len(lines) == 4  # started, two epochs, finished: no progress noise in logs
    final_acc = epoch_lines[-1].split("acc ")[2].split("%")[0]

    listing = _run("runs", "--runs", str(runs))
    assert listing.returncode == 0
    assert "finished" in listing.stdout and "2/2" in listing.stdout and final_acc in listing.stdout


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_saves_the_run_as_stopped(tmp_path):
    runs = str(tmp_path / "runs")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_tui",
            "train",
            "--model",
            "v2",
            "--epochs",
            "20",
            "--limit",
            "256",
            "--test-limit",
            "500",
            "--runs",
            runs,
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:  # wait until one epoch is on disk
        if line.startswith("epoch 1/20"):
            break
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    listing = _run("runs", "--runs", runs)
    assert "stopped" in listing.stdout
    [run_dir] = os.listdir(runs)
    assert os.path.exists(os.path.join(runs, run_dir, "checkpoint.pt"))


@pytest.mark.slow
def test_missing_cuda_is_a_clear_message(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = _run("train", "--device", "cuda", "--limit", "256", "--epochs", "1", "--runs", str(tmp_path))
    assert result.returncode == 1
    assert "no usable CUDA GPU" in result.stderr and "Traceback" not in result.stderr


def test_the_app_takes_its_folders_without_the_word_tui(monkeypatch, tmp_path):
    opened = []
    monkeypatch.setattr(cli, "cmd_tui", lambda runs, data, screen: opened.append((runs, data, screen)) or 0)
    assert cli.main(["--runs", str(tmp_path / "r"), "--data", str(tmp_path / "d"), "--open", "runs"]) == 0
    assert cli.main(["tui", "--runs", str(tmp_path / "r")]) == 0
    assert opened == [(str(tmp_path / "r"), str(tmp_path / "d"), "runs"), (str(tmp_path / "r"), None, "train")]


def test_quick_is_the_quick_recipe_and_options_still_override(capsys):
    from mnist_tui.core.versions import QUICK

    config = cli.config_of(cli.build_parser().parse_args(["train", "--quick"]))
    assert config.model == QUICK.model == "v4" and config.recipe == QUICK.recipe and config.recipe.epochs == 3
    config = cli.config_of(cli.build_parser().parse_args(["train", "--quick", "--epochs", "5"]))
    assert config.recipe.epochs == 5 and config.recipe.batch_size == QUICK.recipe.batch_size
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--quick", "--model", "v2"])
    assert exit_info.value.code == 2 and "--quick trains v4" in capsys.readouterr().err


def test_runs_folder_problems_and_a_pipe_for_the_app_are_named(tmp_path, capsys):
    assert cli.main(["runs", "--runs", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert cli.main(["runs", "--runs", str(tmp_path / "afile")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    piped = _run("--runs", str(tmp_path))  # the app with its output into a pipe
    assert piped.returncode == 2 and "needs a terminal" in piped.stderr and piped.stdout == ""
    closed = _run("--runs", str(tmp_path), stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))  # mnist-tui <&-
    assert closed.returncode == 2 and "needs a terminal (its input is not one)" in closed.stderr and "Traceback" not in closed.stderr


def test_time_left_counts_down_in_every_epoch_and_for_the_run():
    from mnist_tui.core.events import BatchProgress, EpochFinished
    from mnist_tui.present.times import time_left

    first = BatchProgress(epoch=1, epochs=3, batch=10, batches=100, loss=1.0, accuracy=50.0, images_per_s=1000.0, seconds_left=54.0)
    assert time_left(first, [], 60_000) == "0:54 left, run 2:54"  # 2 more epochs of 60 s
    done = [EpochFinished(1, 3, 0.5, 90.0, 0.4, 91.0, 0.1, seconds=70.0, images_per_s=900.0)]
    second = BatchProgress(epoch=2, epochs=3, batch=50, batches=100, loss=0.5, accuracy=90.0, images_per_s=900.0, seconds_left=33.0)
    assert time_left(second, done, 60_000) == "0:33 left, run 1:43"  # never stuck at 0:00


def test_copy_paste_hints_name_a_runs_folder_that_is_not_the_default(tmp_path):
    from mnist_tui.core.store import default_runs_dir
    from mnist_tui.present.text import command_name, run_hint

    us = command_name()  # `mnist-tui` where that is this install on PATH (tests/test_cli_promises.py)
    assert run_hint(tmp_path / "20261128T000000Z-v4-abcdef") == f"follow it: {us} follow abcdef --runs {tmp_path} · stop it: {us} stop abcdef --runs {tmp_path}"
    assert "--runs" not in run_hint(default_runs_dir() / "20261128T000000Z-v4-abcdef")


@pytest.mark.parametrize("args", [["--where"], ["runs"]], ids=["without-torch", "runs"])
def test_a_reader_that_went_away_ends_the_output_without_a_traceback(args, reference_run):
    """`mnist-tui runs | head -1`: the reader's end is closed before the command writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mnist_tui", *args, "--runs", str(reference_run[1])], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1, done.stderr  # as rich's console ends the tables' output
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr and "Exception ignored" not in done.stderr


@pytest.mark.parametrize("args", [["--where"], ["runs"]], ids=["without-torch", "runs"])
def test_closed_output_and_errors_are_as_dev_null(args, reference_run):
    """`mnist-tui runs >&- 2>&-`: nothing to show and nowhere to show it, and no crash (Python
    starts such a process with sys.stdout and sys.stderr None)."""

    def close_output_and_errors():
        os.close(1)
        os.close(2)

    done = subprocess.run([sys.executable, "-m", "mnist_tui", *args, "--runs", str(reference_run[1])], preexec_fn=close_output_and_errors, timeout=120)
    assert done.returncode == 0


@pytest.mark.parametrize("args", [["--where"], ["runs"]], ids=["without-torch", "runs"])
def test_a_full_disk_for_the_output_is_one_line_and_status_1(args, reference_run):
    """`mnist-tui runs > /dev/full`: ENOSPC on the output, said in one line."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "mnist_tui", *args, "--runs", str(reference_run[1])], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120
        )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "mnist-tui: cannot write: No space left on device"


def test_files_opened_with_the_standard_streams_closed_do_not_take_their_numbers(tmp_path):
    """With 0, 1 and 2 closed (`<&- >&- 2>&-`), the next file opened would take descriptor 0, 1
    or 2, and anything written to the terminal's would land in it (a run's lock, the data)."""
    out = tmp_path / "fd"
    code = f"from mnist_tui.cli.common import closed_streams_to_devnull; closed_streams_to_devnull(); f = open({str(out)!r}, 'w'); f.write(str(f.fileno()))"

    def close_all():
        for fd in (0, 1, 2):
            os.close(fd)

    subprocess.run([sys.executable, "-c", code], preexec_fn=close_all, timeout=60, check=True)
    assert int(out.read_text()) > 2


@pytest.mark.parametrize("args", [["runs", "--runs", ""], ["delete", "abcdef", "--yes", "--runs", " "], ["train", "--data", ""], ["--runs", ""]])
def test_an_empty_folder_path_is_refused_not_taken_for_the_default(args, capsys):
    """`mnist-tui delete ID --yes --runs "$UNSET"` must not act on the default runs folder."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2 and "an empty path names no folder" in capsys.readouterr().err
