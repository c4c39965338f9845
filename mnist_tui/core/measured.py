"""The measured figures (accuracy per seed, seconds per epoch or run, and the training step's
milliseconds in fp32 and bf16 per CPU class, which `--precision auto` chooses by) as data: the
benchmarks write measured.json, the registry (core/versions.py) and core/device.py read it;
nobody copies figures by hand.

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
PRECISION_SECTION = "precision"  # {cpu key: {version: {"step_ms": {fp32, bf16}, date, command, ...}}}


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
    return _write(target, data)


def step_ms(cpu: str, version: str, data: dict[str, Any] | None = None) -> dict[str, float]:
    """The training step's median milliseconds by precision for `version` on the CPU class
    `cpu` (hardware.cpu_key), as benchmarks/precision.py measured them: only the figures that
    are numbers in range; {} where the table has no such entry or is damaged."""
    section = (read() if data is None else data).get(PRECISION_SECTION)
    by_cpu = section.get(cpu) if isinstance(section, dict) else None
    entry = by_cpu.get(version) if isinstance(by_cpu, dict) else None
    raw = entry.get("step_ms") if isinstance(entry, dict) else None
    if not isinstance(raw, dict):
        return {}
    found = {mode: _number(raw.get(mode), 1e-3, 1e6) for mode in PRECISIONS}
    return {mode: ms for mode, ms in found.items() if ms is not None}


def record_step_ms(cpu: str, version: str, ms: dict[str, float], *, about: dict[str, Any], target: Path | None = None) -> Path:
    """Write one version's step milliseconds on the CPU class `cpu` into measured.json's
    precision table (benchmarks/precision.py calls this), with `about` (batch, threads, date,
    command, machine) beside them; the rest of the file is kept. Written to a new file, then
    renamed."""
    target = target or path()
    data = read(target)
    section = data[PRECISION_SECTION] = _object(data.get(PRECISION_SECTION))
    by_cpu = section[cpu] = _object(section.get(cpu))
    by_cpu[version] = {"step_ms": {mode: round(value, 2) for mode, value in ms.items()}, **about}
    return _write(target, data)


def _write(target: Path, data: dict[str, Any]) -> Path:
    """measured.json anew: written to a new file, then renamed into place."""
    from mnist_tui.core.store.files import write_atomic

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    write_atomic(target, lambda fh: fh.write(text))
    return target


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
