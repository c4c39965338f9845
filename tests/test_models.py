"""The networks and their layer breakdown: the seed's tables, every step shown alike, checkpoints."""

from __future__ import annotations

import math

import pytest

from mnist_tui.core.layers import breakdown, classic_summary
from mnist_tui.core.versions import VERSIONS

# (name, output shape, params) straight from the seed README's tables.
SEED_V1 = [
    ("Conv2d-1", (-1, 8, 28, 28), 80),
    ("BatchNorm2d-2", (-1, 8, 28, 28), 16),
    ("Conv2d-3", (-1, 16, 28, 28), 1168),
    ("BatchNorm2d-4", (-1, 16, 28, 28), 32),
    ("Conv2d-5", (-1, 32, 14, 14), 4640),
    ("BatchNorm2d-6", (-1, 32, 14, 14), 64),
    ("Conv2d-7", (-1, 64, 14, 14), 18496),
    ("BatchNorm2d-8", (-1, 64, 14, 14), 128),
    ("Conv2d-9", (-1, 128, 7, 7), 73856),
    ("BatchNorm2d-10", (-1, 128, 7, 7), 256),
    ("Conv2d-11", (-1, 256, 7, 7), 295168),
    ("Linear-12", (-1, 100), 25700),
    ("Linear-13", (-1, 10), 1010),
]
SEED_V2 = [
    ("Conv2d-1", (-1, 12, 28, 28), 120),
    ("BatchNorm2d-2", (-1, 12, 28, 28), 24),
    ("Conv2d-3", (-1, 24, 28, 28), 2616),
    ("BatchNorm2d-4", (-1, 24, 28, 28), 48),
    ("MaxPool2d-5", (-1, 24, 14, 14), 0),
    ("Conv2d-6", (-1, 48, 14, 14), 10416),
    ("BatchNorm2d-7", (-1, 48, 14, 14), 96),
    ("Conv2d-8", (-1, 48, 14, 14), 20784),
    ("BatchNorm2d-9", (-1, 48, 14, 14), 96),
    ("MaxPool2d-10", (-1, 48, 7, 7), 0),
    ("Conv2d-11", (-1, 64, 7, 7), 27712),
    ("BatchNorm2d-12", (-1, 64, 7, 7), 128),
    ("Conv2d-13", (-1, 64, 7, 7), 36928),
    ("BatchNorm2d-14", (-1, 64, 7, 7), 128),
    ("AdaptiveAvgPool2d-15", (-1, 64, 1, 1), 0),
    ("Dropout-16", (-1, 64), 0),
    ("Linear-17", (-1, 10), 650),
]


@pytest.mark.parametrize("name, seed_rows, total", [("v1", SEED_V1, 420_614), ("v2", SEED_V2, 99_746)])
def test_breakdown_holds_every_row_of_the_seed_table(name, seed_rows, total):
    # The seed's tables leave out what its code did with functions (v1's ReLUs and pools, v2's
    # ReLUs); ours lists those too, so the seed's rows are ours in order with only
    # parameterless rows between them.
    b = breakdown(name)
    ours = [(r.kind, r.output_shape, r.params) for r in b.rows]
    seed = [(n.rsplit("-", 1)[0], shape, params) for n, shape, params in seed_rows]
    rest = iter(ours)
    assert all(row in rest for row in seed)  # a subsequence: each found after the previous
    assert [row for row in ours if row[2]] == [row for row in seed if row[2]]
    assert b.total_params == b.trainable_params == total
    assert sum(r.share for r in b.rows) == pytest.approx(1.0)
    assert b.mult_adds == sum(r.mult_adds for r in b.rows) > 0


def test_registry_parameter_counts_are_the_built_networks():
    for version in VERSIONS.values():
        net = version.build()
        assert sum(p.numel() for p in net.parameters()) == version.params, version.name


# What each row type computes, by the torch function its module calls.
ROW_OF_CALL = {
    "conv2d": "Conv2d",
    "batch_norm": "BatchNorm2d",
    "relu": "ReLU",
    "max_pool2d": "MaxPool2d",
    "adaptive_avg_pool2d": "AdaptiveAvgPool2d",
    "dropout": "Dropout",
    "linear": "Linear",
}


def _calls(net) -> list[str]:
    """The row types of the torch functions one forward pass calls, in order."""
    import torch
    from torch.overrides import TorchFunctionMode

    class Record(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls.append(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    x = torch.zeros(1, 1, 28, 28)
    with Record() as record:
        net.eval()(x)
    return [ROW_OF_CALL[c] for c in record.calls if c in ROW_OF_CALL]


@pytest.mark.parametrize("name", list(VERSIONS))
def test_layers_breakdown_shows_every_step_of_every_version_alike(name):
    b = breakdown(name)
    kinds = [r.kind for r in b.rows]
    # Every convolution, batch norm, ReLU, pooling, dropout and linear layer the forward pass
    # applies is a row, in the order it applies them, whether written as a module or not.
    assert kinds == _calls(VERSIONS[name].build())
    assert kinds.count("ReLU") == 6  # each version activates six times
    for before, row in zip(b.rows, b.rows[1:]):
        if before.kind == "BatchNorm2d":
            assert row.kind == "ReLU" and row.output_shape == before.output_shape, row.name
        if len(row.output_shape) == len(before.output_shape) == 4 and row.output_shape[2] * 2 == before.output_shape[2]:
            assert row.kind == "MaxPool2d", row.name  # the map halves at a pooling row only
    assert [r.name for r in b.rows] == [f"{k}-{i}" for i, k in enumerate(kinds, start=1)]


@pytest.mark.parametrize("name", list(VERSIONS))
def test_a_version_holds_dropout_only_where_it_applies_it(name):
    from torch import nn

    version = VERSIONS[name]
    p = version.recipe.dropout
    kinds = [r.kind for r in breakdown(name).rows]
    dropouts = [m for m in version.build().modules() if isinstance(m, nn.Dropout)]
    if p == 0:  # v1, v4 and v5
        assert "Dropout" not in kinds and not dropouts
    else:  # v2's 0.1 and v3's 0.05 are applied
        assert kinds.count("Dropout") == len(dropouts) > 0 and all(m.p == p for m in dropouts)
    # A dropout chosen for a run is applied by every version, v1 included.
    chosen = [m for m in version.build(dropout=0.2).modules() if isinstance(m, nn.Dropout)]
    assert chosen and all(m.p == 0.2 for m in chosen)
    assert _calls(version.build(dropout=0.2)).count("Dropout") == len(chosen)


# The state_dict keys of saved runs, by the module that holds them: the modules that became
# modules for the breakdown (ReLU, pooling, dropout placeholders) hold no state, so these stay.
SAVED_KEYS = {
    "v1": "conv1 bn1 conv2 bn2 conv3 bn3 conv4 bn4 conv5 bn5 conv6 fc1 fc2",
    "v2": "conv1 bn1 conv2 bn2 conv3 bn3 conv4 bn4 conv5 bn5 conv6 bn6 fc",
    "v3": "features.0.0 features.0.1 features.1.0 features.1.1 features.3.0 features.3.1 features.5.0 "
    "features.5.1 features.6.0 features.6.1 features.7.0 features.7.1 classifier",
}
SAVED_KEYS["v4"] = SAVED_KEYS["v3"]
SAVED_KEYS["v5"] = (
    "features.0.0 features.0.1 features.1.0 features.1.1 features.3.0 features.3.1 features.3.2 features.4.0 features.4.1 "
    "features.4.2 features.5.0 features.5.1 features.5.2 features.7.0 features.7.1 classifier"
)


@pytest.mark.parametrize("name", list(VERSIONS))
def test_saved_checkpoints_keep_loading(name):
    version = VERSIONS[name]
    state = version.build().state_dict()
    holders = list(dict.fromkeys(key.rsplit(".", 1)[0] for key in state))
    assert holders == SAVED_KEYS[name].split()
    # The parameters keep their order too: a saved optimizer state refers to them by position.
    params = [key for key, _ in version.build().named_parameters()]
    assert params == [key for key in state if not key.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    # Checkpoints load whatever dropout either side was built with.
    version.build(dropout=0.3).load_state_dict(state)
    version.build(dropout=0.0).load_state_dict(version.build(dropout=0.3).state_dict())


def _rows(text: str) -> list[tuple[str, ...]]:
    """Layer rows of a torchsummary table as (name, shape, params) tokens."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if parts and "-" in parts[0] and parts[0].split("-")[-1].isdigit():
            name, rest = parts[0], " ".join(parts[1:])
            shape, params = rest.rsplit(" ", 1)
            rows.append((name, shape, params))
    return rows


def test_classic_summary_prints_the_breakdown_as_torchsummary_does():
    text = classic_summary("v1")
    lines = text.splitlines()
    expected = [(r.name, r.shape_text, f"{r.params:,}") for r in breakdown("v1").rows]
    assert _rows(text) == expected
    # torchsummary's own columns and the seed README's frame
    assert lines[:4] == [
        "=" * 64,
        "        Layer (type)               Output Shape         Param #",
        "=" * 64,
        "            Conv2d-1            [-1, 8, 28, 28]              80",
    ]
    assert lines[-4:] == ["Total params: 420,614", "Trainable params: 420,614", "Non-trainable params: 0", "=" * 64]


def test_classic_summary_is_torchsummarys_own_table_where_it_lists_the_same_rows():
    # v2 holds no placeholder (its dropout is 0.1), so torchsummary itself sees our rows. Both
    # trace the evaluation pass: training pools before ReLU (SeedNet.quicker in core/nets.py).
    import contextlib
    import io

    from torchsummary import summary

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        summary(VERSIONS["v2"].build().eval(), (1, 28, 28), device="cpu")
    printed = out.getvalue().splitlines()
    end = next(i for i, line in enumerate(printed) if line.startswith("Non-trainable params"))
    assert classic_summary("v2").splitlines()[1:-1] == printed[1 : end + 1]


def test_classic_summary_v2_total_is_the_table_sum():
    text = classic_summary("v2")
    assert len(_rows(text)) == len(breakdown("v2").rows)
    assert sum(int(params.replace(",", "")) for _, _, params in _rows(text)) == 99_746
    assert "Total params: 99,746" in text
    assert "Dropout" not in classic_summary("v4")


def test_seed_recipes_build_the_seed_optimisers():
    from mnist_tui.core.optim import make_optimizer, make_scheduler

    v1, v2 = VERSIONS["v1"], VERSIONS["v2"]
    opt = make_optimizer(v1.config(), v1.build().parameters())
    assert type(opt).__name__ == "Adam" and opt.defaults["lr"] == 1e-3
    assert make_scheduler(v1.config(), opt, 10) is None
    opt = make_optimizer(v2.config(), v2.build().parameters())
    assert type(opt).__name__ == "AdamW" and opt.defaults["weight_decay"] == 1e-4
    sched = make_scheduler(v2.config(epochs=7), opt, 10)
    assert type(sched).__name__ == "CosineAnnealingLR" and sched.T_max == 7
    assert v2.build().dropout.p == 0.1


@pytest.mark.parametrize("name", ["v2", "v4"])  # AdamW, and SGD with momentum
def test_the_fused_cpu_optimizer_step_trains_as_the_default_one_unless_switched_off(name, monkeypatch):
    import torch
    import torch.nn.functional as F

    from mnist_tui.core.optim import make_optimizer

    cpu, version = torch.device("cpu"), VERSIONS[name]
    x, y = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 10
    weights = []
    for switch in ("1", "0"):
        monkeypatch.setenv("MNIST_TUI_FUSED", switch)
        torch.manual_seed(0)
        model = version.build()
        opt = make_optimizer(version.config(), model.parameters(), cpu)
        assert opt.defaults["fused"] is (True if switch == "1" else None), switch
        F.cross_entropy(model(x), y).backward()  # one step: Adam's later steps amplify last-digit
        opt.step()  # differences where a gradient is near 0 (its update is lr * sign(gradient))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(weights[0], weights[1], rtol=1e-5, atol=1e-7)
    torch.manual_seed(0)
    assert not torch.allclose(weights[0], torch.cat([p.detach().flatten() for p in version.build().parameters()]))  # it stepped


def test_a_resumed_optimizer_steps_as_this_machine_says_not_as_its_checkpoint_was_saved(monkeypatch):
    import torch

    from mnist_tui.core.optim import make_optimizer
    from mnist_tui.core.train.resume import _with_this_step

    cpu, version = torch.device("cpu"), VERSIONS["v2"]
    model = version.build()
    monkeypatch.setenv("MNIST_TUI_FUSED", "0")
    old = make_optimizer(version.config(), model.parameters(), cpu)  # as checkpoints before the fused step were saved
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    old.step()
    monkeypatch.setenv("MNIST_TUI_FUSED", "1")
    new = make_optimizer(version.config(), model.parameters(), cpu)
    new.load_state_dict(_with_this_step(old.state_dict(), new))
    assert new.param_groups[0]["fused"] is True and new.param_groups[0]["foreach"] is None
    new.step()  # the saved step counts load into the fused step's own kind
    monkeypatch.setenv("MNIST_TUI_FUSED", "0")  # and the switch back holds for a fused checkpoint too
    back = make_optimizer(version.config(), model.parameters(), cpu)
    back.load_state_dict(_with_this_step(new.state_dict(), back))
    assert back.param_groups[0]["fused"] is None
    back.step()


def test_compact_versions_stay_under_their_budgets():
    for name, budget in (("v3", 20_000), ("v4", 8_000), ("v5", 6_000)):
        b = breakdown(name)
        assert b.total_params < budget, name
        # The classifier is a 1x1 convolution on the pooled features: no dense layer anywhere.
        assert not any(r.name.startswith("Linear") for r in b.rows), name
        assert VERSIONS[name].description and VERSIONS[name].recipe.epochs <= 15


def test_onecycle_runs_its_full_cycle_over_the_planned_batches():
    import torch

    from mnist_tui.core.optim import make_optimizer, make_scheduler

    v4 = VERSIONS["v4"]
    config = v4.config(epochs=3)
    opt = make_optimizer(config, v4.build().parameters())
    sched = make_scheduler(config, opt, batches=5)
    used = []
    for _ in range(15):  # 3 epochs of 5 batches: exactly the planned steps, no error at the end
        used.append(opt.param_groups[0]["lr"])  # the rate this batch trains with
        opt.step()
        sched.step()
    assert used[0] < config.recipe.lr / 10
    assert max(used) == pytest.approx(config.recipe.lr, rel=0.05)
    assert used[-1] < config.recipe.lr / 1000
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)


def _momenta_over_a_cycle(config, key="momentum"):
    from mnist_tui.core.optim import make_optimizer, make_scheduler

    opt = make_optimizer(config, VERSIONS[config.model].build().parameters())
    sched = make_scheduler(config, opt, batches=10)
    seen = []
    for _ in range(config.recipe.epochs * 10):
        group = opt.param_groups[0]
        seen.append(group["betas"][0] if key == "betas" else group[key])
        opt.step()
        sched.step()
    return seen


@pytest.mark.parametrize("momentum, low, high", [(0.9, 0.85, 0.95), (0.95, 0.9, 0.975), (0.5, 0.45, 0.55), (0.0, 0.0, 0.05), (0.99, 0.94, 0.995)])
def test_onecycle_cycles_sgds_momentum_around_the_recipes(momentum, low, high):
    """--momentum (or a sweep's) under one-cycle used to change nothing: the schedule took
    PyTorch's 0.85-0.95 whatever the recipe said. Now it swings 0.05 below it and as much
    above, or halfway to 1 where that is nearer."""
    seen = _momenta_over_a_cycle(VERSIONS["v4"].config(epochs=2, momentum=momentum))
    assert seen[0] == pytest.approx(high) and min(seen) == pytest.approx(low) and max(seen) == pytest.approx(high)
    assert seen[-1] > seen[len(seen) // 5]  # low at the peak learning rate (20% in), back up as it anneals


@pytest.mark.parametrize("momentum", [0.999, 0.9999995, 0.9999999, math.nextafter(1.0, 0.0)])
def test_a_momentum_a_hair_below_1_never_cycles_to_1(momentum):
    from mnist_tui.core.optim import onecycle_momenta

    low, high = onecycle_momenta(momentum)
    assert low < momentum <= high < 1.0


def test_the_measured_onecycle_recipes_keep_pytorchs_momenta():
    """The recipes' momentum 0.9 (SGD) and Adam's beta1 cycle exactly as PyTorch's defaults
    did when the recipes' accuracies were measured."""
    import torch

    from mnist_tui.core.optim import make_optimizer

    for config, key in ((VERSIONS["v4"].config(epochs=2), "momentum"), (VERSIONS["v2"].config(epochs=2, scheduler="onecycle"), "betas")):
        opt = make_optimizer(config, VERSIONS[config.model].build().parameters())
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.recipe.lr, total_steps=20, pct_start=0.2)
        defaults = []
        for _ in range(20):
            group = opt.param_groups[0]
            defaults.append(group["betas"][0] if key == "betas" else group[key])
            opt.step()
            sched.step()
        assert _momenta_over_a_cycle(config, key) == defaults


def test_precision_auto_falls_back_to_fp32_without_native_bf16(monkeypatch):
    import torch

    from mnist_tui.core import device

    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "bf16_native", lambda device: False)
    assert device.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(device, "bf16_native", lambda device: True)
    assert device.resolve_precision("auto", cpu) == "bf16"
    assert device.resolve_precision("fp32", cpu) == "fp32"
    assert device.resolve_precision("bf16", torch.device("mps")) == "fp32"


def test_classic_summaries_built_at_once_never_spill_onto_the_terminal(capfd):
    # The Layers screen builds them in worker threads; scrolling the version list quickly
    # runs several at once, and torchsummary prints to the process's stdout.
    from concurrent.futures import ThreadPoolExecutor

    names = ["v3", "v4", "v2", "v4", "v3", "v2"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        texts = list(pool.map(classic_summary, names))
    for name, text in zip(names, texts):
        assert f"Total params: {VERSIONS[name].params:,}" in text
    assert capfd.readouterr().out == ""


def test_expected_times_keep_the_test_pass_and_start_up_for_small_runs():
    """A run on a few thousand images is not promised in a second: the test pass and the
    trainer's start-up do not shrink with the training images."""
    from mnist_tui.core.versions import STARTUP_SECONDS, VERSIONS

    v4 = VERSIONS["v4"]
    per_epoch = dict(v4.epoch_seconds)["bf16"]  # measured: a whole run's wall seconds / its epochs
    assert v4.expected_seconds(v4.recipe.epochs, "bf16") == pytest.approx(per_epoch * v4.recipe.epochs)  # the measured run itself
    small = v4.expected_seconds(9, "bf16", 3_000)
    assert small > STARTUP_SECONDS + 9 * per_epoch * 3_000 / 60_000 * 1.5  # well above a linear scaling
    assert small < v4.expected_seconds(9, "bf16", 30_000)


def _seed_order(net, x):
    """v1's or v2's forward pass exactly as the seed wrote it: ReLU before each pooling, and
    v1's last convolution computed in full before its global average."""
    x = net.relu1(net.bn1(net.conv1(x)))
    x = net.pool1(net.relu2(net.bn2(net.conv2(x))))
    x = net.relu3(net.bn3(net.conv3(x)))
    x = net.pool2(net.relu4(net.bn4(net.conv4(x))))
    x = net.relu5(net.bn5(net.conv5(x)))
    if hasattr(net, "bn6"):
        return net.fc(net.dropout(net.gap(net.relu6(net.bn6(net.conv6(x)))).flatten(1)))
    return net.fc2(net.relu6(net.fc1(net.dropout(net.gap(net.conv6(x)).flatten(1)))))


@pytest.mark.parametrize("name", ["v1", "v2"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_training_computes_what_the_seeds_layer_order_computes(name, layout):
    # Training pools before ReLU and v1 averages before its last convolution: a user must get
    # the same losses, gradients and batch-norm statistics as the seed's order would give.
    # (A plain evaluation pass runs the seed's order itself: the Layers tests trace it.)
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    ours, seeds = VERSIONS[name].build(dropout=0.0), VERSIONS[name].build(dropout=0.0)
    seeds.load_state_dict(ours.state_dict())
    x = torch.randn(16, 1, 28, 28)
    if layout == "channels_last":
        ours, seeds = ours.to(memory_format=torch.channels_last), seeds.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = torch.randint(0, 10, (16,))
    loss, seed_loss = F.cross_entropy(ours.train()(x1), y), F.cross_entropy(_seed_order(seeds.train(), x2), y)
    loss.backward()
    seed_loss.backward()
    assert loss.item() == pytest.approx(seed_loss.item(), rel=1e-6)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-7)
    for (key, p), q in zip(ours.named_parameters(), seeds.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=key)
    torch.testing.assert_close(ours.state_dict(), seeds.state_dict())
    # The test pass (inference mode) takes the quicker order too, with the seed's answers.
    with torch.inference_mode():
        torch.testing.assert_close(ours.eval()(x), _seed_order(seeds.eval(), x))


def test_mean_of_conv_is_refused_for_a_convolution_it_does_not_describe():
    import torch
    from torch import nn

    from mnist_tui.core.nets import mean_of_conv

    x = torch.zeros(1, 4, 8, 8)
    for conv in (
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.Conv2d(4, 4, 3, dilation=2, padding=2),
        nn.Conv2d(4, 4, 3, groups=2, padding=1),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),
        nn.Conv2d(4, 4, 3, padding="same"),
    ):
        with pytest.raises(ValueError, match="plain stride-1 convolution"):
            mean_of_conv(conv, x)


def test_training_and_the_test_pass_skip_v1s_last_convolution_and_the_layers_trace_does_not():
    # The speed of v1's training and test pass comes from never running conv6 as a layer;
    # the Layers screen's plain evaluation pass must still run it, as the seed did.
    import torch

    net = VERSIONS["v1"].build()
    calls = []
    net.conv6.register_forward_hook(lambda *_: calls.append(1))
    x = torch.zeros(2, 1, 28, 28)
    net.train()(x)
    with torch.inference_mode():
        net.eval()(x)
    assert calls == []
    with torch.no_grad():
        net.eval()(x)
    assert calls == [1]
    # The benchmarks' seed pipeline times the seed's own order, in training too.
    from benchmarks.seed_order import in_seed_order

    in_seed_order(net).train()(x)
    assert calls == [1, 1]
