"""The measured figures (accuracy per seed, seconds per epoch or run) as data: the benchmarks
write measured.json, the registry (core/versions.py) reads it; nobody copies figures by hand.

The file is untrusted like any other: a figure that is not a number in its range is left
out (the app then says "not measured"), and a damaged file costs the figures, never a crash.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

MEASURED_ENV = "MNIST_TUI_MEASURED"  # another file (the tests' fixed copy, tests/data/measured.json)
SHIPPED = Path(__file__).with_name("measured.json")
MAX_BYTES = 1 << 20
PRECISIONS = ("fp32", "bf16")


def path() -> Path:
    return Path(os.environ[MEASURED_ENV]) if os.environ.get(MEASURED_ENV) else SHIPPED


def read(source: Path | None = None) -> dict[str, Any]:
    """The whole file as a dict ({} when it is missing, too large or not a JSON object)."""
    try:
        with open(source or path(), "rb") as fh:
            blob = fh.read(MAX_BYTES + 1)
        loaded = json.loads(blob) if len(blob) <= MAX_BYTES else None
    except (OSError, ValueError, RecursionError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _number(value: object, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and low <= number <= high else None


def figures(kind: str, name: str, data: dict[str, Any] | None = None) -> tuple[tuple[float, ...], tuple[tuple[str, float], ...]]:
    """(accuracies, seconds by precision) of one entry: kind "versions" (seconds per epoch) or
    "presets" (seconds per run); the figures that pass their checks, in the file's order."""
    section = (read() if data is None else data).get(kind)
    entry = section.get(name) if isinstance(section, dict) else None
    if not isinstance(entry, dict):
        return (), ()
    raw_accuracy = entry.get("accuracy")
    accuracies = [_number(v, 0.0, 100.0) for v in raw_accuracy] if isinstance(raw_accuracy, list) else []
    raw_seconds = entry.get("seconds")
    seconds = [(mode, _number(raw_seconds[mode], 0.0, 1e9)) for mode in raw_seconds if mode in PRECISIONS] if isinstance(raw_seconds, dict) else []
    return tuple(a for a in accuracies if a is not None), tuple((mode, s) for mode, s in seconds if s is not None)


def record(
    kind: str, name: str, *, accuracy: list[float] | None = None, seconds: dict[str, float] | None = None, note: str = "", target: Path | None = None
) -> Path:
    """Write one entry's new figures into measured.json (the benchmarks call this), keeping the
    rest of the file; seconds are merged by precision, and `note` (which benchmark, machine,
    date) is kept under "notes" for each figure it names. Written to a new file, then renamed."""
    from mnist_tui.core.store.files import write_atomic

    target = target or path()
    data = read(target)
    section = data[kind] = _object(data.get(kind))
    entry = section[name] = _object(section.get(name))
    notes = entry["notes"] = _object(entry.get("notes"))
    if accuracy is not None:
        entry["accuracy"] = [round(a, 2) for a in accuracy]
        notes["accuracy"] = note
    if seconds:
        entry["seconds"] = {**_object(entry.get("seconds")), **{mode: round(s, 1) for mode, s in seconds.items()}}
        notes.update({mode: note for mode in seconds})
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    write_atomic(target, lambda fh: fh.write(text))
    return target


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
