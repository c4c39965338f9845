"""The seed's networks, row by row, as its torchsummary tables print them."""

from __future__ import annotations

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
def test_breakdown_matches_seed_table(name, seed_rows, total):
    b = breakdown(name)
    assert [(r.name, r.output_shape, r.params) for r in b.rows] == seed_rows
    assert b.total_params == b.trainable_params == total
    assert sum(r.share for r in b.rows) == pytest.approx(1.0)
    assert b.mult_adds == sum(r.mult_adds for r in b.rows) > 0


def test_registry_parameter_counts_are_the_built_networks():
    for version in VERSIONS.values():
        net = version.build()
        assert sum(p.numel() for p in net.parameters()) == version.params, version.name


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


def test_classic_summary_prints_the_seed_v1_table():
    text = classic_summary("v1")
    expected = [(n, "[" + ", ".join(map(str, s)) + "]", f"{p:,}") for n, s, p in SEED_V1]
    assert _rows(text) == expected
    assert "Total params: 420,614" in text
    assert "Trainable params: 420,614" in text
    assert "Non-trainable params: 0" in text
    assert text.splitlines()[0] == "=" * 64


def test_classic_summary_v2_total_is_the_table_sum():
    text = classic_summary("v2")
    assert len(_rows(text)) == len(SEED_V2)
    assert "Total params: 99,746" in text


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


def test_compact_versions_stay_under_their_budgets():
    for name, budget in (("v3", 20_000), ("v4", 8_000)):
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
