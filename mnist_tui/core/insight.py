"""What a trained model gets right and wrong on the test set: its outputs for every test
image, the confusion matrix, per-class precision and recall, the digits of one cell, and two
runs compared.

The outputs are computed exactly as the engine's test pass computes them (the run's network
as trained, its layout, the run's numeric mode, batches of the run's test batch size), so the
accuracy here is the run's last reported test accuracy, not an approximation of it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mnist_tui.core import data
from mnist_tui.core.device import test_chunk
from mnist_tui.core.predict import CPU, inference_precision
from mnist_tui.core.step import autocast
from mnist_tui.core.store import CHECKPOINT, CheckpointError, RunRecord, read_run
from mnist_tui.core.store import checkpoint as checkpoints
from mnist_tui.core.versions import get_version

CLASSES = 10
Progress = Callable[[int, int], None]  # (test images done, test images in all)


@dataclass(frozen=True)
class Outputs:
    """A run's model on the test set: each image's class probabilities."""

    run_id: str
    model: str
    epoch: int
    precision: str  # fp32, or bf16 autocast
    probs: torch.Tensor  # float32 (N, 10)
    predicted: torch.Tensor  # int64 (N,): the logits' argmax, as the test pass counts it
    labels: torch.Tensor  # int64 (N,)
    images: torch.Tensor  # uint8 (N, 28, 28)
    weights: dict[str, Any] = field(default_factory=dict, repr=False)  # the checkpoint's, of `epoch`: what "why" explains

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class ClassStats:
    digit: int
    images: int  # test images of this digit
    correct: int
    predicted: int  # test images the model called this digit

    @property
    def recall(self) -> float:
        """Of this digit's images, the share (%) called this digit (its accuracy)."""
        return 100.0 * self.correct / self.images if self.images else 0.0

    @property
    def precision(self) -> float:
        """Of the images called this digit, the share (%) that are it."""
        return 100.0 * self.correct / self.predicted if self.predicted else 0.0


@dataclass(frozen=True)
class Confusion:
    """Counts of (true digit, predicted digit) over the test set: rows true, columns predicted."""

    matrix: list[list[int]]

    @property
    def total(self) -> int:
        return sum(map(sum, self.matrix))

    @property
    def correct(self) -> int:
        return sum(self.matrix[d][d] for d in range(CLASSES))

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total if self.total else 0.0

    def classes(self) -> list[ClassStats]:
        columns = [sum(row[d] for row in self.matrix) for d in range(CLASSES)]
        return [ClassStats(d, sum(self.matrix[d]), self.matrix[d][d], columns[d]) for d in range(CLASSES)]

    def worst(self, n: int = 3) -> list[tuple[int, int]]:
        """The n off-diagonal cells with the most images, most first (ties: lower digits)."""
        cells = [(self.matrix[t][p], t, p) for t in range(CLASSES) for p in range(CLASSES) if t != p and self.matrix[t][p]]
        return [(t, p) for _count, t, p in sorted(cells, key=lambda c: (-c[0], c[1], c[2]))[:n]]


def confusion(outputs: Outputs) -> Confusion:
    flat = outputs.labels * CLASSES + outputs.predicted
    counts = torch.bincount(flat, minlength=CLASSES * CLASSES).view(CLASSES, CLASSES)
    return Confusion(counts.tolist())


@dataclass(frozen=True)
class CellDigit:
    """One test image of a confusion cell: where it is, what it is, what the model thinks."""

    index: int
    image: torch.Tensor  # uint8 (28, 28)
    label: int
    top: list[tuple[int, float]]  # the 3 most probable classes, (digit, probability)


def cell(outputs: Outputs, true: int, predicted: int) -> list[CellDigit]:
    """The test images of digit `true` the model called `predicted`, most confident first
    (in a wrong cell: the most confidently wrong first)."""
    members = ((outputs.labels == true) & (outputs.predicted == predicted)).nonzero().flatten()
    order = outputs.probs[members, predicted].argsort(descending=True, stable=True)
    digits = []
    for i in members[order].tolist():
        p, c = outputs.probs[i].topk(3)
        digits.append(CellDigit(i, outputs.images[i], int(outputs.labels[i]), list(zip(c.tolist(), p.tolist()))))
    return digits


@dataclass(frozen=True)
class Comparison:
    """Two runs on the same test images: per true digit, what only one of them gets right."""

    only_a: list[int]  # per digit: images run a gets right and run b wrong
    only_b: list[int]
    both_wrong: int


def compare(a: Outputs, b: Outputs) -> Comparison:
    if len(a) != len(b) or not torch.equal(a.labels, b.labels):
        raise ValueError("the runs were evaluated on different test images")
    right_a, right_b = a.predicted == a.labels, b.predicted == b.labels
    only_a = torch.bincount(a.labels[right_a & ~right_b], minlength=CLASSES).tolist()
    only_b = torch.bincount(a.labels[right_b & ~right_a], minlength=CLASSES).tolist()
    return Comparison(only_a, only_b, int((~right_a & ~right_b).sum()))


_cache: OrderedDict[tuple[Path, int, str | None, str], Outputs] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_SIZE = 4


def _usable(run_dir: Path) -> RunRecord:
    """The run's record, if its checkpoint can be used; CheckpointError in words otherwise
    (the reader's own reasons: a missing or damaged checkpoint, a damaged run)."""
    record = read_run(run_dir)
    if record.status == "damaged":
        raise CheckpointError(record.reason)
    if not (run_dir / CHECKPOINT).exists():
        raise CheckpointError(f"{CHECKPOINT} is missing: no epoch of this run has finished")
    return record


def run_outputs(run_dir: Path, data_dir: str | None = None, precision: str = "auto", progress: Progress | None = None) -> Outputs:
    """The run's last checkpoint on the test images it was evaluated on (its --test-limit
    subset if it had one), as its test pass computed them; cached per checkpoint."""
    run_dir = Path(run_dir).resolve()
    record = _usable(run_dir)
    mode = inference_precision(record.precision, precision)
    key = (run_dir, (run_dir / CHECKPOINT).stat().st_mtime_ns, data_dir, mode)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        if progress:
            progress(len(hit), len(hit))
        return hit
    outputs = _compute(network(run_dir, mode), record.config, data_dir, progress or (lambda _d, _t: None))
    _remember(_cache, key, outputs)
    return outputs


def _remember(cache: OrderedDict[Any, Any], key: object, value: object) -> None:
    """Keep the value, forgetting the oldest beyond CACHE_SIZE."""
    with _cache_lock:
        cache[key] = value
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)


@dataclass(frozen=True)
class Network:
    """A run's trained network, loaded once, ready to classify any digit on the CPU."""

    run_id: str
    model: str
    epoch: int
    precision: str
    module: torch.nn.Module

    def probabilities(self, digits: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 28, 28) digits to (N, 10) class probabilities."""
        with torch.inference_mode(), autocast(CPU, self.precision):
            logits: torch.Tensor = self.module(data.normalise(digits))
        return logits.float().softmax(1)


_networks: OrderedDict[tuple[Path, int, str], Network] = OrderedDict()


def network(run_dir: Path, precision: str = "auto", shown: tuple[int, dict[str, Any]] | None = None) -> Network:
    """The run's last checkpoint as a network (cached per checkpoint file); with `shown`
    (epoch, state dict), that epoch's network instead, as a screen showed it, even when the
    run has saved a later checkpoint since."""
    run_dir = Path(run_dir).resolve()
    record = _usable(run_dir)
    mode = inference_precision(record.precision, precision)
    if shown is not None:
        return Network(record.run_id, record.model, shown[0], mode, _trained_network(record.model, shown[1]))
    key = (run_dir, (run_dir / CHECKPOINT).stat().st_mtime_ns, mode)
    with _cache_lock:
        hit = _networks.get(key)
    if hit is None:
        epoch, weights = _checkpoint(run_dir)
        hit = Network(record.run_id, record.model, epoch, mode, _trained_network(record.model, weights))
        _remember(_networks, key, hit)
    return hit


def _checkpoint(run_dir: Path) -> tuple[int, dict[str, Any]]:
    state = checkpoints.load_state(run_dir)
    weights, epoch = (state.get("model"), state.get("epoch")) if isinstance(state, dict) else (None, None)
    if not isinstance(weights, dict) or isinstance(epoch, bool) or not isinstance(epoch, int):
        raise CheckpointError("the checkpoint holds no model weights with their epoch")
    return epoch, weights


def _compute(net: Network, stored: dict[str, Any], data_dir: str | None, progress: Progress) -> Outputs:
    limit, batch = _test_settings(stored)
    batch = test_chunk(batch, CPU)  # in the engine's chunks: the same outputs as its test pass
    _, test = data.load(data_dir)
    split = data.DeviceSplit.from_split(test, CPU, limit)
    probs = torch.empty(len(split), CLASSES)
    predicted = torch.empty(len(split), dtype=torch.long)
    progress(0, len(split))
    with torch.inference_mode():
        for start in range(0, len(split), batch):
            x = split.images[start : start + batch]
            with autocast(CPU, net.precision):
                out = net.module(x)
            probs[start : start + len(x)] = out.float().softmax(1)
            predicted[start : start + len(x)] = out.float().argmax(1)
            progress(start + len(x), len(split))
    weights = net.module.state_dict()  # shares the network's tensors: no copy
    return Outputs(net.run_id, net.model, net.epoch, net.precision, probs, predicted, split.labels, test.images[: len(split)], weights)


def _test_settings(stored: dict[str, Any]) -> tuple[int | None, int]:
    """The run's test subset (None: all) and test batch size, from its config.json."""
    config = stored.get("config")
    config = config if isinstance(config, dict) else {}
    recipe = config.get("recipe")
    recipe = recipe if isinstance(recipe, dict) else {}
    limit, batch = config.get("test_limit"), recipe.get("test_batch_size")
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
    batch = batch if isinstance(batch, int) and not isinstance(batch, bool) and batch > 0 else 2000
    return limit, batch


def _trained_network(name: str, weights: dict[str, Any]) -> torch.nn.Module:
    """The network as the engine evaluated it: unfused, channels_last, in eval mode."""
    try:
        model = get_version(name).build()
        model.load_state_dict(weights)
    except (KeyError, RuntimeError):
        raise CheckpointError(f"the checkpoint does not fit {name[:20]}: made by another version or an older one") from None
    return model.to(memory_format=torch.channels_last).eval()


@dataclass(frozen=True)
class Explanation:
    """Why a network gave its answer for one digit."""

    probs: torch.Tensor  # (10,)
    predicted: int
    saliency: torch.Tensor  # (28, 28) in [0, 1]: |d logit / d pixel| of the answer, over its largest
    filters: torch.Tensor  # (K, kh, kw): the first convolution's kernels
    activations: torch.Tensor  # (K, H, W): the first convolution's outputs for this digit


def explain(net: Network, digit: torch.Tensor) -> Explanation:
    """Input gradients of the predicted class's logit (one backward pass, in fp32), and the
    first convolution's filters and what they make of the digit.

    Plain input gradients rather than Integrated Gradients: on these small networks both put
    the weight on the same strokes, and one pass answers at once on a CPU where IG's 32 would
    not after every stroke."""
    first = next(m for m in net.module.modules() if isinstance(m, torch.nn.Conv2d))
    seen: list[torch.Tensor] = []
    hook = first.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    try:
        x = data.normalise(digit[None]).requires_grad_(True)
        logits = net.module(x)[0]
    finally:
        hook.remove()
    predicted = int(logits.argmax())
    (grad,) = torch.autograd.grad(logits[predicted], x)
    saliency = grad[0, 0].abs()
    saliency = saliency / saliency.max().clamp_min(1e-12)
    return Explanation(logits.detach().softmax(0), predicted, saliency, first.weight.detach()[:, 0].clone(), seen[0][0].float())
