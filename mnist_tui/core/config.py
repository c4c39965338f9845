"""Training configuration: frozen dataclasses and their option types, a leaf module (the rules
live in validate.py, each version's recipe in versions.py)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
MNIST_TRAIN_SIZE = 60_000
# The highest value of each whole-number setting, in one place: validate.py refuses more where
# a value enters (the CLI, the Train form, the engine), and the run files' schema
# (store/schema.py) reads config.json, metrics.jsonl and progress.json with the same bounds,
# so that a run which could start can always be listed, followed, stopped and resumed.
MAX_EPOCHS = 1_000_000  # epochs (and step_size, in epochs)
MAX_BATCH_SIZE = MNIST_TRAIN_SIZE  # a batch holds at most the training images (validate names how many)
MAX_IMAGES = 1_000_000_000  # --limit and --test-limit; images and batches a run records
MAX_SEED = 2**62 - 1  # seed + 2 seeds a torch generator too (engine._build)
MAX_TRIAL = 1_000_000_000  # a sweep's trial numbers (core/sweep)
# A sweep's study name: it names its files in .sweeps/ and is marked in each trial's config.
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_SWEEP_HOLDOUT = 1  # a sweep scores on held-out training images, never on the test set
MAX_PROCESSES = 64  # processes of one machine a run may be launched on with --nproc
SCHEDULERS = ("none", "cosine", "step", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
# auto: bf16 autocast where the hardware computes it natively (see device.resolve_precision).
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class Recipe:
    """How a model version is trained by default; every field can be overridden per run."""

    epochs: int = 20
    batch_size: int = 128
    # The most test images evaluated at once (2000, as in the seed notebooks); on the CPU the
    # engine evaluates in smaller chunks, which run faster there (device.test_chunk).
    test_batch_size: int = 2000
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    # cosine anneals over T_max = epochs; step halves every step_size; onecycle warms up to lr
    # over the first 20% of the batches, then anneals to lr/1e4, stepped every batch.
    scheduler: str = "none"
    step_size: int = 5
    dropout: float = 0.0
    # Augmentation, applied per image on the training device (see augment.py); 0 turns it off.
    rotate: float = 0.0  # up to ± this many degrees
    translate: float = 0.0  # up to ± this fraction of the image size, each axis
    scale: float = 0.0  # zoom by 1 ± up to this fraction


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; `config.json` stores it verbatim."""

    model: str
    recipe: Recipe = field(default_factory=Recipe)
    seed: int = 0
    device: str = "auto"
    limit: int | None = None  # train on the first N training images only
    # Evaluate on the first N test (or held-out) images only: a quick check on a slow CPU,
    # whose accuracy is not comparable with the whole test set's (the run records the size).
    test_limit: int | None = None
    data_dir: str | None = None  # None: see data.find_root
    runs_dir: str | None = None  # None: see runs.default_runs_dir
    progress_every: int = 10  # batches between progress events...
    progress_seconds: float = 0.25  # ...and at least this many seconds between them
    precision: str = "auto"  # fp32, bf16 (autocast) or auto
    # Hold out the last N training images and evaluate on them instead of the test set, for
    # tuning a recipe without looking at the test set. 0: evaluate on the test set.
    holdout: int = 0
    # Processes training the run together (torch.distributed DDP, started through torchrun):
    # the batch size is the global batch, split evenly between them.
    processes: int = 1
    # On CUDA, record each full batch's forward and backward pass once as a CUDA graph and
    # replay it (see step.py); False trains eagerly. No effect on other devices.
    cuda_graph: bool = True
    # Stop at the end of the first epoch whose test accuracy (%) reaches this; None: never.
    # The one thing a run decides on its test accuracy: the time it took is the result.
    target: float | None = None
    # CPU threads the trainer computes with: the cores split between the trainers live when it
    # started (hardware.thread_share), set by whoever starts it. None: as many as torch picks.
    threads: int | None = None
    # A trial of a sweep (core/sweep): the Optuna study's name and the trial's number in it.
    # None for a run started by hand.
    study: str | None = None
    trial: int | None = None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with top-level or recipe fields changed (recipe fields by their own name)."""
        recipe_names = {f.name for f in dataclasses.fields(Recipe)}
        recipe_changes = {k: v for k, v in changes.items() if k in recipe_names}
        top = {k: v for k, v in changes.items() if k not in recipe_names}
        if recipe_changes:
            top["recipe"] = dataclasses.replace(self.recipe, **recipe_changes)
        return dataclasses.replace(self, **top)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> TrainConfig:
        """A config from its stored form (config.json, a checkpoint), checked field by field:
        unknown settings (a run saved by a newer mnist-tui) and wrong types are refused with
        a ConfigError naming them."""
        if not isinstance(data, dict) or not isinstance(data.get("recipe", {}), dict):
            raise ConfigError("the stored config is not an object with a recipe object")
        recipe = _checked_fields(Recipe, data.get("recipe", {}))
        top = _checked_fields(cls, {k: v for k, v in data.items() if k != "recipe"})
        return cls(**top, recipe=Recipe(**recipe))


# Optional settings whose type the default (None) cannot tell.
_OPTIONAL_TYPES: dict[str, type] = {"study": str, "trial": int}


def _checked_fields(kind: type[Recipe | TrainConfig], data: dict[str, Any]) -> dict[str, Any]:
    """data's keys must be fields of the dataclass `kind`, each value of its default's type."""
    fields = {f.name: f for f in dataclasses.fields(kind) if f.name != "recipe"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown settings {', '.join(map(str, unknown))} (saved by a newer mnist-tui?)")
    for name, value in data.items():
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else None
        allowed: tuple[type, ...] = (str,) if name == "model" else (type(default),) if default is not None else (int, str)
        if isinstance(default, float) or name == "target":
            allowed = (int, float)
        if name in ("limit", "test_limit", "data_dir", "runs_dir", "target") or default is None:
            allowed = allowed + (type(None),)
        if name in _OPTIONAL_TYPES:
            allowed = (_OPTIONAL_TYPES[name], type(None))
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            raise ConfigError(f"setting {name} has the wrong type ({type(value).__name__})")
    if "model" in fields and "model" not in data:
        raise ConfigError("the stored config names no model")
    return data


class ConfigError(ValueError):
    """A configuration a run cannot start with; the message says which value and why."""
