"""The fused CPU kernels (core/fused.py) through the operators the networks call (core/ops):
PyTorch's results, a build cached across runs, and PyTorch's own operations wherever the
kernels cannot be built or are wrong."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from mnist_tui.core import fused, kernel_cache, ops
from mnist_tui.core.events import RunStarted
from mnist_tui.core.train import train
from tests.conftest import needs_kernels

CL = torch.channels_last


class FusedCalls(TorchDispatchMode):
    """Records each call of a mnist_tui operator: (its name, the weight tensor's address)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "mnist_tui":
            weight = args[1] if func.name().endswith("relu") else args[-1]
            self.calls.append((func.name(), weight.data_ptr()))
        return func(*args, **(kwargs or {}))


def _bn_relu(bn, x):
    return ops.batch_norm_relu(bn, x)


def _bn_pool_relu(bn, x):
    return ops.batch_norm_pool_relu(bn, x, nn.MaxPool2d(2, 2))


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """The kernels looked for, built and checked anew, in an empty cache folder."""
    monkeypatch.setenv("MNIST_TUI_CACHE", str(tmp_path / "cache"))
    fused._library.cache_clear()
    fused.status.cache_clear()
    yield tmp_path / "cache" / "kernels"
    fused._library.cache_clear()
    fused.status.cache_clear()


def _pair(channels: int, weight: tuple[float, float]):
    """A batch norm, and its float64 twin: the reference PyTorch's operations compute."""
    ours = nn.BatchNorm2d(channels)
    with torch.no_grad():
        ours.weight.copy_(torch.linspace(*weight, channels))
        ours.bias.copy_(torch.linspace(0.3, -0.7, channels))
    theirs = nn.BatchNorm2d(channels).double()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _close(got, want, **tolerance):
    torch.testing.assert_close(got, want.to(got.dtype), **tolerance)


def _assert_same_training_pass(ours, theirs, x, fused_pass, reference_pass):
    # Against float64: PyTorch's own float32 kernels can be the less accurate side (one
    # thread's channels_last batch-norm backward sums in float over the whole batch).
    a, b = x.clone().requires_grad_(), x.double().requires_grad_()
    out, ref = fused_pass(ours, a), reference_pass(theirs, b)
    assert out.is_contiguous(memory_format=CL)
    _close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad.double())
    _close(a.grad, b.grad, rtol=1e-4, atol=1e-5)
    _close(ours.weight.grad, theirs.weight.grad, rtol=1e-4, atol=1e-4)
    _close(ours.bias.grad, theirs.bias.grad, rtol=1e-4, atol=1e-4)
    # running mean and variance, and the count of batches, as nn.BatchNorm2d keeps them
    for key, value in theirs.state_dict().items():
        _close(ours.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)


@needs_kernels
@pytest.mark.parametrize(
    ("shape", "weight"),
    [((16, 12, 28, 28), (0.5, 1.5)), ((8, 48, 14, 14), (-1.0, 2.0)), ((3, 5, 7, 5), (-2.0, -0.1)), ((2, 64, 7, 7), (0.2, 0.9))],
)
def test_batch_norm_and_relu_give_pytorchs_outputs_gradients_and_statistics(shape, weight):
    torch.manual_seed(0)
    x = (torch.randn(shape) * 2 + 0.5).contiguous(memory_format=CL)
    ours, theirs = _pair(shape[1], weight)
    assert fused.applies(ours, x)
    _assert_same_training_pass(ours, theirs, x, _bn_relu, lambda bn, t: F.relu(bn(t)))


@needs_kernels
@pytest.mark.parametrize(
    ("shape", "weight"),
    [((16, 24, 28, 28), (0.5, 1.5)), ((8, 48, 14, 14), (-1.0, 2.0)), ((3, 5, 6, 4), (-2.0, -0.1))],
)
def test_batch_norm_pooling_and_relu_give_pytorchs_results_ties_and_negative_scales_included(shape, weight):
    torch.manual_seed(0)
    x = (torch.randn(shape) * 2 + 0.5).contiguous(memory_format=CL)
    x[:, :, 0, 1] = x[:, :, 0, 0]  # ties in every first window: the gradient goes to the first of them
    x[:, :, 3, 1] = x[:, :, 2, 1]
    ours, theirs = _pair(shape[1], weight)
    pool = nn.MaxPool2d(2, 2)
    assert fused.applies(ours, x, pool)
    _assert_same_training_pass(ours, theirs, x, _bn_pool_relu, lambda bn, t: F.relu(pool(bn(t))))


@needs_kernels
def test_the_kernels_stay_out_of_what_they_do_not_compute():
    torch.manual_seed(0)
    x = torch.randn(4, 8, 6, 6).contiguous(memory_format=CL)
    bn = nn.BatchNorm2d(8)
    assert fused.applies(bn, x)
    assert not fused.applies(bn, x.contiguous())  # NCHW
    assert not fused.applies(bn, x.to(torch.bfloat16))
    assert not fused.applies(bn.eval(), x)  # running statistics: evaluation is PyTorch's
    assert not fused.applies(nn.BatchNorm2d(8, momentum=None).train(), x)  # a cumulative average
    assert not fused.applies(nn.SyncBatchNorm(8), x)
    bn.train()
    assert not fused.applies(bn, x, nn.MaxPool2d(3, 2))
    assert not fused.applies(bn, x, nn.MaxPool2d(2, 2, ceil_mode=True))
    assert not fused.applies(bn, x[:, :, :5, :].contiguous(memory_format=CL), nn.MaxPool2d(2, 2))  # odd height
    assert not fused.applies(nn.BatchNorm2d(6), x)  # PyTorch would refuse the channel count: so must this
    assert not fused.applies(nn.BatchNorm2d(8).double(), x)


@needs_kernels
@pytest.mark.parametrize("pooled", [False, True])
def test_a_nan_spoils_the_statistics_as_it_does_pytorchs(pooled):
    # A diverging run must not look healthier in the kernels: the NaN reaches the same
    # outputs and the same running statistics.
    x = torch.randn(4, 8, 6, 6).contiguous(memory_format=CL)
    x[1, 2, 3, 3] = float("nan")
    ours, theirs = _pair(8, (0.5, 1.5))
    pool = nn.MaxPool2d(2, 2)
    out = _bn_pool_relu(ours, x) if pooled else _bn_relu(ours, x)
    ref = F.relu(pool(theirs(x.double()))) if pooled else F.relu(theirs(x.double()))
    assert torch.equal(torch.isnan(out), torch.isnan(ref)) and torch.isnan(out).any()
    assert torch.equal(torch.isnan(ours.running_mean), torch.isnan(theirs.running_mean))
    assert torch.equal(torch.isnan(ours.running_var), torch.isnan(theirs.running_var))


@needs_kernels
def test_a_second_run_loads_the_kernels_without_compiling(fresh, monkeypatch):
    assert fused.status() == "fused"
    [built] = list(fresh.glob("bn_pool-*.so"))
    fused._library.cache_clear()
    fused.status.cache_clear()

    def no_compiler(*args):
        raise AssertionError("compiled again")

    monkeypatch.setattr(kernel_cache, "_build", no_compiler)
    assert fused.status() == "fused"
    assert list(fresh.glob("bn_pool-*.so")) == [built]


def test_without_a_compiler_training_runs_pytorchs_operations(fresh, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-here")
    assert "no C compiler" in fused.status()
    x = torch.randn(4, 8, 6, 6).contiguous(memory_format=CL)
    assert not fused.applies(nn.BatchNorm2d(8), x)


def test_the_switch_turns_the_kernels_off(fresh, monkeypatch):
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    assert "turned off" in fused.status() and not fused.available()


@needs_kernels
def test_kernels_that_compute_something_else_are_refused(fresh, monkeypatch, tmp_path):
    # A build that drops the ReLU (as a miscompilation might) fails the start-up check.
    wrong = tmp_path / "bn_pool.c"
    source = fused.SOURCE.read_text()
    assert "y[j] = v < 0.0f ? 0.0f : v;" in source
    wrong.write_text(source.replace("y[j] = v < 0.0f ? 0.0f : v;", "y[j] = v;"))
    monkeypatch.setattr(fused, "SOURCE", wrong)
    assert "disagree with PyTorch" in fused.status()
    assert not fused.applies(nn.BatchNorm2d(8), torch.randn(4, 8, 6, 6).contiguous(memory_format=CL))


@needs_kernels
def test_an_fp32_cpu_run_records_the_fused_batch_norms(small_config):
    started = list(train(small_config.replace(epochs=1, limit=128, test_limit=128, precision="fp32")))[0]
    assert isinstance(started, RunStarted)
    saved = json.loads((started.run_dir / "config.json").read_text())
    assert saved["fused_batch_norms"] == ["bn1", "bn2", "bn3", "bn4", "bn5", "bn6"]
    assert saved["nchw_batch_norms"] == []  # bn1's 12 channels no longer need NCHW there
    assert started.warning is None


def test_an_fp32_cpu_run_without_the_kernels_says_why(fresh, monkeypatch, small_config):
    monkeypatch.setenv("CC", "no-such-compiler-here")
    started = list(train(small_config.replace(epochs=1, limit=128, test_limit=128, precision="fp32")))[0]
    assert isinstance(started, RunStarted)
    assert "without the fused CPU kernels" in started.warning and "no C compiler" in started.warning
    saved = json.loads((started.run_dir / "config.json").read_text())
    assert saved["fused_batch_norms"] == [] and saved["nchw_batch_norms"] == ["bn1"]  # as before the kernels


def test_v5_trains_in_pytorchs_operations_as_its_record_says():
    from mnist_tui.core.nets import fused_batch_norms
    from mnist_tui.core.versions import get_version

    model = get_version("v5").build().to(memory_format=CL).train()
    with FusedCalls() as seen:
        model(torch.randn(4, 1, 28, 28).contiguous(memory_format=CL))
    assert fused_batch_norms(model) == [] and seen.calls == []


@needs_kernels
@pytest.mark.parametrize("name", ["v1", "v2", "v3", "v4"])
def test_a_training_pass_through_the_kernels_is_pytorchs(name):
    # Every batch norm fused_batch_norms names goes through the fused operators, forward and
    # backward, and the loss, every gradient and the batch-norm statistics are those of
    # PyTorch's operations (in float64).
    from mnist_tui.core.nets import fused_batch_norms
    from mnist_tui.core.versions import get_version

    torch.manual_seed(0)
    ours, theirs = get_version(name).build(dropout=0.0), get_version(name).build(dropout=0.0).double()
    theirs.load_state_dict(ours.state_dict())
    ours, theirs = ours.to(memory_format=CL).train(), theirs.to(memory_format=CL).train()
    x = torch.randn(16, 1, 28, 28).contiguous(memory_format=CL)
    y = torch.randint(0, 10, (16,))
    with FusedCalls() as seen:
        loss = F.cross_entropy(ours(x), y)
        loss.backward()
    weights = {ours.get_submodule(n).weight.data_ptr() for n in fused_batch_norms(ours)}
    forward = {ptr for op, ptr in seen.calls if not op.endswith("_backward")}
    backward = {ptr for op, ptr in seen.calls if op.endswith("_backward")}
    assert forward == weights == backward and len(weights) >= 5
    with FusedCalls() as seen:
        reference = F.cross_entropy(theirs(x.double()), y)
    assert not seen.calls  # float64 is PyTorch's
    reference.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    for (key, p), q in zip(ours.named_parameters(), theirs.parameters()):
        _close(p.grad, q.grad, rtol=1e-3, atol=1e-6, msg=key)
    for key, value in theirs.state_dict().items():
        _close(ours.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)


@needs_kernels
def test_a_built_library_others_can_write_is_not_loaded_but_built_again(fresh):
    assert fused.status() == "fused"
    [built] = list(fresh.glob("bn_pool-*.so"))
    built.chmod(0o666)  # anyone could have put their own code there
    planted = built.stat().st_ino
    fused._library.cache_clear()
    fused.status.cache_clear()
    assert fused.status() == "fused"
    assert built.stat().st_ino != planted and built.stat().st_mode & 0o777 == 0o700


def test_a_cache_folder_others_can_write_is_refused_with_the_reason(fresh):
    fresh.mkdir(parents=True)
    fresh.chmod(0o777)  # whoever can write there chooses the code we would load
    assert "not this user's alone" in fused.status()
    assert list(fresh.iterdir()) == []
