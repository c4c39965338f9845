"""The core's predictions: progress reported up to the whole test set, the fast inference
model agreeing with the network it is built from, and the precision it classifies in."""

from __future__ import annotations

import pytest
import torch

from mnist_tui.core import predict as core_predict
from mnist_tui.core.predict import inference_model, inference_precision, predict
from mnist_tui.core.versions import VERSIONS, get_version
from tests.builders import untrained_v2_run


def test_progress_is_reported_chunk_by_chunk_up_to_the_whole_test_set(tmp_path):
    run = untrained_v2_run(tmp_path)
    calls: list[tuple[int, int]] = []
    result = predict(run, 8, progress=lambda done, total: calls.append((done, total)))
    total = result.total
    assert total == 10_000
    assert calls[0] == (0, total)  # the model and the digits are loaded: classifying starts
    assert calls[-1] == (total, total)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done)  # never backwards, never repeated
    assert len(calls) == 1 + -(-total // core_predict.CHUNK)  # the start, then every chunk
    assert {t for _, t in calls} == {total}

    again: list[tuple[int, int]] = []
    cached = predict(run, 8, mistakes_only=True, progress=lambda d, t: again.append((d, t)))
    assert again == [(total, total)]  # from the cache: done at once
    assert cached.mistakes == result.mistakes and all(not p.correct for p in cached.items)


def test_predictions_agree_with_the_plain_network_in_fp32(tmp_path):
    from mnist_tui.core import data

    run = untrained_v2_run(tmp_path)
    result = predict(run, 32)
    torch.manual_seed(0)
    model = get_version("v2").build().eval()
    _, test = data.load()
    with torch.inference_mode():
        probs = model(data.normalise(test.images[:32])).softmax(1)
    assert result.precision == "fp32"
    assert [p.predicted for p in result.items] == probs.argmax(1).tolist()
    assert [p.confidence for p in result.items] == pytest.approx(probs.max(1).values.tolist(), abs=1e-5)


@pytest.mark.parametrize("name", list(VERSIONS))
def test_the_inference_model_computes_what_the_network_does(name):
    torch.manual_seed(0)
    model = get_version(name).build().eval()
    for module in model.modules():  # batch norm statistics far from the identity it starts as
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    fast = inference_model(name, model.state_dict())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # folded away
    x = torch.randn(16, 1, 28, 28)
    with torch.inference_mode():
        expected = model(x)
        got = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_a_checkpoint_of_another_version_is_refused_with_the_reason():
    from mnist_tui.core.store import CheckpointError

    with pytest.raises(CheckpointError, match="does not fit v2"):
        inference_model("v2", get_version("v4").build().state_dict())


@pytest.mark.parametrize(
    ("run_precision", "native", "requested", "expected"),
    [
        ("bf16", True, "auto", "bf16"),  # as the run was evaluated, where the CPU has bf16
        ("bf16", False, "auto", "fp32"),  # emulated bf16 is slower than fp32
        ("fp32", True, "auto", "fp32"),
        ("", True, "auto", "fp32"),  # runs from before the precision was recorded
        ("bf16", True, "fp32", "fp32"),  # asked for explicitly
        ("fp32", False, "bf16", "bf16"),
    ],
)
def test_the_precision_follows_the_run_where_the_cpu_computes_it_natively(monkeypatch, run_precision, native, requested, expected):
    monkeypatch.setattr(core_predict, "bf16_native", lambda _device: native)
    assert inference_precision(run_precision, requested) == expected


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        inference_precision("fp32", "fp16")
