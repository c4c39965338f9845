"""CPU training layout: batch norms that channels_last makes slow train in NCHW, same numbers."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from mnist_tui.core import data, fused
from mnist_tui.core.events import RunStarted
from mnist_tui.core.memory_format import nchw_batch_norms
from mnist_tui.core.train import train
from mnist_tui.core.versions import get_version

CPU = torch.device("cpu")


def _v2(hooked: bool):
    # float64, so that the float-summation order the layouts differ in stays invisible.
    torch.manual_seed(0)
    model = get_version("v2").build(dropout=0.0).double().to(memory_format=torch.channels_last)
    names = nchw_batch_norms(model, CPU, "bf16") if hooked else []
    return model, names


def _layouts_seen(model):
    """Record, per convolution and batch norm, whether its input arrived channels_last."""
    seen = {}
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
            module.register_forward_hook(
                lambda m, args, out, name=name: seen.setdefault(name, []).append(args[0].is_contiguous(memory_format=torch.channels_last))
            )
    return seen


def test_nchw_batch_norms_train_to_the_same_weights():
    train_split, _ = data.load()
    x = data.normalise(train_split.images[:64]).double().contiguous(memory_format=torch.channels_last)
    y = train_split.labels[:64]
    plain, _ = _v2(hooked=False)
    hooked, names = _v2(hooked=True)
    assert names == ["bn1", "bn2"]  # 12 and 24 channels; 48 and 64 stay channels_last in bf16
    seen = _layouts_seen(hooked)
    grads, losses, states = [], [], []
    for model in (plain, hooked):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        run = []
        for i in range(3):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            if i == 0:
                grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
            optimizer.step()
            run.append(loss.item())
        losses.append(run)
        states.append(model.state_dict())
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-9, atol=1e-12, msg=name)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-9, atol=0.0)
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=1e-9, atol=1e-12, msg=key)
    assert seen["bn1"] == [False] * 3 and seen["bn2"] == [False] * 3
    assert seen["bn3"] == [True] * 3
    assert seen["conv2"] == [True] * 3 and seen["conv3"] == [True] * 3  # back to channels_last
    # Evaluation never converts.
    hooked.eval()
    with torch.no_grad():
        hooked(x)
    assert seen["bn1"][-1] is True and seen["bn2"][-1] is True


def test_only_the_cpu_gets_nchw_batch_norms():
    model = get_version("v3").build()
    assert nchw_batch_norms(model, torch.device("cuda"), "bf16") == []
    # fp32: only fewer than 16 channels (v3's 12-channel layers); bf16: any count off 16s.
    fp32 = nchw_batch_norms(get_version("v3").build(), CPU, "fp32")
    bf16 = nchw_batch_norms(get_version("v3").build(), CPU, "bf16")
    channels = {n: m.num_features for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert fp32 and all(channels[n] < 16 for n in fp32)
    assert set(fp32) < set(bf16) and all(channels[n] % 16 for n in bf16)
    assert all(channels[n] % 16 == 0 for n in set(channels) - set(bf16))


def test_run_config_names_the_nchw_batch_norms(small_config):
    started = list(train(small_config.replace(epochs=1)))[0]
    assert isinstance(started, RunStarted)
    saved = json.loads((started.run_dir / "config.json").read_text())
    # In fp32, the fused kernels train bn1 where they are built (tests/test_fused.py).
    expected = {"bf16": ["bn1", "bn2"], "fp32": [] if fused.available() else ["bn1"]}[started.precision]
    assert saved["nchw_batch_norms"] == expected
