"""Predictions of a saved run's model on test digits, for the predictions grid."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnist_tui.core import data
from mnist_tui.core.device import bf16_native
from mnist_tui.core.step import autocast
from mnist_tui.core.store import CHECKPOINT, CheckpointError, read_run
from mnist_tui.core.store import checkpoint as checkpoints
from mnist_tui.core.versions import get_version

CPU = torch.device("cpu")
# Test images per forward pass: small, because larger chunks' activations (19 MB after v2's
# second convolution at 256) come fresh from the kernel each time and their page faults cost
# more than the forward pass saves (benchmarks/ui_speed.py --only-predictions measures it).
CHUNK = 64
CACHE_SIZE = 4  # classified checkpoints kept, so that mistakes-only and reopening are instant

Progress = Callable[[int, int], None]  # (test images classified so far, test images in all)
Classified = tuple[int, torch.Tensor, torch.Tensor, dict[str, Any]]  # epoch, confidence, predicted class, the weights
CacheKey = tuple[Path, int, str | None, str, str]  # run, checkpoint mtime, data, version, precision


@dataclass(frozen=True)
class Prediction:
    index: int  # position in the test set
    image: torch.Tensor  # uint8 (28, 28)
    label: int
    predicted: int
    confidence: float  # softmax probability of the predicted class

    @property
    def correct(self) -> bool:
        return self.label == self.predicted


@dataclass(frozen=True)
class Predictions:
    run_id: str
    epoch: int
    items: list[Prediction]  # the first `count` test images, or the first mistakes
    mistakes: int  # over the whole test set
    total: int
    precision: str  # what the CPU classified in: fp32, or bf16 autocast
    weights: dict[str, Any] = field(default_factory=dict, repr=False)  # the checkpoint's, of `epoch`: what "why" explains
    run_tested: int | None = None  # the test images the run's own test pass used, when fewer than `total`


_cache: OrderedDict[CacheKey, Classified] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every classification (benchmarks time the first one)."""
    with _cache_lock:
        _cache.clear()


def inference_precision(run_precision: str, requested: str = "auto") -> str:
    """`auto`: the precision the run was evaluated in, so that the mistakes shown agree with
    its test accuracy, but bf16 only where this CPU computes it natively (emulated bf16 is
    slower than fp32). fp32 and bf16 are honoured as asked."""
    if requested not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {requested!r}")
    if requested != "auto":
        return requested
    return "bf16" if run_precision == "bf16" and bf16_native(CPU) else "fp32"


def _weights(run_dir: Path) -> tuple[int, dict[str, Any]]:
    """(epoch, state dict) of the run's checkpoint; CheckpointError if it holds neither."""
    state = checkpoints.load_state(run_dir)
    weights = state.get("model") if isinstance(state, dict) else None
    epoch = state.get("epoch") if isinstance(state, dict) else None
    if not isinstance(weights, dict) or isinstance(epoch, bool) or not isinstance(epoch, int):
        raise CheckpointError("the checkpoint holds no model weights with their epoch")
    return epoch, weights


def inference_model(name: str, weights: dict[str, Any]) -> nn.Module:
    """The version's network with the weights, ready for fast CPU inference: each batch norm
    folded into the convolution before it (one pass over each activation fewer) and the
    channels_last layout oneDNN's convolutions run fastest in."""
    from torch.fx.experimental.optimization import fuse

    try:
        model = get_version(name).build()
        model.load_state_dict(weights)
    except (KeyError, RuntimeError):
        raise CheckpointError(f"the checkpoint does not fit {name[:20]}: made by another version or an older one") from None
    return fuse(model.eval()).to(memory_format=torch.channels_last)


def _classify(run_dir: Path, name: str, data_dir: str | None, precision: str, progress: Progress) -> Classified:
    """Every test image through the checkpoint's model, chunk by chunk, reporting progress."""
    epoch, weights = _weights(run_dir)
    model = inference_model(name, weights)
    _, test = data.load(data_dir)
    total = len(test)
    confidence = torch.empty(total)
    predicted = torch.empty(total, dtype=torch.long)
    progress(0, total)
    with torch.inference_mode():
        for start in range(0, total, CHUNK):
            end = min(start + CHUNK, total)
            images = data.normalise(test.images[start:end]).contiguous(memory_format=torch.channels_last)
            with autocast(CPU, precision):
                logits = model(images)
            confidence[start:end], predicted[start:end] = logits.float().softmax(1).max(1)
            progress(end, total)
    return epoch, confidence, predicted, weights


def _cached(key: CacheKey, compute: Callable[[], Classified]) -> tuple[Classified, bool]:
    """The cached classification for key, or compute and keep it; and whether it was cached."""
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit, True
    result = compute()  # outside the lock: another run's screen need not wait for this one
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return result, False


def predict(
    run_dir: Path,
    count: int = 64,
    mistakes_only: bool = False,
    data_dir: str | None = None,
    precision: str = "auto",
    progress: Progress | None = None,
) -> Predictions:
    """Classify the whole test set with a run's last checkpoint, on the CPU.

    `progress(done, total)` is called from this thread once the model and the test digits are
    loaded (done 0) and after every chunk, the last time with done == total; a classification
    served from the cache reports only (total, total)."""
    run_dir = Path(run_dir).resolve()
    record = read_run(run_dir)
    precision = inference_precision(record.precision, precision)
    report = progress or (lambda _done, _total: None)
    key: CacheKey = (run_dir, (run_dir / CHECKPOINT).stat().st_mtime_ns, data_dir, record.model, precision)
    (epoch, confidence, predicted, weights), cached = _cached(key, lambda: _classify(run_dir, record.model, data_dir, precision, report))
    _, test = data.load(data_dir)
    if cached:
        report(len(test), len(test))
    wrong = (predicted != test.labels).nonzero().flatten()
    indices = wrong[:count].tolist() if mistakes_only else list(range(min(count, len(test))))
    items = [Prediction(i, test.images[i], int(test.labels[i]), int(predicted[i]), float(confidence[i])) for i in indices]
    tested = record.config.get("test_size")
    run_tested = tested if isinstance(tested, int) and not isinstance(tested, bool) and 0 < tested < len(test) else None
    return Predictions(record.run_id, epoch, items, len(wrong), len(test), precision, weights, run_tested)
