"""Builders shared by the tests: run folders, checkpoints and arguments made without
training (fixtures in conftest.py build on them)."""

from __future__ import annotations

import json

from mnist_tui.core.store import RunWriter

# The arguments of the uninterrupted reference run several tests compare against: v4's
# recipe draws on every random stream a resume must restore (weights, data order, per-image
# augmentation) and steps its one-cycle schedule every batch. Tests that check no accuracy
# evaluate on the first 500 test images (--test-limit), a tenth of the time of the whole set.
REFERENCE_ARGS = ("--model", "v4", "--epochs", "2", "--limit", "256", "--test-limit", "500", "--device", "cpu")


def evaluate(model, split, batch_size: int, precision: str = "fp32") -> tuple[float, float]:
    """Mean loss and accuracy (%) of `model` over the whole split: the engine's test pass,
    run to its end."""
    from mnist_tui.core.train.loop import evaluation

    steps = evaluation(model, split, batch_size, precision)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def stub_checkpoint(epoch: int, model: dict | None = None, config: dict | None = None):
    """A checkpoint in the documented format with no real training state (for store tests)."""
    import torch

    from mnist_tui.core.store import Checkpoint

    rng = {name: torch.zeros(8, dtype=torch.uint8) for name in ("torch", "order", "augment")}
    return Checkpoint(model=model or {}, optimizer={}, scheduler={}, epoch=epoch, config=config or {}, rng=rng)


def written_run(runs_dir, epochs_done: int = 1, epochs: int = 2, status: str = "stopped", test_acc=lambda epoch: 98.0):
    """A run written by the store's own writer, as the engine writes it, without training:
    `epochs_done` metrics lines and checkpoints of `epochs` planned, then `status`."""
    writer = RunWriter.create(runs_dir, "v2", {"config": {"model": "v2", "recipe": {"epochs": epochs}}})
    for epoch in range(1, epochs_done + 1):
        writer.append_epoch(
            {
                "epoch": epoch,
                "epochs": epochs,
                "train_loss": 0.2,
                "train_acc": 97.0,
                "test_loss": 0.1,
                "test_acc": test_acc(epoch),
                "lr": 1e-3,
                "seconds": 1.0,
                "images_per_s": 1500.0,
            }
        )
        writer.save_checkpoint(stub_checkpoint(epoch))
    writer.close(status)
    return writer.path


def damaged_store(runs_dir):
    """One run of each kind of damage, and one good run; returns {folder: expected reason}."""
    expected = {}
    path = written_run(runs_dir)
    (path / "config.json").write_text('{"format": 1, "run_id": ')
    expected[path.name] = "config.json is not valid JSON"
    path = written_run(runs_dir)
    (path / "checkpoint.pt").unlink()
    expected[path.name] = "checkpoint.pt is missing"
    path = written_run(runs_dir)
    blob = (path / "checkpoint.pt").read_bytes()
    (path / "checkpoint.pt").write_bytes(blob[: len(blob) // 2])
    expected[path.name] = "checkpoint.pt is damaged"
    path = written_run(runs_dir)
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "format": 99}))
    expected[path.name] = "unknown format version 99"
    path = written_run(runs_dir)
    (path / "status.json").unlink()
    expected[path.name] = "status.json is missing"
    path = written_run(runs_dir)
    (path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    expected[path.name] = "metrics.jsonl line 1 lacks"
    good = written_run(runs_dir)
    with open(good / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "te')  # a crash mid-write: ignored, not damage
    return expected, good


def untrained_v2_run(runs_dir, precision: str | None = None):
    """A run folder whose checkpoint holds an untrained v2 (its predictions fixed by the seed)."""
    import torch

    from mnist_tui.core.versions import get_version

    torch.manual_seed(0)
    model = get_version("v2").build()
    meta = {"config": {"model": "v2", "recipe": {"epochs": 1}}}
    if precision is not None:
        meta["precision"] = precision
    writer = RunWriter.create(runs_dir, "v2", meta)
    writer.save_checkpoint(stub_checkpoint(1, model.state_dict(), {"model": "v2"}))
    writer.close("stopped")
    return writer.path


def trained_run(runs_dir, model: str, limit: int, test_limit: int, epochs: int = 1):
    """A run really trained on the CPU on the first `limit` images: its record."""
    from mnist_tui.core.store import list_runs
    from mnist_tui.core.train import train
    from mnist_tui.core.versions import get_version

    config = get_version(model).config(device="cpu", runs_dir=str(runs_dir), epochs=epochs, limit=limit, test_limit=test_limit)
    for _event in train(config):
        pass
    [record] = list_runs(runs_dir)
    return record
