"""Training steps: eager on the CPU, CUDA graphs on a GPU (those tests run where CUDA is)."""

from __future__ import annotations

import json

import pytest
import torch

from mnist_tui.core import data
from mnist_tui.core.events import BatchProgress, EpochFinished, RunFinished, RunStarted
from mnist_tui.core.optim import make_optimizer
from mnist_tui.core.step import SEARCH_PAYS_FROM_STEPS, EagerStep, GraphStep, make_step, search_pays
from mnist_tui.core.train import train
from mnist_tui.core.versions import get_version

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cpu_trains_eagerly_and_says_so(small_config, runs_dir):
    events = list(train(small_config.replace(epochs=1)))
    started = events[0]
    assert isinstance(started, RunStarted) and started.cuda_graph is False and started.warning is None
    saved = json.loads((started.run_dir / "config.json").read_text())
    assert saved["cuda_graph"] is False and saved["cudnn_search"] is False
    assert isinstance(events[-1], RunFinished) and events[-1].status == "finished"


def test_progress_events_are_spaced_in_time(small_config):
    # 256 images in batches of 16: 16 batches per epoch, one event each when unthrottled...
    config = small_config.replace(epochs=1, batch_size=16, test_batch_size=100)
    every = [e for e in train(config) if isinstance(e, BatchProgress) and e.phase == "training"]
    assert [e.batch for e in every] == list(range(1, 17))
    # ...but with an hour between events only the epoch's last batch reports, and the test
    # pass (500 images in batches of 100) only its start and its end.
    spaced = [e for e in train(config.replace(progress_seconds=3600))]
    assert [(e.phase, e.batch) for e in spaced if isinstance(e, BatchProgress)] == [("training", 16), ("evaluating", 0), ("evaluating", 5)]
    assert sum(isinstance(e, EpochFinished) for e in spaced) == 1


def _twin_steps(device: torch.device, graph: bool, batch: int = 32):
    torch.manual_seed(0)
    version = get_version("v2")
    model = version.build(dropout=0.0).to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(version.config(optimizer="sgd", lr=0.05, weight_decay=0.0), model.parameters(), device)
    return model, optimizer, make_step(model, optimizer, device, "fp32", batch, graph)


@cuda
def test_graph_steps_train_like_eager_steps(monkeypatch):
    # Same algorithms, no TF32 rounding: then only the order of float sums may differ.
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    device = torch.device("cuda")
    train_split, _ = data.load()
    x = data.normalise(train_split.images[:112], device)
    y = train_split.labels[:112].to(device)
    # Three full batches of 32 and the partial batch of 16 an epoch ends with.
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 112, 32)]
    results = []
    for graph in (False, True):
        model, optimizer, step = _twin_steps(device, graph)
        step.prepare(x[:32], y[:32])
        assert isinstance(step, GraphStep) == graph and step.fallback is None
        losses = []
        for xb, yb in batches * 2:
            _, loss = step(xb, yb)
            optimizer.step()
            losses.append(loss.item())
        results.append((losses, model.state_dict()))
    (eager_losses, eager_state), (graph_losses, graph_state) = results
    errors = {}
    for name, value in eager_state.items():
        ref = value.double()
        errors[name] = ((graph_state[name].double() - ref).norm() / max(ref.norm().item(), 1e-12)).item()
    assert max(errors.values()) < 1e-3, errors
    assert graph_losses == pytest.approx(eager_losses, rel=1e-3)


@cuda
def test_a_cuda_run_records_and_replays_its_steps(tmp_path):
    config = get_version("v4").config(epochs=2, limit=2000, device="cuda", runs_dir=str(tmp_path))
    events = list(train(config))
    started, finished = events[0], events[-1]
    assert started.cuda_graph is True and started.warning is None
    assert isinstance(finished, RunFinished) and finished.status == "finished"
    assert finished.final_test_acc > 50


def test_cudnn_times_its_algorithms_only_for_runs_long_enough_to_repay_it(monkeypatch):
    # Recording itself needs a GPU; what is checked here is the cuDNN setting the warm-up
    # and recording run under, and that the user's own setting is put back afterwards.
    seen = []
    monkeypatch.setattr(GraphStep, "_warm_up_and_record", lambda self, saved: seen.append(torch.backends.cudnn.benchmark))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    v2_recipe, v3_fast = 20 * 469, 10 * 469  # v2's 20 epochs; v3's 10-epoch schedule in batches of 128

    def recorded(search: bool) -> GraphStep:
        model, optimizer = _twin_steps(torch.device("cpu"), graph=False)[:2]
        step = make_step(model, optimizer, torch.device("cuda"), "fp32", 32, True, search=search)
        assert isinstance(step, GraphStep)
        step.prepare(x, y)
        assert step.graph and step.searched == seen[-1] and torch.backends.cudnn.benchmark is True
        return step

    for steps, target in [(v2_recipe, None), (v3_fast, None), (v2_recipe, 99.4)]:
        recorded(search_pays(steps, target))
    # A long run searches; a short one, or one that stops at a target accuracy, does not.
    assert seen == [True, False, False]
    assert v3_fast < SEARCH_PAYS_FROM_STEPS <= v2_recipe
    # benchmarks/gpu.py's tune=1 / tune=0 override the rule either way.
    monkeypatch.setattr(GraphStep, "force_search", True)
    recorded(search=False)
    monkeypatch.setattr(GraphStep, "force_search", False)
    recorded(search=True)
    assert seen[-2:] == [True, False]

    # A recording that fails puts the user's setting back too.
    def fail(self, saved):
        raise RuntimeError("no graph today")

    monkeypatch.setattr(GraphStep, "_warm_up_and_record", fail)
    model, optimizer = _twin_steps(torch.device("cpu"), graph=False)[:2]
    step = make_step(model, optimizer, torch.device("cuda"), "fp32", 32, True, search=False)
    with pytest.raises(RuntimeError, match="no graph today"):
        step._record(x, y)
    assert torch.backends.cudnn.benchmark is True and step.searched is False


def test_the_engine_plans_the_search_from_the_runs_steps_and_target(small_config, monkeypatch):
    from mnist_tui.core.train import session as engine

    asked = []
    monkeypatch.setattr(engine, "search_pays", lambda steps, target: asked.append((steps, target)) or False)
    # 256 images in batches of 48: 6 steps an epoch (the last one partial), 3 epochs.
    config = small_config.replace(epochs=3, batch_size=48)
    list(train(config))
    list(train(config.replace(target=99.0)))
    assert asked == [(18, None), (18, 99.0)]


def test_make_step_is_eager_off_cuda():
    model, optimizer, step = _twin_steps(torch.device("cpu"), graph=True)
    assert type(step) is EagerStep and step.graph is False


def test_the_start_line_says_when_steps_replay_and_why_they_do_not(small_config, tmp_path):
    from mnist_tui.headless import start_line

    common = dict(
        run_id="r1",
        run_dir=tmp_path,
        config=small_config,
        device="cuda",
        device_name="NVIDIA H200",
        params=99_746,
        train_size=60_000,
        test_size=10_000,
        batches_per_epoch=469,
        precision="bf16",
    )
    assert "NVIDIA H200 · bf16 · CUDA graph · 60,000 train" in start_line(RunStarted(**common, cuda_graph=True))
    line = start_line(RunStarted(**common, warning="CUDA graph recording failed, training eagerly: boom"))
    assert "CUDA graph" not in line.splitlines()[0] and line.endswith("\nwarning: CUDA graph recording failed, training eagerly: boom")
