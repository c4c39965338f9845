"""The fused batch-norm operators (core/ops): what torch.library's checks ask of a custom
operator (schema, autograd registration, FakeTensor, AOT dispatch with dynamic shapes), the
autograd formula by gradcheck in float64, and the compiled kernels against float64 at 1, 2
and 4 threads, on convolution-like inputs and on a mean large against the spread."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_tui.core import ops  # registers the operators
from tests.conftest import needs_kernels

CL = torch.channels_last
OPS = torch.ops.mnist_tui
MOMENTUM, EPS = 0.1, 1e-5


@pytest.fixture
def threads(request):
    """torch.set_num_threads(request.param) for the test, restored after: the suite pins one
    thread under xdist, and the kernels' threaded path (one slice a thread, partial sums
    merged) must run here too."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def _inputs(shape, dtype=torch.float32, grad=True, mean=0.5, std=2.0, seed=0):
    """x (channels_last), weight (some negative), bias, running mean and variance."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * std + mean).to(dtype).contiguous(memory_format=CL)
    weight = torch.linspace(-1.5, 2.0, c, dtype=dtype)
    bias = torch.linspace(0.3, -0.7, c, dtype=dtype)
    if grad:
        x, weight, bias = x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_()
    return x, weight, bias, torch.zeros(c, dtype=dtype), torch.ones(c, dtype=dtype)


def _forward_cases(dtype):
    for shape in ((3, 5, 6, 4), (4, 16, 8, 8)):  # channels that do not tile 16-float blocks, and that do
        yield OPS.bn_relu.default, (*_inputs(shape, dtype), MOMENTUM, EPS)
        yield OPS.bn_pool_relu.default, (*_inputs(shape, dtype), MOMENTUM, EPS)


def _backward_cases(dtype):
    for shape in ((3, 5, 6, 4), (4, 16, 8, 8)):
        x, weight, bias, mean, var = _inputs(shape, dtype, grad=False)
        out, stats, _, _ = OPS.bn_relu(x, weight, bias, mean, var, MOMENTUM, EPS)
        yield OPS.bn_relu_backward.default, (torch.randn_like(out), x, stats, weight)
        out, picked, stats, _, _ = OPS.bn_pool_relu(x, weight, bias, mean, var, MOMENTUM, EPS)
        yield OPS.bn_pool_relu_backward.default, (torch.randn_like(out), x, picked, stats, weight)


def _opcheck_all(dtype):
    for op, args in [*_forward_cases(dtype), *_backward_cases(dtype)]:
        torch.library.opcheck(op, args)


@needs_kernels
def test_every_operator_passes_opcheck_on_the_kernels():
    # fp32 channels_last on the CPU: the compiled kernels' path, every opcheck test
    # (test_schema, test_autograd_registration, test_faketensor, test_aot_dispatch_dynamic)
    _opcheck_all(torch.float32)


def test_every_operator_passes_opcheck_in_pytorchs_operations():
    # float64: the composite path (core/ops/reference.py), there with or without a compiler
    _opcheck_all(torch.float64)


@pytest.mark.parametrize("op", ["bn_relu", "bn_pool_relu"])
def test_the_autograd_formula_passes_gradcheck_in_float64(op):
    # The kernels are fp32 only, so gradcheck (float64 finite differences) checks the formula
    # they implement, in the composite path that shares it; the kernels are then held to the
    # float64 composite by the tests below. Inputs without ties or values at ReLU's kink.
    x, weight, bias, mean, var = _inputs((2, 3, 4, 4), torch.float64)
    function = getattr(OPS, op)
    assert torch.autograd.gradcheck(lambda *t: function(*t, mean, var, MOMENTUM, EPS)[0], (x, weight, bias))


def _through_both(pooled, x32, weight, bias):
    """The fused path in fp32 and PyTorch's modules in float64, forward and backward with one
    gradient: (ours, theirs, the gradient), ours and theirs each (output, x's gradient, bn)."""
    c = x32.shape[1]
    ours, theirs = nn.BatchNorm2d(c), nn.BatchNorm2d(c).double()
    with torch.no_grad():
        ours.weight.copy_(weight)
        ours.bias.copy_(bias)
    theirs.load_state_dict(ours.state_dict())
    a, b = x32.clone().requires_grad_(), x32.double().requires_grad_()
    pool = nn.MaxPool2d(2, 2)
    out = ops.batch_norm_pool_relu(ours, a, pool) if pooled else ops.batch_norm_relu(ours, a)
    ref = F.relu(pool(theirs(b))) if pooled else F.relu(theirs(b))
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).contiguous(memory_format=CL)
    out.backward(grad)
    ref.backward(grad.double())
    return (out, a.grad, ours), (ref, b.grad, theirs), grad


def _close(got, want, **tolerance):
    torch.testing.assert_close(got, want.to(got.dtype), **tolerance)


@needs_kernels
@pytest.mark.parametrize("threads", [1, 2, 4], indirect=True)
@pytest.mark.parametrize("pooled", [False, True])
def test_the_kernels_match_float64_at_every_thread_count(threads, pooled):
    # v2's second layer's shape: 9,408 positions a channel, split over the threads. Float32
    # against float64: outputs within a few float32 roundings of values of order 1 (1e-5),
    # gradients summed over 9,408 positions (1e-4), statistics 1e-5.
    x, weight, bias, _, _ = _inputs((12, 24, 28, 28), grad=False)
    (out, gx, ours), (ref, gref, theirs), _ = _through_both(pooled, x, weight, bias)
    assert out.is_contiguous(memory_format=CL)
    _close(out, ref, rtol=1e-5, atol=1e-5)
    _close(gx, gref, rtol=1e-4, atol=1e-5)
    _close(ours.weight.grad, theirs.weight.grad, rtol=1e-4, atol=1e-4)
    _close(ours.bias.grad, theirs.bias.grad, rtol=1e-4, atol=1e-4)
    for key, value in theirs.state_dict().items():
        _close(ours.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)


@needs_kernels
@pytest.mark.parametrize("threads", [1, 2, 4], indirect=True)
@pytest.mark.parametrize("pooled", [False, True])
def test_a_mean_large_against_the_spread_keeps_the_variance(threads, pooled):
    # Mean 1e3, std 1: a one-pass E[x^2] - mean^2 in float partial sums lost the variance to
    # 4e-3 (relative) and the output to 7e-2; PyTorch's own fp32 gets 2e-6 and 4e-3.
    x, weight, bias, _, _ = _inputs((16, 24, 28, 28), grad=False, mean=1e3, std=1.0)
    (out, gx, ours), (ref, _, theirs), grad = _through_both(pooled, x, weight, bias)
    _close(ours.running_var, theirs.running_var, rtol=1e-5, atol=0)
    _close(ours.running_mean, theirs.running_mean, rtol=1e-6, atol=0)
    # y = a x + b with b about -1e3 a: each rounding costs 1e3 x 6e-8 = 6e-5 of |a| (<= 2)
    _close(out, ref, rtol=0, atol=5e-4)
    if not pooled:
        _assert_backward_in_float64(x, grad, out, gx, ours)


def _assert_backward_in_float64(x, grad, out, gx, bn):
    """The gradients against float64 arithmetic on the same ReLU mask: near the kink, the
    input's own float32 rounding decides the mask (as in PyTorch's fp32, whose weight
    gradient is then off by 0.4 here), which no formula can get back."""
    x64, dy = x.double(), grad.double() * (out > 0)
    count, dims = x.numel() // x.shape[1], (0, 2, 3)
    mean, var = x64.mean(dims, keepdim=True), x64.var(dims, correction=0, keepdim=True)
    xhat = (x64 - mean) / torch.sqrt(var + EPS)
    gb, gw = dy.sum(dims), (dy * xhat).sum(dims)
    w = bn.weight.detach().double().view(1, -1, 1, 1)
    want = w / torch.sqrt(var + EPS) * (dy - gb.view(1, -1, 1, 1) / count - xhat * gw.view(1, -1, 1, 1) / count)
    # sums over 12,544 positions of terms of order 1 (1e-4 of them); x's gradient within
    # the 6e-5 (of |w| <= 2) that a x + b's rounding costs
    _close(bn.weight.grad, gw, rtol=1e-4, atol=1e-3)
    _close(bn.bias.grad, gb, rtol=1e-4, atol=1e-3)
    _close(gx, want, rtol=0, atol=2e-4)


@needs_kernels
def test_a_backward_operator_given_wrong_shapes_refuses_them_instead_of_reading_past_them():
    # The operators are public (torch.ops.mnist_tui): the kernels trust the shapes they are
    # given, so the operators hand anything else to PyTorch's operations, which refuse it.
    x, weight, bias, mean, var = _inputs((4, 16, 8, 8), grad=False)
    out, picked, stats, _, _ = OPS.bn_pool_relu(x, weight, bias, mean, var, MOMENTUM, EPS)
    grad = torch.randn_like(out)
    with pytest.raises(RuntimeError):
        OPS.bn_pool_relu_backward(grad, x, picked[:, :, :2], stats, weight)
    with pytest.raises(RuntimeError):
        OPS.bn_relu_backward(torch.randn_like(x), x, stats[:, :8].contiguous(), weight)
    with pytest.raises(RuntimeError):
        OPS.bn_relu_backward(grad, x, stats, weight)  # the pooled output's gradient


@needs_kernels
def test_torch_compile_sees_the_operators_and_gives_eagers_numbers():
    # What registering them buys: a compiled v4 training pass holds the four operators in its
    # forward and backward graphs (no graph break on the kernels' build), and its loss,
    # gradients and running statistics are the eager pass's.
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    from mnist_tui.core.versions import get_version

    torch.manual_seed(0)
    compiled_model, eager = get_version("v4").build(), get_version("v4").build()
    eager.load_state_dict(compiled_model.state_dict())
    compiled_model, eager = compiled_model.to(memory_format=CL).train(), eager.to(memory_format=CL).train()
    x = torch.randn(16, 1, 28, 28).contiguous(memory_format=CL)
    y = torch.randint(0, 10, (16,))
    in_graphs = set()

    def keep(gm, inputs):
        in_graphs.update(str(node.target) for node in gm.graph.nodes if str(node.target).startswith("mnist_tui."))
        return make_boxed_func(gm.forward)  # run as traced: what the graphs hold is the point

    torch._dynamo.reset()
    compiled = torch.compile(compiled_model, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep), fullgraph=True)
    loss = F.cross_entropy(compiled(x), y)
    loss.backward()
    reference = F.cross_entropy(eager(x), y)
    reference.backward()
    torch._dynamo.reset()
    assert in_graphs == {f"mnist_tui.{op}.default" for op in ("bn_relu", "bn_relu_backward", "bn_pool_relu", "bn_pool_relu_backward")}
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    for (key, p), q in zip(compiled_model.named_parameters(), eager.parameters()):
        _close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=key)
    for (key, value), other in zip(compiled_model.state_dict().items(), eager.state_dict().values()):
        _close(value, other, rtol=1e-6, atol=1e-7, msg=key)
