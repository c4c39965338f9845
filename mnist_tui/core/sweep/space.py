"""A sweep's search space: the recipe fields a trial draws, each a range or a list of choices.

The default space follows the version's recipe (space.default_space); a TOML file names
others, one table per recipe field:

    [lr]
    low = 1e-3
    high = 0.3
    log = true
    [batch_size]
    choices = [32, 64, 128]

A range whose bounds are both whole numbers is drawn as a whole number. The file is untrusted
input: every problem is a SweepError naming the field, in one line.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_tui.core.config import SCHEDULERS, Recipe, TrainConfig
from mnist_tui.core.sweep.study import SweepError
from mnist_tui.core.validate import config_problems

if TYPE_CHECKING:
    import optuna

SPACE_CAP = 64 * 1024  # a space file is a few lines; more is not one
CHOICES_CAP = 64
# The recipe fields a sweep may draw (test_batch_size changes no result, only speed).
FIELDS = tuple(f.name for f in dataclasses.fields(Recipe) if f.name != "test_batch_size")
_WHOLE = ("epochs", "batch_size", "step_size")
_TEXT = ("optimizer", "scheduler")
BATCH_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class Param:
    """One drawn field: a range [low, high] (log-uniform with log) or a list of choices."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"choices": list(self.choices)} if self.choices else {"low": self.low, "high": self.high, "log": self.log}


Space = dict[str, Param]


def default_space(base: TrainConfig) -> Space:
    """The space searched when no file is given, around the version's recipe in `base`: the
    learning rate from a fifth to five times the recipe's, the batch sizes that fit, weight
    decay, momentum under SGD, dropout where the recipe drops, augmentation where it augments,
    and the schedule; epochs stay as given."""
    r = base.recipe
    space: Space = {"lr": Param(r.lr / 5, r.lr * 5, log=True)}
    images = _train_images(base)
    batches = tuple(b for b in BATCH_SIZES if b <= images)
    if len(batches) > 1:
        space["batch_size"] = Param(choices=batches)
    decay = r.weight_decay if r.weight_decay > 0 else 1e-4
    space["weight_decay"] = Param(decay / 10, decay * 10, log=True)
    if r.optimizer == "sgd":
        space["momentum"] = Param(0.8, 0.99)
    if r.dropout > 0:
        space["dropout"] = Param(0.0, min(0.6, max(0.3, 2 * r.dropout)))
    for name, top in (("rotate", 180.0), ("translate", 0.5), ("scale", 0.5)):
        value = float(getattr(r, name))
        if value > 0:
            space[name] = Param(0.0, min(top, 2 * value))
    space["scheduler"] = Param(choices=SCHEDULERS)
    return space


def _train_images(config: TrainConfig) -> int:
    limit = 60_000 if config.limit is None else min(config.limit, 60_000)
    return min(limit, 60_000 - config.holdout)


def read_space(path: Path, base: TrainConfig) -> Space:
    """The space a TOML file names, checked against `base` (the sweep's config: its limit and
    held-out images bound the batch size); SweepError naming the field and the problem."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover  # Python 3.10
        import tomli as tomllib
    from mnist_tui.core.store import files

    try:
        raw = files.read_bytes(Path(path), SPACE_CAP)
        data = tomllib.loads(raw.decode("utf-8"))
    except files.FileProblem as exc:
        raise SweepError(f"space file: {exc}") from None
    except OSError as exc:
        raise SweepError(f"space file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SweepError(f"space file {path} is not TOML: {exc}") from None
    return space_of(data, base)


def space_of(data: object, base: TrainConfig) -> Space:
    """A space from its TOML or JSON form (space_json), every field checked."""
    if not isinstance(data, dict) or not data:
        raise SweepError("the space names no recipe field (one table per field: [lr] low = ..., high = ...)")
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        raise SweepError(f"space: unknown field {unknown[0][:40]!r} (fields: {', '.join(FIELDS)})")
    return {name: _param(name, table, base) for name, table in data.items()}


def _param(name: str, table: object, base: TrainConfig) -> Param:
    if not isinstance(table, dict):
        raise SweepError(f"space: {name} is not a table (low/high/log or choices)")
    extra = sorted(str(k) for k in set(table) - {"low", "high", "log", "choices"})
    if extra:
        raise SweepError(f"space: {name} has an unknown key {extra[0][:40]!r} (low, high, log or choices)")
    if "choices" in table:
        if set(table) != {"choices"}:
            raise SweepError(f"space: {name} has choices and a range; give one")
        return Param(choices=_choices(name, table["choices"], base))
    if name in _TEXT:
        raise SweepError(f"space: {name} takes choices = [...], not a range")
    low, high, log = table.get("low"), table.get("high"), table.get("log", False)
    for which, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SweepError(f"space: {name}'s {which} is not a number")
        if not math.isfinite(value):
            raise SweepError(f"space: {name}'s {which} is not finite")
        if name in _WHOLE and not isinstance(value, int):
            raise SweepError(f"space: {name}'s {which} is not a whole number")
        _allowed(name, value, base)
    assert isinstance(low, (int, float)) and isinstance(high, (int, float))
    if not isinstance(log, bool):
        raise SweepError(f"space: {name}'s log is not true or false")
    if low >= high:
        raise SweepError(f"space: {name}'s low ({low}) is not below its high ({high})")
    if log and low <= 0:
        raise SweepError(f"space: {name}'s low must be above 0 for a log range")
    return Param(low, high, log)


def _choices(name: str, choices: object, base: TrainConfig) -> tuple[Any, ...]:
    if not isinstance(choices, list) or not 0 < len(choices) <= CHOICES_CAP:
        raise SweepError(f"space: {name}'s choices is not a list of 1 to {CHOICES_CAP} values")
    kinds = (str,) if name in _TEXT else (int,) if name in _WHOLE else (int, float)
    for value in choices:
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise SweepError(f"space: {name}'s choice {str(value)[:40]!r} is not {'text' if name in _TEXT else 'a number'}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SweepError(f"space: {name}'s choice {value} is not finite")
        _allowed(name, value, base)
    if len(set(choices)) != len(choices):
        raise SweepError(f"space: {name}'s choices repeat a value")
    return tuple(choices)


def _allowed(name: str, value: object, base: TrainConfig) -> None:
    """SweepError unless validate.py allows `value` for the recipe field `name` in `base`."""
    problem = config_problems(base.replace(**{name: value})).get(name)
    if problem:
        raise SweepError(f"space: {name}: {problem}"[:300])


def space_json(space: Space) -> dict[str, Any]:
    """The space as JSON (stored in the study's SETUP, read back by space_of)."""
    return {name: param.to_json() for name, param in space.items()}


def suggest(trial: optuna.Trial, space: Space) -> dict[str, Any]:
    """The recipe fields trial draws from the space."""
    drawn: dict[str, Any] = {}
    for name, p in space.items():
        if p.choices:
            drawn[name] = trial.suggest_categorical(name, list(p.choices))
        elif isinstance(p.low, int) and isinstance(p.high, int):
            drawn[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
        else:
            assert p.low is not None and p.high is not None
            drawn[name] = trial.suggest_float(name, float(p.low), float(p.high), log=p.log)
    return drawn


def recipe_point(space: Space, base: TrainConfig) -> dict[str, Any] | None:
    """The recipe's own values of the space's fields, when every one lies in the space (a
    sweep tries it first, so its table shows whether the search beat the recipe); else None."""
    point: dict[str, Any] = {}
    for name, param in space.items():
        value = getattr(base.recipe, name)
        if param.choices:
            if value not in param.choices:
                return None
        elif param.low is None or param.high is None or not param.low <= value <= param.high:
            return None
        point[name] = value
    return point
