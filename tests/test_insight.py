"""What a trained model gets right and wrong: eval's numbers are the run's own, the confusion
matrix covers the test set, and any picture of a digit is prepared as MNIST's were."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from mnist_tui import cli
from mnist_tui.core import data
from mnist_tui.core.insight import cell, compare, confusion, network, run_outputs
from mnist_tui.core.preprocess import ink_of_picture, to_mnist


def test_eval_reports_the_runs_own_test_accuracy_and_a_matrix_of_the_whole_test_set(trained_v4_run, capsys):
    record = trained_v4_run
    assert cli.main(["eval", record.run_id[-6:], "--runs", str(record.path.parent), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(record.metrics[-1].test_acc, abs=1e-9)  # in the run's precision
    assert report["precision"] == record.precision and report["epoch"] == len(record.metrics)
    _, test = data.load()
    assert [sum(row) for row in report["confusion"]] == torch.bincount(test.labels, minlength=10).tolist()  # 980, 1135, 1032, ...
    assert sum(map(sum, report["confusion"])) == 10_000
    assert [c["images"] for c in report["classes"]][:3] == [980, 1135, 1032]
    assert cli.main(["eval", record.run_id[-6:], "--runs", str(record.path.parent)]) == 0
    table = capsys.readouterr().out
    assert f"test accuracy {record.metrics[-1].test_acc:.2f}%" in table and "Confusion (rows: true digit" in table


def test_a_cell_lists_its_digits_most_confidently_wrong_first(trained_v4_run):
    outputs = run_outputs(trained_v4_run.path)
    matrix = confusion(outputs)
    true, predicted = matrix.worst(1)[0]
    digits = cell(outputs, true, predicted)
    assert len(digits) == matrix.matrix[true][predicted] > 0
    # the predicted class is the most probable (bf16 logits may tie with another class)
    assert all(d.label == true and dict(d.top).get(predicted) == d.top[0][1] for d in digits)
    confidence = [dict(d.top)[predicted] for d in digits]
    assert confidence == sorted(confidence, reverse=True)
    same = compare(outputs, outputs)
    assert same.only_a == [0] * 10 and same.only_b == [0] * 10 and same.both_wrong == matrix.total - matrix.correct


def _rendered_elsewhere(digit: torch.Tensor, light: bool) -> torch.Tensor:
    """The digit three times larger, off-centre on a bigger canvas, as a photo or a scan."""
    big = torch.nn.functional.interpolate(digit[None, None].float() / 255, scale_factor=3, mode="bilinear", align_corners=False)[0, 0]
    canvas = torch.zeros(130, 110)
    canvas[30 : 30 + 84, 5 : 5 + 84] = big.clamp(0, 1)
    return 1 - canvas if light else canvas


def test_a_digit_drawn_elsewhere_comes_back_as_the_test_digit_and_is_classified_the_same(trained_v3_run):
    _, test = data.load()
    net = network(trained_v3_run.path)
    originals = test.images[:40]
    back = torch.stack([to_mnist(ink_of_picture(_rendered_elsewhere(d, light=i % 2 == 1))) for i, d in enumerate(originals)])
    error = (back.float() - originals.float()).abs().mean(dim=(1, 2)) / 255
    # Mean pixel error, of the full range: 0.03 on average (two resamplings blur the edges),
    # never more than a fringe's worth; a digit off by a pixel or mis-scaled scores 0.1 and more.
    assert float(error.mean()) < 0.04 and float(error.max()) < 0.12
    # Every digit the model reads with confidence (most of them) it reads the same way back.
    confident = net.probabilities(originals).max(1)
    sure = confident.values > 0.9
    assert int(sure.sum()) >= 25
    assert torch.equal(net.probabilities(back).argmax(1)[sure], confident.indices[sure])


def test_predict_reads_a_picture_on_paper_and_prints_the_top_three(trained_v3_run, tmp_path, capsys):
    _, test = data.load()
    picture = (_rendered_elsewhere(test.images[0], light=True) * 255).round().byte()
    Image.fromarray(picture.numpy(), "L").save(tmp_path / "seven.png")
    run = trained_v3_run
    assert cli.main(["predict", run.run_id, str(tmp_path / "seven.png"), "--runs", str(run.path.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = int(network(run.path).probabilities(test.images[:1]).argmax())
    assert lines[0].split(": ")[1].startswith(str(expected)) and len(lines) == 4
    (tmp_path / "notes.png").write_text("not a picture")
    assert cli.main(["predict", run.run_id, str(tmp_path / "notes.png"), "--runs", str(run.path.parent)]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_predict_reads_a_transparent_drawing_and_grey_noisy_paper(trained_v3_run, tmp_path, capsys):
    _, test = data.load()
    ink = _rendered_elsewhere(test.images[0], light=False)  # a 7, ink 1 on 0
    rgba = torch.zeros(*ink.shape, 4)
    rgba[..., 3] = ink * 255  # black ink whose opacity is the ink: a canvas export
    Image.fromarray(rgba.round().byte().numpy(), "RGBA").save(tmp_path / "transparent.png")
    noise = torch.randn(ink.shape, generator=torch.Generator().manual_seed(0))
    paper = (230 + 15 * noise) * (1 - ink) + 20 * ink  # grey, grainy paper
    Image.fromarray(paper.clamp(0, 255).round().byte().numpy(), "L").save(tmp_path / "paper.png")
    run = trained_v3_run
    expected = int(network(run.path).probabilities(test.images[:1]).argmax())
    for name in ("transparent.png", "paper.png"):
        assert cli.main(["predict", run.run_id, str(tmp_path / name), "--runs", str(run.path.parent)]) == 0
        assert capsys.readouterr().out.splitlines()[0].split(": ")[1].startswith(str(expected)), name


def test_eval_and_predict_name_what_is_wrong_with_a_run(trained_v4_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "runs" / trained_v4_run.path.name
    shutil.copytree(trained_v4_run.path, copy)
    blob = (copy / "checkpoint.pt").read_bytes()
    (copy / "checkpoint.pt").write_bytes(blob[: len(blob) // 3])
    assert cli.main(["eval", copy.name, "--runs", str(copy.parent)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mnist-tui eval: cannot evaluate {copy.name}: ") and "checkpoint" in err and len(err.splitlines()) == 1
    (copy / "checkpoint.pt").unlink()
    _, test = data.load()
    Image.fromarray(test.images[0].numpy(), "L").save(tmp_path / "seven.png")
    assert cli.main(["predict", copy.name, str(tmp_path / "seven.png"), "--runs", str(copy.parent)]) == 1
    assert "checkpoint.pt is missing" in capsys.readouterr().err
