"""`mnist-tui eval FILE` and `mnist-tui predict FILE IMAGE` with an exported model in place of
a run: the same figures as the run's own, the three likeliest digits, and every file that is
not a usable model refused in one line (exit 1), a pickle hidden in a pt2 archive never run.

The run is v4 trained for one epoch on 256 images and checked on 256 test images: cheap, and
what it must show (the file gives the checkpoint's figures) holds at any accuracy.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import zipfile

import pytest
import torch

from mnist_tui import cli
from mnist_tui.core import data, export, exported, exporters
from tests.builders import trained_run

pytest.importorskip("onnxruntime", reason="the export extra is not installed (pip install 'mnist-tui[export]')")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A small v4 run exported in the three formats: {format: path}, and the run's folder."""
    record = trained_run(tmp_path_factory.mktemp("files") / "runs", "v4", limit=256, test_limit=256)
    folder = tmp_path_factory.mktemp("exported")
    paths = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exporters, "LATENCY_SECONDS", 0.0)
        patch.setattr(exporters, "LATENCY_CALLS", (1, 1))
        for fmt, ext in export.FORMATS.items():
            paths[fmt] = folder / f"v4{ext}"
            export.export(record.path, fmt, paths[fmt])
    return paths, record


def _report(path):
    return json.loads(path.with_name(path.name + ".json").read_text())


@pytest.mark.parametrize("fmt", list(export.FORMATS))
def test_eval_of_a_file_gives_its_checked_accuracy_on_the_runs_test_images(exports, fmt, capsys):
    paths, _ = exports
    assert cli.main(["eval", str(paths[fmt]), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    report = _report(paths[fmt])
    assert printed["images"] == report["images"] == 256
    assert printed["accuracy"] == pytest.approx(report["accuracy"], abs=1e-3)
    assert printed["run"] == paths[fmt].name and printed["epoch"] == 1
    assert sum(c["images"] for c in printed["classes"]) == 256


def test_eval_prints_the_tables_a_runs_eval_prints(exports, capsys):
    paths, record = exports
    assert cli.main(["eval", str(paths["onnx-int8"])]) == 0
    from_file = capsys.readouterr().out
    assert from_file.startswith("run v4.int8.onnx: v4 onnx-int8 · epoch 1 · int8 · 256 test images\n")
    assert cli.main(["eval", str(record.path)]) == 0
    from_run = capsys.readouterr().out
    for words in ("test accuracy", "Per digit", "digit   images   correct   recall   precision", "Confusion (rows: true digit, columns: predicted)"):
        assert words in from_file and words in from_run


def test_without_its_report_a_file_is_evaluated_on_all_test_images(exports, tmp_path, capsys):
    paths, _ = exports
    alone = tmp_path / "alone.onnx"
    shutil.copy(paths["onnx"], alone)
    assert cli.main(["eval", str(alone), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["images"] == 10000 and printed["epoch"] == 0 and printed["model"] == "onnx"


def _picture(tmp_path, index: int = 0):
    from PIL import Image

    _, test = data.load()
    path = tmp_path / "digit.png"
    Image.fromarray(test.images[index].numpy()).save(path)
    return path, int(test.labels[index])


@pytest.mark.parametrize("fmt", ["onnx-int8", "pt2"])
def test_predict_with_a_file_prints_the_three_likeliest_digits(exports, fmt, tmp_path, capsys):
    paths, record = exports
    picture, _ = _picture(tmp_path)
    assert cli.main(["predict", str(paths[fmt]), str(picture)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{picture}: ") and f"(file {paths[fmt].name}, v4 {fmt}, epoch 1, " in lines[0]
    assert len(lines) == 4 and all(line.strip()[0].isdigit() and line.endswith("%") for line in lines[1:])
    assert cli.main(["predict", str(record.path), str(picture)]) == 0  # the run's own answer is the same digit
    assert capsys.readouterr().out.splitlines()[0].split("   ")[0] == lines[0].split("   ")[0]


def _refused(argv, capsys, command="eval") -> str:
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith(f"mnist-tui {command}: ")
    return captured.err


def test_a_file_that_is_not_a_model_is_one_line(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "notes.txt is not an exported model" in _refused(["eval", str(text)], capsys)
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x00\xff not protobuf" * 10)
    assert "fake.onnx is not an ONNX model" in _refused(["eval", str(fake)], capsys)
    assert "no-such.onnx does not exist" in _refused(["eval", str(tmp_path / "no-such.onnx")], capsys)
    os.mkfifo(tmp_path / "pipe.onnx")
    assert "pipe.onnx is not a regular file" in _refused(["eval", str(tmp_path / "pipe.onnx")], capsys)
    picture, _ = _picture(tmp_path)
    assert "fake.onnx is not an ONNX model" in _refused(["predict", str(fake), str(picture)], capsys, "predict")


def test_a_file_over_the_cap_is_not_read(exports, monkeypatch, capsys):
    paths, _ = exports
    monkeypatch.setattr(exported, "MAX_FILE_BYTES", 1000)
    assert "is too large" in _refused(["eval", str(paths["onnx"])], capsys)


def test_a_pt2_file_that_fails_to_load_is_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(os.urandom(4096))
    assert "junk.pt2 is not a torch.export program" in _refused(["eval", str(junk)], capsys)
    empty_zip = tmp_path / "empty.pt2"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("archive/version", "1")
    assert "empty.pt2 cannot be loaded as a torch.export program" in _refused(["eval", str(empty_zip)], capsys)


class _Planted:
    """What a hostile pickle does: create a file when it is unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_planted_in_a_pt2_archive_is_never_run(exports, tmp_path, capsys):
    """torch.export.load unpickles a weight marked use_pickle with weights_only=False: the
    file is refused and the pickle's code never runs."""
    paths, _ = exports
    marker = tmp_path / "pwned"
    planted = io.BytesIO()
    torch.save(_Planted(str(marker)), planted)
    rebuilt = tmp_path / "rebuilt.pt2"
    with zipfile.ZipFile(paths["pt2"]) as source, zipfile.ZipFile(rebuilt, "w") as target:
        [config_name] = [name for name in source.namelist() if name.endswith("model_weights_config.json")]
        config = json.loads(source.read(config_name))
        first = next(iter(config["config"].values()))
        first["use_pickle"] = True  # the first weight's bytes become the pickle
        for name in source.namelist():
            content = json.dumps(config).encode() if name == config_name else source.read(name)
            target.writestr(name, planted.getvalue() if name.endswith(f"/weights/{first['path_name']}") else content)
    err = _refused(["eval", str(rebuilt)], capsys)
    assert "rebuilt.pt2 cannot be loaded as a torch.export program" in err
    assert not marker.exists()


def test_a_damaged_report_beside_the_file_is_one_line(exports, tmp_path, capsys):
    paths, _ = exports
    copy = tmp_path / "v4.onnx"
    shutil.copy(paths["onnx"], copy)
    (tmp_path / "v4.onnx.json").write_text('{"format": "onnx", ')
    assert "v4.onnx.json is not valid JSON" in _refused(["eval", str(copy)], capsys)
    (tmp_path / "v4.onnx.json").write_text(json.dumps({"format": "onnx", "input": {"pixels": "raw bytes"}}))
    assert "does not say how pixels are normalised" in _refused(["eval", str(copy)], capsys)


def test_without_the_extra_an_onnx_file_names_the_install_command(exports, monkeypatch, capsys):
    paths, _ = exports
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an absent package looks like to import
    err = _refused(["eval", str(paths["onnx"])], capsys)
    assert "onnxruntime" in err and "pip install 'mnist-tui[export]'" in err
