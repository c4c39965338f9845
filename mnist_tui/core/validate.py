"""Every rule a training config must meet, in one place: the CLI, the TUI's form and the
engine all ask this module (the config dataclasses stay a leaf that imports nothing)."""

from __future__ import annotations

import math

from mnist_tui.core.config import (
    DEVICES,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_IMAGES,
    MAX_PROCESSES,
    MAX_SEED,
    MAX_TRIAL,
    MNIST_TRAIN_SIZE,
    NAME_RULE,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULERS,
    ConfigError,
    TrainConfig,
)
from mnist_tui.core.versions import VERSIONS

# The recipe's whole-number settings and their highest values (config.py says why each; the
# schema reads config.json with the same bounds). A batch larger than the training images is
# refused below, naming how many there are (MAX_BATCH_SIZE is the most there can be).
_WHOLE_RECIPE = (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH_SIZE), ("test_batch_size", MAX_BATCH_SIZE), ("step_size", MAX_EPOCHS))


def _whole(value: object, low: int, high: float = math.inf) -> bool:
    """Whether value is a whole number (not a bool) in [low, high]."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def config_problems(config: TrainConfig) -> dict[str, str]:
    """Every reason this configuration cannot run, keyed by field, in words a user can act on."""
    problems: dict[str, str] = {}
    r = config.recipe
    if config.model not in VERSIONS:
        problems["model"] = f"unknown model {config.model!r} (choose from {', '.join(VERSIONS)})"
    for name, highest in _WHOLE_RECIPE:
        value = getattr(r, name)
        if not _whole(value, 1):
            problems[name] = f"{name.replace('_', ' ')} must be a positive whole number, got {value!r}"
        elif value > highest and name != "batch_size":
            problems[name] = f"{name.replace('_', ' ')} must be at most {highest:,}, got {value:,}"
    if not isinstance(r.lr, (int, float)) or not math.isfinite(r.lr) or r.lr <= 0:
        problems["lr"] = f"learning rate must be a positive number, got {r.lr!r}"
    if not isinstance(r.weight_decay, (int, float)) or not math.isfinite(r.weight_decay) or not r.weight_decay >= 0:
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
    if not isinstance(r.momentum, (int, float)) or not 0 <= r.momentum < 1:
        problems["momentum"] = f"momentum must be in [0, 1), got {r.momentum!r}"
    if not isinstance(config.progress_seconds, (int, float)) or not math.isfinite(config.progress_seconds) or config.progress_seconds < 0:
        problems["progress_seconds"] = f"seconds between progress updates must be zero or more, got {config.progress_seconds!r}"
    if not _whole(config.seed, 0, MAX_SEED):
        problems["seed"] = f"seed must be a whole number from 0 to 2^62 - 1, got {config.seed!r}"
    if config.device not in DEVICES:
        problems["device"] = f"unknown device {config.device!r} (choose from {', '.join(DEVICES)})"
    if config.limit is not None and not _whole(config.limit, 1, MAX_IMAGES):
        problems["limit"] = f"training subset must be a number of images from 1 to {MAX_IMAGES:,}, got {config.limit!r}"
    if config.test_limit is not None and not _whole(config.test_limit, 1, MAX_IMAGES):
        problems["test_limit"] = f"test subset must be a number of images from 1 to {MAX_IMAGES:,}, got {config.test_limit!r}"
    if config.target is not None and (isinstance(config.target, bool) or not isinstance(config.target, (int, float)) or not 0 < config.target <= 100):
        problems["target"] = f"target test accuracy must be a percentage above 0 and at most 100, got {config.target!r}"
    if config.study is not None and (not isinstance(config.study, str) or not NAME_RULE.fullmatch(config.study)):
        problems["study"] = f"a study name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, got {config.study!r:.80}"
    if config.trial is not None and not _whole(config.trial, 0, MAX_TRIAL):
        problems["trial"] = f"trial must be a whole number from 0 to {MAX_TRIAL:,}, got {config.trial!r}"
    if not _whole(config.processes, 1, MAX_PROCESSES):
        problems["processes"] = f"processes must be a whole number from 1 to {MAX_PROCESSES}, got {config.processes!r}"
    elif "batch_size" not in problems and (uneven := split_problem(r.batch_size, config.processes)):
        problems["processes"] = uneven
    images = MNIST_TRAIN_SIZE if config.limit is None or "limit" in problems else min(config.limit, MNIST_TRAIN_SIZE)
    if "holdout" not in problems:
        images = min(images, MNIST_TRAIN_SIZE - config.holdout)
    if "batch_size" not in problems and r.batch_size > images:
        problems["batch_size"] = f"batch size {r.batch_size:,} is larger than the {images:,} training images"
    return problems


def split_problem(batch_size: int, processes: int) -> str | None:
    """Why a global batch cannot be shared by this many processes, or None if it can."""
    if batch_size % processes:
        return f"batch size {batch_size} does not split evenly between {processes} processes; choose a multiple of {processes}"
    return None


def check_config(config: TrainConfig) -> None:
    """Raise ConfigError naming every problem, or return if the config can run."""
    problems = config_problems(config)
    if problems:
        raise ConfigError("; ".join(problems.values()))
