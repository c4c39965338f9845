"""Training configuration: frozen dataclasses holding every default in one place."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

OPTIMIZERS = ("adam", "adamw", "sgd")
MNIST_TRAIN_SIZE = 60_000
SCHEDULERS = ("none", "cosine", "step", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
# auto: bf16 autocast where the hardware computes it natively (see device.resolve_precision).
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class Recipe:
    """How a model version is trained by default; every field can be overridden per run."""

    epochs: int = 20
    batch_size: int = 128
    # Evaluation batches only bound memory; 2000 is what the seed notebooks used.
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
    data_dir: str | None = None  # None: see data.find_root
    runs_dir: str | None = None  # None: see runs.default_runs_dir
    progress_every: int = 10  # batches between progress events...
    progress_seconds: float = 0.25  # ...and at least this many seconds between them
    precision: str = "auto"  # fp32, bf16 (autocast) or auto
    # Hold out the last N training images and evaluate on them instead of the test set, for
    # tuning a recipe without looking at the test set. 0: evaluate on the test set.
    holdout: int = 0
    # On CUDA, record each full batch's forward and backward pass once as a CUDA graph and
    # replay it (see step.py); False trains eagerly. No effect on other devices.
    cuda_graph: bool = True

    def replace(self, **changes) -> "TrainConfig":
        """A copy with top-level or recipe fields changed (recipe fields by their own name)."""
        recipe_names = {f.name for f in dataclasses.fields(Recipe)}
        recipe_changes = {k: v for k, v in changes.items() if k in recipe_names}
        top = {k: v for k, v in changes.items() if k not in recipe_names}
        if recipe_changes:
            top["recipe"] = dataclasses.replace(self.recipe, **recipe_changes)
        return dataclasses.replace(self, **top)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> "TrainConfig":
        """A config from its stored form (config.json, a checkpoint), checked field by field:
        unknown settings (a run saved by a newer mnist-tui) and wrong types are refused with
        a ConfigError naming them."""
        if not isinstance(data, dict) or not isinstance(data.get("recipe", {}), dict):
            raise ConfigError("the stored config is not an object with a recipe object")
        recipe = _checked_fields(Recipe, data.get("recipe", {}))
        top = _checked_fields(cls, {k: v for k, v in data.items() if k != "recipe"})
        return cls(**top, recipe=Recipe(**recipe))


def _checked_fields(kind, data: dict) -> dict:
    """data's keys must be fields of the dataclass `kind`, each value of its default's type."""
    fields = {f.name: f for f in dataclasses.fields(kind) if f.name != "recipe"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown settings {', '.join(map(str, unknown))} (saved by a newer mnist-tui?)")
    for name, value in data.items():
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else None
        allowed: tuple[type, ...] = (str,) if name == "model" else (type(default),) if default is not None else (int, str)
        if isinstance(default, float):
            allowed = (int, float)
        if name in ("limit", "data_dir", "runs_dir") or default is None:
            allowed = allowed + (type(None),)
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            raise ConfigError(f"setting {name} has the wrong type ({type(value).__name__})")
    if "model" in fields and "model" not in data:
        raise ConfigError("the stored config names no model")
    return data


class ConfigError(ValueError):
    """A configuration a run cannot start with; the message says which value and why."""


def config_problems(config: TrainConfig) -> dict[str, str]:
    """Every reason this configuration cannot run, keyed by field, in words a user can act on."""
    from mnist_tui.core.versions import VERSIONS

    problems: dict[str, str] = {}
    r = config.recipe
    if config.model not in VERSIONS:
        problems["model"] = f"unknown model {config.model!r} (choose from {', '.join(VERSIONS)})"
    for name in ("epochs", "batch_size", "test_batch_size", "step_size"):
        value = getattr(r, name)
        if not isinstance(value, int) or value <= 0:
            problems[name] = f"{name.replace('_', ' ')} must be a positive whole number, got {value!r}"
    if not isinstance(r.lr, (int, float)) or not math.isfinite(r.lr) or r.lr <= 0:
        problems["lr"] = f"learning rate must be a positive number, got {r.lr!r}"
    if not r.weight_decay >= 0:
        problems["weight_decay"] = f"weight decay must be zero or more, got {r.weight_decay!r}"
    if not 0 <= r.dropout < 1:
        problems["dropout"] = f"dropout must be in [0, 1), got {r.dropout!r}"
    if r.optimizer not in OPTIMIZERS:
        problems["optimizer"] = f"unknown optimizer {r.optimizer!r} (choose from {', '.join(OPTIMIZERS)})"
    if r.scheduler not in SCHEDULERS:
        problems["scheduler"] = f"unknown scheduler {r.scheduler!r} (choose from {', '.join(SCHEDULERS)})"
    for name, top in (("rotate", 180), ("translate", 0.5), ("scale", 0.5)):
        value = getattr(r, name)
        if not isinstance(value, (int, float)) or not 0 <= value <= top:
            problems[name] = f"{name} must be between 0 and {top}, got {value!r}"
    if config.precision not in PRECISIONS:
        problems["precision"] = f"unknown precision {config.precision!r} (choose from {', '.join(PRECISIONS)})"
    if not isinstance(config.holdout, int) or not 0 <= config.holdout < MNIST_TRAIN_SIZE:
        problems["holdout"] = f"holdout must be a number of images from 0 to {MNIST_TRAIN_SIZE - 1:,}, got {config.holdout!r}"
    if not isinstance(config.progress_seconds, (int, float)) or not config.progress_seconds >= 0:
        problems["progress_seconds"] = f"seconds between progress updates must be zero or more, got {config.progress_seconds!r}"
    if not isinstance(config.seed, int) or config.seed < 0:
        problems["seed"] = f"seed must be a whole number ≥ 0, got {config.seed!r}"
    if config.device not in DEVICES:
        problems["device"] = f"unknown device {config.device!r} (choose from {', '.join(DEVICES)})"
    if config.limit is not None and (not isinstance(config.limit, int) or config.limit <= 0):
        problems["limit"] = f"training subset must be a positive number of images, got {config.limit!r}"
    images = MNIST_TRAIN_SIZE if config.limit is None or "limit" in problems else min(config.limit, MNIST_TRAIN_SIZE)
    if "holdout" not in problems:
        images = min(images, MNIST_TRAIN_SIZE - config.holdout)
    if "batch_size" not in problems and r.batch_size > images:
        problems["batch_size"] = f"batch size {r.batch_size:,} is larger than the {images:,} training images"
    return problems


def check_config(config: TrainConfig) -> None:
    """Raise ConfigError naming every problem, or return if the config can run."""
    problems = config_problems(config)
    if problems:
        raise ConfigError("; ".join(problems.values()))
