"""Predictions of a saved run's model on test digits, for the predictions grid."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_tui.core import data
from mnist_tui.core.store import CHECKPOINT, CheckpointError, read_run
from mnist_tui.core.store import checkpoint as checkpoints
from mnist_tui.core.versions import get_version


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


@functools.lru_cache(maxsize=4)
def _classify(run_dir: Path, checkpoint_mtime: float, data_dir: str | None, name: str) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(epoch, confidence, predicted class) for every test image; cached per checkpoint."""
    state = checkpoints.load_state(run_dir)
    weights = state.get("model") if isinstance(state, dict) else None
    epoch = state.get("epoch") if isinstance(state, dict) else None
    if not isinstance(weights, dict) or isinstance(epoch, bool) or not isinstance(epoch, int):
        raise CheckpointError("the checkpoint holds no model weights with their epoch")
    try:
        model = get_version(name).build()
        model.load_state_dict(weights)
    except (KeyError, RuntimeError):
        raise CheckpointError(f"the checkpoint does not fit {name[:20]}: made by another version or an older one") from None
    model.eval()
    _, test = data.load(data_dir)
    images = data.normalise(test.images)
    with torch.inference_mode():
        probs = torch.cat([model(images[i : i + 2000]).softmax(1) for i in range(0, len(images), 2000)])
    confidence, predicted = probs.max(1)
    return epoch, confidence, predicted


def predict(run_dir: Path, count: int = 64, mistakes_only: bool = False, data_dir: str | None = None) -> Predictions:
    """Classify the whole test set with a run's last checkpoint (on the CPU)."""
    run_dir = Path(run_dir).resolve()
    record = read_run(run_dir)
    epoch, confidence, predicted = _classify(run_dir, (run_dir / CHECKPOINT).stat().st_mtime, data_dir, record.model)
    _, test = data.load(data_dir)
    wrong = (predicted != test.labels).nonzero().flatten()
    indices = wrong[:count].tolist() if mistakes_only else list(range(min(count, len(test))))
    items = [
        Prediction(i, test.images[i], int(test.labels[i]), int(predicted[i]), float(confidence[i]))
        for i in indices
    ]
    return Predictions(record.run_id, epoch, items, len(wrong), len(test))
