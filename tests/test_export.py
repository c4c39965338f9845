"""mnist-tui export: a run's checkpoint as ONNX, int8 ONNX and a torch.export program, each
checked on the run's test images; and every input that cannot be exported refused in one line.

The trained run is small, so that the file runs in about 30 s on two quiet cores: v2 for
one epoch on 3,000 training images (about 84% accurate), evaluated on its first 1,000 test
images. What it can show honestly: ONNX agrees with the checkpoint on at least 99.9% of those
images, int8 keeps the accuracy within 0.3 points (3 images) and is at least 2.5 times smaller
than the fp32 weights. The same figures for fully trained v2, v4 and v5 runs on all 10,000 test
images are measured by benchmarks/export.py (benchmarks/results/export.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from mnist_tui.core import data, export, exporters
from mnist_tui.core.store import RunWriter
from tests.builders import trained_run, written_run

pytest.importorskip("onnxruntime", reason="the export extra is not installed (pip install 'mnist-tui[export]')")


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("export") / "runs", "v2", limit=3000, test_limit=1000)


@pytest.fixture(autouse=True)
def quick_timing(monkeypatch):
    """Latency measured in one call per batch size: the tests check that it is reported, not how fast."""
    monkeypatch.setattr(exporters, "LATENCY_SECONDS", 0.0)
    monkeypatch.setattr(exporters, "LATENCY_CALLS", (1, 1))


@pytest.fixture(scope="module")
def onnx_file(v2_run, tmp_path_factory):
    """The run exported once to ONNX: (its report, the folder holding it)."""
    folder = tmp_path_factory.mktemp("onnx")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exporters, "LATENCY_SECONDS", 0.0)
        patch.setattr(exporters, "LATENCY_CALLS", (1, 1))
        report = export.export(v2_run.path, "onnx", folder / "v2.onnx")
    return report, folder


def test_onnx_agrees_with_the_checkpoint_and_saves_its_report_beside_the_file(v2_run, onnx_file):
    report, folder = onnx_file
    out = folder / "v2.onnx"
    assert out.is_file() and report.bytes == out.stat().st_size and report.path == str(out)
    assert report.images == 1000  # the run's own test images (--test-limit 1000)
    assert report.agreement >= 99.9
    assert abs(report.accuracy - report.checkpoint_accuracy) <= 0.1
    assert report.checkpoint_accuracy > 80  # a trained network, not a constant guess
    assert set(report.latency_ms) == {"1", "256"} and all(v > 0 for v in report.latency_ms.values())
    saved = json.loads((folder / "v2.onnx.json").read_text())
    assert saved["agreement"] == report.agreement and saved["format"] == "onnx" and saved["run_id"] == v2_run.run_id
    assert saved["input"]["shape"] == ["batch", 1, 28, 28]
    assert sorted(p.name for p in folder.iterdir()) == ["v2.onnx", "v2.onnx.json"]  # nothing else left behind


def test_the_files_do_not_carry_this_machines_paths(v2_run, onnx_file, tmp_path):
    """The exporters record stack traces with absolute source paths; a file meant to leave
    the machine holds none (and is the smaller for it)."""
    import zipfile

    import mnist_tui

    checkout = str(Path(mnist_tui.__file__).resolve().parent.parent).encode()
    assert checkout not in (onnx_file[1] / "v2.onnx").read_bytes()
    export.export(v2_run.path, "pt2", tmp_path / "v2.pt2")
    with zipfile.ZipFile(tmp_path / "v2.pt2") as archive:
        assert not [name for name in archive.namelist() if checkout in archive.read(name)]


def test_the_onnx_file_takes_any_batch_size(onnx_file):
    import onnxruntime

    _, folder = onnx_file
    session = onnxruntime.InferenceSession(str(folder / "v2.onnx"), providers=["CPUExecutionProvider"])
    _, test = data.load()
    for n in (1, 3, 300):
        logits = session.run(None, {"image": data.normalise(test.images[:n]).numpy()})[0]
        assert logits.shape == (n, 10)


def test_int8_keeps_the_accuracy_and_is_at_least_two_and_a_half_times_smaller(v2_run, tmp_path):
    report = export.export(v2_run.path, "onnx-int8", tmp_path / "v2.int8.onnx")
    assert abs(report.accuracy - report.checkpoint_accuracy) <= 0.3
    assert report.smaller >= 2.5, f"{report.bytes} bytes for {report.weight_bytes} bytes of fp32 weights"
    assert report.calibration_images == exporters.CALIBRATION_IMAGES


def test_calibration_images_come_from_the_training_set():
    train, test = data.load()
    images = exporters.calibration_images(count=8)
    assert images.shape == (8, 1, 28, 28)
    train_set = {bytes(img.numpy()) for img in train.images}
    chosen = [bytes(((img[0] * data.MNIST_STD + data.MNIST_MEAN) * 255).round().to(torch.uint8).numpy()) for img in images]
    assert all(c in train_set for c in chosen)
    assert not set(chosen) & {bytes(img.numpy()) for img in test.images}


def test_pt2_needs_torch_only_round_trips_and_goes_to_the_exports_folder_by_default(v2_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an absent package looks like to import
    report = export.export(v2_run.path, "pt2")
    expected = v2_run.path.parent / "exports" / f"{v2_run.run_id}.pt2"
    try:
        assert report.path == str(expected) and expected.with_name(expected.name + ".json").is_file()
        assert report.agreement == 100.0 and report.accuracy == report.checkpoint_accuracy
        module = torch.export.load(expected).module()
        _, test = data.load()
        with torch.inference_mode():
            assert module(data.normalise(test.images[:5])).shape == (5, 10)
        with pytest.raises(export.ExportError, match="exists; choose another --out"):
            export.export(v2_run.path, "pt2")  # a second export never replaces the first
    finally:
        expected.unlink()
        expected.with_name(expected.name + ".json").unlink()


def test_without_the_extra_the_message_names_the_install_command(v2_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an absent package looks like to import
    with pytest.raises(export.MissingExtra) as caught:
        export.export(v2_run.path, "onnx-int8", tmp_path / "x.onnx")
    assert "onnxruntime" in str(caught.value) and "pip install 'mnist-tui[export]'" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_or_its_report_is_never_replaced(v2_run, tmp_path):
    out = tmp_path / "v2.onnx"
    out.write_bytes(b"mine")
    with pytest.raises(export.ExportError, match="v2.onnx exists"):
        export.export(v2_run.path, "onnx", out)
    assert out.read_bytes() == b"mine"
    other = tmp_path / "other.onnx"
    (tmp_path / "other.onnx.json").write_text("{}")
    with pytest.raises(export.ExportError, match="other.onnx.json exists"):
        export.export(v2_run.path, "onnx", other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.onnx.json", "v2.onnx"]


def test_a_missing_folder_an_unknown_format_a_run_without_checkpoint_and_a_damaged_run(v2_run, tmp_path, runs_dir):
    with pytest.raises(export.ExportError, match="is not a folder"):
        export.export(v2_run.path, "pt2", tmp_path / "nowhere" / "v2.pt2")
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(export.ExportError, match="unknown export format 'tflite'"):
        export.export(v2_run.path, "tflite", tmp_path / "v2.tflite")
    writer = RunWriter.create(runs_dir, "v2", {"config": {"model": "v2", "recipe": {"epochs": 2}}})
    writer.close("stopped")  # stopped before its first epoch ended: no checkpoint
    with pytest.raises(export.ExportError, match="checkpoint.pt is missing"):
        export.export(writer.path, "pt2", tmp_path / "a.pt2")
    damaged = written_run(runs_dir)
    (damaged / "config.json").write_text('{"format": 1, "run_id": ')
    with pytest.raises(export.ExportError, match="config.json is not valid JSON"):
        export.export(damaged, "pt2", tmp_path / "b.pt2")
    with pytest.raises(export.ExportError, match="cannot export"):
        export.export(tmp_path / "no such run", "pt2", tmp_path / "c.pt2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written for any of them


def test_a_failing_exporter_is_one_line_and_leaves_nothing(v2_run, tmp_path, monkeypatch):
    def broken(model, path):
        raise RuntimeError("Unsupported operator aten::frobnicate\n  many lines of trace")

    monkeypatch.setattr(exporters, "write_onnx", broken)
    with pytest.raises(export.ExportError) as caught:
        export.export(v2_run.path, "onnx", tmp_path / "v2.onnx")
    assert str(caught.value) == "exporting to onnx failed: Unsupported operator aten::frobnicate"
    assert list(tmp_path.iterdir()) == []  # the hidden staging folder is gone too


def test_the_command_prints_the_check_and_says_a_refusal_in_one_line(v2_run, tmp_path, capsys):
    from mnist_tui import cli

    out = tmp_path / "v2.pt2"
    assert cli.main(["export", str(v2_run.path), "--format", "pt2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"exported {v2_run.run_id} (v2, epoch 1) as pt2: {out}" in printed
    assert "agreement  100.00% of predictions the same as the checkpoint's" in printed
    assert "on 1,000 test images" in printed and f"report     {out}.json" in printed
    assert cli.main(["export", str(v2_run.path), "--format", "pt2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == f"mnist-tui export: {out} exists; choose another --out or remove it\n"
    with pytest.raises(SystemExit) as exited:
        cli.main(["export", str(v2_run.path), "--format", "tflite"])
    assert exited.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err
