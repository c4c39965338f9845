"""Generated run files and arguments against every reader (issue 33): what must always hold.

A run folder written by a real training is the template; Hypothesis edits one to three of its
files (a field set to a schema-valid extreme or to anything at all, a field removed, a file
replaced by garbage, cut short, nested deep, made a directory, a FIFO or a symbolic link) and
puts the result between two good runs. Every reader (the store's listing, directly and through
an edited index file, `mnist-tui runs`, `follow` of an ended and of a live run, `eval`,
`predict`, the Runs screen and a run's detail) either shows the run or lists it `damaged` with
a reason; none raises, hangs or prints a control character, and the good runs list as before.
Folder names, checkpoint bytes and every option of every command are generated the same way.

Example counts scale with the Hypothesis profile (tests/conftest.py): `make test` runs the
"ci" profile, `make test-slow` the "slow" one. A finding is kept below as a named test marked
xfail(strict=True) with its shrunk example, and the property steps around it until it is fixed.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import math
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterable
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_tui import cli
from mnist_tui.core import history
from mnist_tui.core.config import OPTIMIZERS, SCHEDULERS
from mnist_tui.core.store import follow, index, list_runs, read_points, read_progress, read_run
from mnist_tui.core.store.heartbeat import STALE_AFTER_S
from mnist_tui.core.store.schema import WRITTEN_STATUSES, Status
from mnist_tui.core.versions import VERSIONS, get_version
from mnist_tui.present.runs import RUN_COLUMNS, run_cell
from mnist_tui.present.text import printable
from tests.ui_helpers import write_run

# What a terminal would act on: C0 controls but tab and newline, DEL, C1 (ESC among the C0).
CONTROLS = {chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}
STATUSES = set(Status.__args__)  # type: ignore[attr-defined]
GOOD = {"20261101T100000Z-v2-aaaaaa": ("finished", 3), "20261103T100000Z-v1-cccccc": ("stopped", 1)}
NAME = "20261102T100000Z-v2-b0b0b0"  # the generated run, listed between the good ones
MAX = 1.7976931348623157e308
SETTLE_S = 60.0  # longest a screen may take to read and show a handful of runs


# Every finding of the properties so far is fixed and kept as a named test below; a new one is
# added as a named xfail(strict=True) test with its shrunk example, and the property steps
# around it until it is fixed.


def examples(n: int) -> int:
    """n examples in the ci profile (max_examples 100), scaled with the profile's max_examples."""
    return max(1, n * settings().max_examples // 100)


# ---------------------------------------------------------------------------------------------
# Values


class Raw(str):
    """JSON text written as it is: what json.dumps cannot make (100,000 levels, 1e999)."""


EXTREME_NUMBERS = [1e308, -1e308, MAX, 5e-324, -5e-324, 0.0, -0.0, math.inf, -math.inf, math.nan, 2**63, 2**63 - 1, -(2**63), -(2**63) - 1]
EXTREME_NUMBERS += [2**31, 2**53 + 1, 10**400, -(10**400), 10**6 + 1, 101, 100, 1, 0, -1, 0.5, 1e-300]
NASTY_TEXT = ["", " ", "[red]", "[/]", "[bold red]x[/bold red]", "[GPU 0; x=1: y]", "[link=file:///etc/passwd]x[/link]", "\x1b[2J", "\x1b]0;pwned\x07"]
NASTY_TEXT += ["\x9b31m", "\x1bc", "a\rb", "\x00", "\x7f", "\u202e", "\ud800", "tab\tnew\nline", "\u2028", "x" * 5000, "[" * 3000, "99", "1e308", "nan", "true"]
RAW_JSON = [Raw("[" * 100_000 + "]" * 100_000), Raw("[" * 33 + "]" * 33), Raw("1e999"), Raw("-1e999"), Raw("1" + "0" * 5000), Raw("NaN"), Raw("-Infinity")]
RAW_JSON += [Raw('{"a": 1, "a": 2}'), Raw('"\\udfff"'), Raw("1.0e-400")]

numbers = st.one_of(st.sampled_from(EXTREME_NUMBERS), st.integers(), st.floats())
texts = st.one_of(
    st.sampled_from(NASTY_TEXT),
    st.text(max_size=20),
    st.text(st.characters(categories=["Cc", "Cs", "Cf", "Zl", "Zp"]), max_size=8),
    st.tuples(st.sampled_from(NASTY_TEXT), st.text(max_size=8)).map("".join),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
anything = st.one_of(
    scalars,
    st.sampled_from(RAW_JSON),
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6),
    st.integers(30, 40).map(lambda depth: _nested(depth)),
)
TIMES = [
    "2026-11-02T10:00:00+00:00",
    "2026-11-02T10:00:00",
    "9999-12-31T23:59:59+00:00",
    "0001-01-01T00:00:00+00:00",
    "2026-11-02T10:00:00+14:00",
    "2026-13-45T99:00:00Z",
    "yesterday",
]


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# The documented fields (README "Run folder format"): the schema-valid values of each.
INTS = {"epochs": (1, 10**6), "epoch": (1, 10**6), "epochs_done": (0, 10**6), "batch_size": (1, 10**9), "test_batch_size": (1, 10**9), "step_size": (1, 10**6)}
INTS |= {"limit": (1, 60000), "test_limit": (1, 10000), "holdout": (0, 59999), "processes": (1, 64), "world_size": (1, 10**6), "params": (0, 10**12)}
INTS |= {"train_size": (0, 10**9), "test_size": (0, 10**9), "batches_per_epoch": (1, 10**9), "seed": (0, 2**63 - 1), "batch": (0, 10**9), "batches": (1, 10**9)}
INTS |= {"pid": (0, 2**31), "format": (1, 1)}
FLOATS = {"lr": (0, MAX), "weight_decay": (0, MAX), "momentum": (0, 1), "dropout": (0, 1), "rotate": (0, 180), "translate": (0, 0.5), "scale": (0, 0.5)}
FLOATS |= {"target": (0, 100), "train_loss": (0, MAX), "test_loss": (0, MAX), "train_acc": (0, 100), "test_acc": (0, 100), "seconds": (0, MAX)}
FLOATS |= {"images_per_s": (0, MAX), "memory_mb": (0, MAX), "elapsed": (0, MAX), "cpu_seconds": (0, MAX), "cpu_percent": (0, 1e5), "rss_mb": (0, MAX)}
FLOATS |= {"gpu_util": (0, 100), "gpu_memory_mb": (0, MAX), "loss": (0, MAX), "accuracy": (0, 100), "seconds_left": (0, MAX)}
WORDS = {
    "model": list(VERSIONS),
    "optimizer": list(OPTIMIZERS),
    "scheduler": list(SCHEDULERS),
    "precision": ["fp32", "bf16", "auto"],
    "status": list(WRITTEN_STATUSES),
}
WORDS |= {"device": ["cpu", "cuda", "mps", "auto"], "phase": ["training", "evaluating"], "evaluated_on": ["test", "holdout"], "created": TIMES}


def valid(file: str, key: Any) -> st.SearchStrategy:
    """A schema-valid value of a field, as extreme as the format allows."""
    if key == "updated":
        return st.floats(0, MAX) if file == "progress.json" else st.sampled_from(TIMES)
    if key in INTS:
        low, high = INTS[key]
        return st.one_of(st.sampled_from([low, high]), st.integers(low, high))
    if key in FLOATS:
        low, high = FLOATS[key]
        return st.one_of(st.sampled_from([low, high, 5e-324]).filter(lambda v: low <= v <= high), st.floats(low, high))
    if key in ("status", "phase"):
        return st.sampled_from(WORDS[key])
    if key in WORDS:  # any text is a model's, a device's or a precision's name (to be shown; one that is no version cannot be evaluated)
        return st.one_of(st.sampled_from(WORDS[key]), texts.filter(lambda t: len(t) <= 40))
    return texts


# ---------------------------------------------------------------------------------------------
# Run folders


@dataclass(frozen=True)
class Edit:
    """One change to a run's files: `set` a field (where: its path; a metrics line's index
    first), `delete` it, `line` (replace a metrics or batches.csv line), `replace` the whole
    file's bytes, or make it a `kind` of thing that is not a file to read."""

    what: str
    file: str
    where: tuple = ()
    value: Any = None

    def __repr__(self) -> str:
        shown = repr(self.value)
        shown = shown if len(shown) <= 120 else f"{shown[:100]}…({len(shown)} chars)"
        return f"Edit({self.what} {self.file}{''.join(f'[{w!r}]' for w in self.where)}{'' if self.what == 'delete' else ' = ' + shown})"


@dataclass
class Template:
    """A real run's files, parsed: the starting point of every generated run."""

    config: dict
    status: dict
    metrics: list
    points: list[str]  # batches.csv's lines, the header first
    progress: dict
    checkpoint: bytes
    paths: dict[str, list[tuple]] = field(default_factory=dict)  # each JSON file's field paths


JSON_FILES = ("config.json", "status.json", "progress.json", "notes.json")
FILES = (*JSON_FILES, "metrics.jsonl", "batches.csv", "checkpoint.pt")
# The user's note and tags (core/store/notes.py): whatever becomes of them, the run lists as before.
NOTES_JSON = {"format": 1, "note": "first try", "tags": ["best", "baseline"]}
# config.json's stamp (core/stamp.py), fixed: the machine's and checkout's vary.
STAMP = {"mnist_tui": "1.0", "python": "CPython 3.11.7", "torch": "2.14.1", "cuda": None, "cudnn": None, "cpu": "AMD EPYC", "cpu_flags": "fpu sse2 avx2"}
STAMP |= {"gpu": None, "git": {"commit": "ab" * 20, "dirty": True, "diff_sha256": "cd" * 32, "diff_bytes": 120, "diff_saved": False}}
KINDS = ("missing", "directory", "fifo", "symlink to /dev/zero", "dangling symlink", "symlink to a good run's file", "too large")
CSV_FIELDS = ["nan", "inf", "-inf", "1e308", "5e-324", "-0", "1e999", str(2**63), "9" * 5000, "", " 1", "0x10", "1_000", "١٢", "1.5", "-1", "101", "0"]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    paths = []
    for key, inner in value.items():
        paths.append((*prefix, key))
        if isinstance(inner, dict):
            paths.extend(_paths(inner, (*prefix, key)))
    return paths


@st.composite
def edits(draw, template: Template, files: tuple[str, ...] = FILES) -> Edit:
    file = draw(st.sampled_from(files))
    # Half the edits keep to the schema (the run must then show, extremes and all), half break it.
    how = draw(st.sampled_from(["valid"] * 6 + ["set", "set", "delete", "line", "replace", "kind"]))
    if how == "valid" and file in ("config.json", "status.json", "progress.json", "metrics.jsonl"):
        where = (draw(st.integers(0, len(template.metrics) - 1)), draw(st.sampled_from(list(template.metrics[0])))) if file == "metrics.jsonl" else None
        where = where or draw(st.sampled_from(template.paths[file]))
        return Edit("set", file, where, draw(valid(file, where[-1])))
    how = "set" if how == "valid" else how
    if how == "kind":
        return Edit("kind", file, value=draw(st.sampled_from(KINDS)))
    if how == "replace":
        original = _original(template, file)
        content = draw(
            st.one_of(
                st.integers(0, len(original)).map(lambda n: original[:n]),  # cut short
                st.binary(max_size=200),
                st.sampled_from([b"", b"\xef\xbb\xbf" + original, original.decode("latin-1").encode("utf-16"), b"\x00" * 64, b"\xff\xfe\xfd"]),
                anything.map(lambda v: dump(v).encode("utf-8", "surrogatepass")),
            )
        )
        return Edit("replace", file, value=content)
    if file == "checkpoint.pt":
        return Edit("replace", file, value=draw(checkpoint_bytes(template.checkpoint)))
    if file == "batches.csv":
        line = draw(st.integers(0, len(template.points) - 1))
        if how == "line":
            return Edit("line", file, (line,), draw(st.one_of(texts, st.lists(st.sampled_from(CSV_FIELDS), max_size=7).map(",".join))))
        return Edit("set", file, (line, draw(st.integers(0, 4))), draw(st.one_of(st.sampled_from(CSV_FIELDS), texts)))
    if file == "metrics.jsonl":
        line = draw(st.integers(0, len(template.metrics)))  # one past the end: a line added
        if how == "line":
            return Edit("line", file, (line,), draw(anything))
        key = draw(st.sampled_from([*template.metrics[0], "extra"]))
        return Edit(how, file, (line, key), draw(st.one_of(valid(file, key), anything)) if how == "set" else None)
    where = draw(st.sampled_from(template.paths[file]))
    if how == "delete":
        return Edit("delete", file, where)
    return Edit("set", file, where, draw(st.one_of(valid(file, where[-1]), anything)))


def checkpoint_bytes(good: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.just(good),
        st.binary(max_size=300),
        st.integers(0, len(good)).map(lambda n: good[:n]),
        st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)).map(lambda t: good[: t[0]] + bytes([t[1]]) + good[t[0] + 1 :]),
        st.lists(st.tuples(st.sampled_from(["archive/data.pkl", "archive/version", "x"]), st.binary(max_size=50)), max_size=3).map(_zip),
        st.sampled_from(["top", "model", "config", "rng"]).map(crafted_checkpoint),
    )


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return out.getvalue()


TRIPPED: list[str] = []


def tripwire(where: str) -> str:
    """Called only if a checkpoint's pickle were run: a load that runs code."""
    TRIPPED.append(where)
    return where


class _Payload:
    def __init__(self, where: str):
        self.where = where

    def __reduce__(self):
        return (tripwire, (self.where,))


def crafted_checkpoint(where: str) -> bytes:
    """A torch checkpoint whose pickle calls tripwire() when loaded without weights_only."""
    import torch

    state: dict[str, Any] = {"model": {}, "optimizer": {}, "scheduler": {}, "epoch": 2, "config": {}, "rng": {}}
    if where == "top":
        state = _Payload(where)  # type: ignore[assignment]
    else:
        state[where] = {"x": _Payload(where)}
    out = io.BytesIO()
    torch.save(state, out, pickle_module=pickle)
    return out.getvalue()


@dataclass(frozen=True)
class Generated:
    """A run folder's edits (all the example shows); the folder itself may be replaced."""

    changes: tuple[Edit, ...] = ()
    status: str = "finished"  # status.json's, with its reason (a reader shows both)
    reason: str | None = None
    folder: str = "folder"  # or: empty, a regular file, a symlink to a good run


def generated_runs(
    template: Template, files: tuple[str, ...] = FILES, statuses: tuple[str, ...] = ("finished",) * 3 + WRITTEN_STATUSES
) -> st.SearchStrategy[Generated]:
    return st.builds(
        Generated,
        st.lists(edits(template, files), min_size=1, max_size=3).map(tuple),
        st.sampled_from(statuses),
        st.one_of(st.none(), texts),
        st.sampled_from(["folder"] * 12 + ["empty", "regular file", "symlink to a good run"]),
    )


def _original(template: Template, file: str) -> bytes:
    return {
        "config.json": dump(template.config).encode(),
        "status.json": dump(template.status).encode(),
        "progress.json": dump(template.progress).encode(),
        "metrics.jsonl": "".join(dump(m) + "\n" for m in template.metrics).encode(),
        "batches.csv": "".join(line + "\n" for line in template.points).encode(),
        "checkpoint.pt": template.checkpoint,
        "notes.json": dump(NOTES_JSON).encode(),
    }[file]


def dump(value: Any) -> str:
    """JSON as Python's json module writes it (NaN, Infinity, 10**400, lone surrogates as
    escapes), with Raw text put in as it is."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v) for v in value) + "]"
    return json.dumps(value)


def _set(target: Any, where: tuple, value: Any, delete: bool = False) -> None:
    for key in where[:-1]:
        if not isinstance(target, dict) or not isinstance(target.get(key), dict):
            return  # an earlier edit replaced what held this field
        target = target[key]
    if isinstance(target, dict):
        if delete:
            target.pop(where[-1], None)
        else:
            target[where[-1]] = value


def write_generated(runs: Path, template: Template, run: Generated, name: str = NAME) -> Path:
    """The generated run folder `name` in runs, beside the good runs."""
    path = runs / name
    good = runs / next(iter(GOOD))
    if run.folder != "folder":
        if run.folder == "empty":
            path.mkdir()
        elif run.folder == "regular file":
            path.write_bytes(b"not a run")
        else:
            path.symlink_to(good)
        return path
    contents: dict[str, Any] = {
        "config.json": copy.deepcopy(template.config),
        "status.json": {**template.status, "status": run.status, **({} if run.reason is None else {"reason": run.reason})},
        "progress.json": copy.deepcopy(template.progress),
        "metrics.jsonl": copy.deepcopy(template.metrics),
        "batches.csv": list(template.points),
        "checkpoint.pt": template.checkpoint,
        "notes.json": copy.deepcopy(NOTES_JSON),
    }
    replaced: dict[str, bytes | str] = {}
    for change in run.changes:
        content = contents[change.file]
        if change.what in ("replace", "kind"):
            replaced[change.file] = change.value
        elif change.file == "checkpoint.pt":
            contents[change.file] = change.value
        elif change.file == "batches.csv":
            line = change.where[0]
            if change.what == "line":
                content[line] = change.value
            else:
                fields = content[line].split(",")
                fields[change.where[1] % len(fields)] = change.value
                content[line] = ",".join(fields)
        elif change.file == "metrics.jsonl":
            line = change.where[0]
            if line == len(content):
                content.append({**content[-1], "epoch": line + 1} if content and isinstance(content[-1], dict) else {})
            if change.what == "line":
                content[line] = change.value
            else:
                _set(content[line], change.where[1:], change.value, change.what == "delete")
        else:
            _set(content, change.where, change.value, change.what == "delete")
    path.mkdir()
    for file, content in contents.items():
        if file in replaced:
            _make(path / file, replaced[file], good / file)
            continue
        if file in JSON_FILES:
            data = dump(content).encode("utf-8", "surrogatepass")
        elif file == "metrics.jsonl":
            data = "".join(dump(m) + "\n" for m in content).encode("utf-8", "surrogatepass")
        elif file == "batches.csv":
            data = "".join(line + "\n" for line in content).encode("utf-8", "surrogatepass")
        else:
            data = content
        (path / file).write_bytes(data)
    return path


def _make(target: Path, what: bytes | str, good_file: Path) -> None:
    if isinstance(what, bytes):
        target.write_bytes(what)
    elif what == "directory":
        target.mkdir()
        (target / "x").write_text("{}")
    elif what == "fifo":
        os.mkfifo(target)
    elif what == "symlink to /dev/zero":
        target.symlink_to("/dev/zero")
    elif what == "dangling symlink":
        target.symlink_to(target.parent / "nowhere")
    elif what == "symlink to a good run's file":
        target.symlink_to(good_file)
    elif what == "too large":
        with open(target, "wb") as fh:  # a sparse file past every cap (1 GiB of checkpoint)
            fh.truncate((1 << 30) + 1)
    # "missing": nothing


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Template:
    """A v2 run trained for 2 epochs on 64 images (4 points of batches.csv an epoch)."""
    from mnist_tui.core.train import train

    runs = tmp_path_factory.mktemp("template") / "runs"
    config = get_version("v2").config(epochs=2, batch_size=16, limit=64, test_limit=64, device="cpu", runs_dir=str(runs), progress_seconds=0)
    for _event in train(config):
        pass
    [path] = [p for p in runs.iterdir() if p.is_dir()]
    # What varies from one training or machine to the next is set to fixed values, so that the
    # derandomized examples of the ci profile are the same everywhere (a file's length bounds
    # where it is cut, say).
    fixed = {
        "created": "2026-11-02T10:00:00+00:00",
        "device_name": "CPU, 2 threads",
        "precision": "fp32",
        "torch_version": "2.14.1",
        "mnist_tui_version": "1.0",
        "stamp": STAMP,
    }
    fixed |= {"cuda_graph": False, "cudnn_search": False, "nchw_batch_norms": [], "fused_batch_norms": [], "warning": None}
    config_json = json.loads((path / "config.json").read_text()) | fixed
    config_json["config"] |= {"runs_dir": "/runs", "data_dir": "/data"}
    # host "" is this host: a `running` status with its lock free reads interrupted
    status = json.loads((path / "status.json").read_text()) | {"updated": "2026-11-02T10:05:00+00:00", "pid": 4242, "host": ""}
    progress = {"phase": "training", "epoch": 3, "epochs": 3, "batch": 2, "batches": 4, "loss": 0.5, "accuracy": 80.0, "images_per_s": 900.0}
    progress |= {"seconds_left": 1.5, "updated": 1793613900.0, "cpu_percent": 150.0, "rss_mb": 600.0, "gpu_util": None, "gpu_memory_mb": None}
    figures = {
        "train_loss": 2.25,
        "train_acc": 12.5,
        "test_loss": 2.125,
        "test_acc": 31.25,
        "lr": 0.001,
        "seconds": 1.5,
        "images_per_s": 900.0,
        "memory_mb": None,
    }
    figures |= {"cpu_seconds": 2.0, "cpu_percent": 150.0, "rss_mb": 700.0, "gpu_util": None}
    metrics = [json.loads(line) | figures | {"elapsed": 3.0 * i} for i, line in enumerate((path / "metrics.jsonl").read_text().splitlines(), start=1)]
    header, *points = (path / "batches.csv").read_text().splitlines()
    points = [",".join(line.split(",")[:3] + ["2.25", "12.5"]) for line in points]
    made = Template(config_json, status, metrics, [header, *points], progress, (path / "checkpoint.pt").read_bytes())
    made.paths = {
        "config.json": _paths(config_json) + [("world_size",), ("devices",), ("backend",)],
        "status.json": _paths(status),
        "progress.json": _paths(progress),
        "notes.json": _paths(NOTES_JSON),
    }
    made.paths["status.json"].append(("reason",))
    return made


def store(tmp_path_factory, template: Template, run: Generated) -> Path:
    """A runs folder: the two good runs and the generated one between them."""
    runs = tmp_path_factory.mktemp("store")
    for name, (status, epochs) in GOOD.items():
        write_run(runs, name, name.split("-")[1], status, [97.0 + i for i in range(epochs)], epochs_total=3)
    write_generated(runs, template, run)
    return runs


@pytest.fixture(scope="module", autouse=True)
def own_folders(tmp_path_factory):
    """The index, crash logs and default runs folder in this module's temporary folders."""
    base = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MNIST_TUI_CACHE", str(base / "cache"))
        patch.setenv("MNIST_TUI_LOGS", str(base / "logs"))
        patch.setenv("MNIST_TUI_RUNS", str(base / "runs"))
        yield


# ---------------------------------------------------------------------------------------------
# Running the readers


@contextmanager
def signals_kept():
    """A command in this process installs its own Ctrl+C handlers (and ignores Ctrl+C once a
    run is over): put pytest's back."""
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)


class Hung(Exception):
    """A reader still at work past its bound."""


READER_BOUND_S = 45.0  # a command or listing taking longer is hung (the loaded 2-core machine included)


@contextmanager
def deadline(seconds: float = READER_BOUND_S):
    """Raise Hung in whatever the main thread is doing once `seconds` have passed (SIGALRM;
    a test run outside the main thread goes unbounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(_signum, _frame):
        raise Hung(f"still at work after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def terminal() -> io.TextIOWrapper:
    """A UTF-8 output as strict as a terminal's: a lone surrogate cannot be printed to it."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


def cli_result(*argv: str) -> tuple[int, str, str]:
    """`mnist-tui ARGV` in this process: (exit status, stdout, stderr)."""
    out, err = terminal(), terminal()
    with deadline(), signals_kept(), redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    return code, out.buffer.getvalue().decode(), err.buffer.getvalue().decode()  # type: ignore[attr-defined]


def assert_clean(*outputs: str, allowed: Iterable[str] | None = ()) -> None:
    """No traceback, and no control character or lone surrogate but those `allowed` (None: any,
    while a finding is open) in what a command printed or a screen would send to the terminal."""
    for text in outputs:
        assert "Traceback" not in text, text[-2000:]
        if allowed is not None:
            bad = (CONTROLS & set(text) | set(re.findall("[\ud800-\udfff]", text))) - set(allowed)
            assert not bad, f"{sorted(bad)} would reach the terminal: {text[:400]!r}"


def assert_good_runs(records) -> None:
    by_name = {r.run_id: r for r in records}
    for name, (status, epochs) in GOOD.items():
        assert by_name[name].status == status and by_name[name].epochs_done == epochs, by_name[name]


def assert_shown_or_named(record) -> None:
    assert record.status in STATUSES, record
    assert record.status != "damaged" or record.reason.strip(), record


# ---------------------------------------------------------------------------------------------
# The properties: the store and the headless commands


def _every_reader_settings(n: int):
    return settings(max_examples=examples(n), suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def runs_of(template, tmp_path_factory):
    return lambda run: store(tmp_path_factory, template, run)


def test_the_store_lists_every_generated_run_and_the_good_ones_as_before(template, runs_of):
    @_every_reader_settings(60)
    @given(generated_runs(template))
    def check(run: Generated):
        runs = runs_of(run)
        with deadline():
            records = list_runs(runs)
        names = [r.run_id for r in records]
        assert [n for n in names if n in GOOD] == list(GOOD)
        assert_good_runs(records)
        if run.folder == "regular file":
            assert NAME not in names
            return
        [record] = [r for r in records if r.run_id == NAME]
        assert_shown_or_named(record)
        direct = read_run(runs / NAME)
        assert (direct.status, direct.reason) == (record.status, record.reason)
        read_points(runs / NAME)
        read_progress(runs / NAME)
        row = history.row_of(record)
        for column in RUN_COLUMNS:
            run_cell(row, column.key)
        history.export_csv(history.select(records), runs.parent / f"{runs.name}.csv")

    check()


def test_a_damaged_notes_file_costs_its_run_nothing(template, runs_of):
    """Whatever becomes of notes.json (the user's, written beside the run's files), the run
    lists as it would without it, its notes shown or said to be unreadable."""

    @_every_reader_settings(30)
    @given(generated_runs(template, files=("notes.json",)).filter(lambda run: run.folder == "folder"))
    def check(run: Generated):
        runs = runs_of(run)
        bare = runs.parent / f"{runs.name}-bare"
        bare.mkdir()
        expected = read_run(write_generated(bare, template, Generated((), run.status, run.reason)))
        with deadline():
            [record] = [r for r in list_runs(runs) if r.run_id == NAME]
        assert (record.status, record.reason, record.epochs_done) == (expected.status, expected.reason, expected.epochs_done)
        assert record.notes.problem or all(tag.strip() for tag in record.notes.tags)
        code, out, err = cli_result("runs", "--runs", str(runs), "--filter", "tag:best")
        assert code == 0
        assert_clean(out, err, allowed=())

    check()


def test_mnist_tui_runs_shows_or_names_every_generated_run(template, runs_of):
    @_every_reader_settings(60)
    @given(generated_runs(template))
    def check(run: Generated):
        runs = runs_of(run)
        code, out, err = cli_result("runs", "--runs", str(runs))
        assert code == 0 and err == "", (code, err)
        assert_clean(out)
        lines = out.split("\n")  # a terminal breaks lines at newlines only (not at U+2028 or \x1c)
        for name, (status, _epochs) in GOOD.items():
            assert any(name in line and status in line for line in lines), out
        if run.folder == "regular file":
            return
        record = read_run(runs / NAME)
        assert any(NAME in line and record.status in line for line in lines), out
        if record.status == "damaged":
            assert any(line.startswith(f"{NAME} damaged: ") for line in lines), out

    check()


FOLLOW_BOUND_S = 5.0


@contextmanager
def bounded_follow(bound_s: float = FOLLOW_BOUND_S):
    """`follow` raises Hung once it has polled for bound_s."""
    poll = follow.Follower.poll
    started: list[float] = []

    def bounded(self):
        started.append(time.monotonic()) if not started else None
        if time.monotonic() - started[0] > bound_s:
            raise Hung(f"follow still polling after {bound_s:.0f} s")
        return poll(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(follow.Follower, "poll", bounded)
        yield


def test_follow_ends_on_every_generated_run(template, runs_of):
    @_every_reader_settings(40)
    @given(generated_runs(template).filter(lambda run: run.folder != "regular file"))
    def check(run: Generated):
        runs = runs_of(run)
        gone_silent(runs / NAME)  # another host's run: a live one would be followed until Ctrl+C
        record = read_run(runs / NAME)
        with bounded_follow():
            code, out, err = cli_result("follow", NAME, "--runs", str(runs))
        assert code in (0, 1, 130), (code, out, err)
        assert_clean(out, err, allowed=())
        if record.status == "damaged":
            assert code == 1 and err.startswith("mnist-tui: damaged: ") and err.count("\n") == 1, err

    check()


class Terminal(io.TextIOWrapper):
    def isatty(self) -> bool:
        return True


def test_follow_of_a_live_run_shows_any_progress_and_stops_following_on_ctrl_c(template, runs_of):
    """A run whose trainer holds its lock (this test does), with generated progress.json,
    metrics and config: follow shows it, on a terminal (progress bar, time left) or in a log,
    until Ctrl+C, which stops following in one line."""
    from mnist_tui.core.store import RunLock

    live = generated_runs(template, ("progress.json", "progress.json", "metrics.jsonl", "config.json"), ("running",)).filter(lambda run: run.folder == "folder")

    @_every_reader_settings(20)
    @given(live, st.booleans())
    def check(run: Generated, interactive: bool):
        runs = runs_of(run)
        polls = []
        poll = follow.Follower.poll

        def until_ctrl_c(self):
            polls.append(1)
            if len(polls) > 2:
                raise KeyboardInterrupt
            return poll(self)

        lock = RunLock.acquire(runs / NAME)
        out, err = (Terminal(io.BytesIO(), encoding="utf-8", write_through=True) if interactive else terminal()), terminal()
        try:
            with deadline(), pytest.MonkeyPatch.context() as patch, signals_kept(), redirect_stdout(out), redirect_stderr(err):
                patch.setattr(follow.Follower, "poll", until_ctrl_c)
                code = cli.main(["follow", NAME, "--runs", str(runs)])
        finally:
            lock.release()
        printed, said = out.buffer.getvalue().decode(), err.buffer.getvalue().decode()
        assert code in (0, 1), (code, printed, said)
        assert_clean(printed, said, allowed=None if interactive else ())  # a terminal gets the progress bar's own sequences
        if code == 0:
            assert said.endswith(f"stopped following; {NAME} trains on\n"), said

    check()


def gone_silent(run_dir: Path) -> None:
    """A run whose trainer, on whatever host, went silent long ago: its status.json last
    changed past the stale limit (its modification time is what a reader that has not seen
    it change goes by)."""
    status = run_dir / "status.json"
    if status.is_file() and not status.is_symlink():
        then = time.time() - STALE_AFTER_S - 60
        os.utime(status, (then, then))


def test_eval_evaluates_or_refuses_every_generated_run_in_one_line(template, runs_of):
    @_every_reader_settings(40)
    @given(generated_runs(template).filter(lambda run: run.folder != "regular file"))
    def check(run: Generated):
        runs = runs_of(run)
        code, out, err = cli_result("eval", NAME, "--runs", str(runs))
        assert_clean(out, err)
        if code == 0:
            assert out.startswith("run ") and err == "", (out, err)
        else:
            assert code == 1 and out == "" and err.startswith("mnist-tui eval: cannot evaluate ") and err.count("\n") == 1, (code, out, err)

    check()


# ---------------------------------------------------------------------------------------------
# The properties: the Runs screen and a run's detail


def screen_text(app) -> str:
    """What the terminal would be sent for the screen as drawn now (toasts included)."""
    return "\n".join("".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips())


async def open_in_the_app(runs: Path, name: str) -> tuple[str, str, Any, list[str]]:
    """The Runs screen on `runs`, the cursor on `name`, enter: (what the terminal shows after
    the listing, and after enter, the screen enter led to, the notifications' texts)."""
    from textual.widgets import DataTable

    from mnist_tui.ui.app import MnistTuiApp
    from tests.ui_helpers import drained, press, settle

    app = MnistTuiApp(runs_dir=runs, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await asyncio.wait_for(settle(pilot), SETTLE_S)
        table = app.screen.query_one("#runs-table", DataTable)
        names = [str(table.get_row_at(i)[table.get_column_index("run")]) for i in range(table.row_count)]
        assert {printable(n, one_line=True) for n in GOOD} <= set(names), names
        listed = screen_text(app)
        table.move_cursor(row=names.index(printable(name, one_line=True)))
        await press(pilot, "enter")
        await asyncio.wait_for(settle(pilot), SETTLE_S)
        await drained(pilot)
        notes = [note.message for note in app._notifications]
        return listed, screen_text(app) + "\n" + "\n".join(notes), app.screen, notes


def test_the_runs_screen_and_the_run_detail_show_or_name_every_generated_run(template, runs_of):
    from mnist_tui.ui.screens.run_detail import RunDetailScreen
    from mnist_tui.ui.screens.runs import RunsScreen

    @_every_reader_settings(25)
    @given(generated_runs(template).filter(lambda run: run.folder != "regular file"))
    def check(run: Generated):
        runs = runs_of(run)
        record = read_run(runs / NAME)
        with deadline(2 * SETTLE_S + 30):
            listed, shown, screen, notes = asyncio.run(open_in_the_app(runs, NAME))
        assert_clean(listed, allowed=())
        assert_clean(shown, allowed=())
        if record.status == "damaged":
            assert isinstance(screen, RunsScreen) and any(note.startswith(f"{NAME} is damaged: ") for note in notes), notes
        else:
            assert isinstance(screen, RunDetailScreen) and screen.records[0].run_id == NAME

    check()


# ---------------------------------------------------------------------------------------------
# The properties: the index file, checkpoints, folder names


@st.composite
def index_edits(draw) -> tuple[str, tuple, Any]:
    """("file", (), bytes) for the whole index file, or ("set"/"delete", path, value) of a field
    in it: its header, or a run's entry (its signature, config, status, metrics, checkpoint)."""
    how = draw(st.sampled_from(["set", "set", "set", "delete", "file"]))
    if how == "file":
        return "file", (), draw(st.one_of(st.binary(max_size=100), anything.map(lambda v: dump(v).encode("utf-8", "surrogatepass"))))
    top = draw(st.sampled_from(["runs", "runs", "runs", "format", "runs_dir"]))
    if top != "runs":
        return how, (top,), draw(anything)
    name = draw(st.sampled_from([*GOOD, NAME]))
    part = draw(st.sampled_from(["sig", "config", "status", "metrics", "checkpoint", "damaged", None]))
    inner = draw(
        st.sampled_from(
            {
                "sig": [(0,), (0, 1), (3,)],
                "config": [("format",), ("config",), ("config", "model"), ("config", "recipe"), ("config", "recipe", "epochs"), ("params",), ("world_size",)],
                "status": [("status",), ("updated",), ("host",), ("pid",), ("reason",)],
                "metrics": [(0,), (0, 0), (0, 5), (-1, 8), (-1, 12)],
            }.get(part or "", [()])
        )
    )
    path = ("runs", name) + ((part, *inner) if part else ())
    return how, path, draw(st.one_of(anything, valid("status.json" if part == "status" else "config.json", path[-1])))


def _edit_index(data: Any, how: str, path: tuple, value: Any) -> Any:
    target = data
    for key in path[:-1]:
        try:
            target = target[key]
        except (KeyError, IndexError, TypeError):
            return data
    try:
        if how == "delete":
            del target[path[-1]]
        else:
            target[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        pass
    return data


def test_a_listing_through_any_index_file_lists_every_run(template, runs_of):
    """The index file (README: it keeps what each folder's files said) is untrusted input: an
    edited, cut or foreign one costs a read of the folders, never a run's listing."""

    @_every_reader_settings(50)
    @given(generated_runs(template).filter(lambda run: run.folder == "folder"), index_edits())
    def check(run: Generated, edit: tuple[str, tuple, Any]):
        runs = runs_of(run)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(index, "INDEX_MIN_RUNS", 1)  # an index for three runs
            patch.setattr(index, "RACY_NS", -(10**18))  # files written just now are remembered too
            patch.setattr(index, "_memory", {})
            patch.setattr(index, "_saved_at", {})
            before = {r.run_id: (r.status, r.reason, r.epochs_done) for r in list_runs(runs)}
            path = index.index_path(runs)
            how, where, value = edit
            if how == "file":
                path.write_bytes(value)
            elif path.exists():
                data = _edit_index(json.loads(path.read_text()), how, where, value)
                path.write_bytes(dump(data).encode("utf-8", "surrogatepass"))
            index._memory.clear()
            with deadline():
                records = list_runs(runs)
        assert [r.run_id for r in records] == list(before)
        for record in records:
            assert_shown_or_named(record)
            if record.run_id not in where:  # an entry left as it was lists as before
                assert (record.status, record.reason, record.epochs_done) == before[record.run_id], record

    check()


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory) -> Path:
    from PIL import Image, ImageDraw

    path = tmp_path_factory.mktemp("picture") / "seven.png"
    paper = Image.new("L", (80, 80), 235)
    ImageDraw.Draw(paper).line([(30, 15), (50, 15), (36, 65)], fill=30, width=5)
    paper.save(path)
    return path


def test_a_checkpoint_of_any_bytes_is_used_or_refused_and_never_run(template, runs_of, digit_png):
    """checkpoint.pt replaced by anything (random bytes, a cut or altered torch file, a zip of
    garbage, a pickle that would call a function): the listing names it damaged unless it is a
    complete zip, eval and predict use it or refuse it in one line, and nothing in it runs."""

    @_every_reader_settings(30)
    @given(checkpoint_bytes(template.checkpoint))
    def check(content: bytes):
        runs = runs_of(Generated((Edit("replace", "checkpoint.pt", value=content),)))
        record = read_run(runs / NAME)
        if not zipfile.is_zipfile(io.BytesIO(content)):
            assert record.status == "damaged" and "checkpoint.pt" in record.reason, record
        TRIPPED.clear()
        for command in (["eval", NAME], ["predict", NAME, str(digit_png)]):
            code, out, err = cli_result(*command, "--runs", str(runs))
            assert_clean(out, err)
            assert code == 0 and err == "" or code == 1 and out == "" and err.count("\n") == 1, (command, code, out, err)
        assert not TRIPPED, f"a checkpoint's pickle ran code: {TRIPPED}"

    check()


def folder_names() -> st.SearchStrategy[str]:
    """Names a run folder can have on Linux (not hidden: those are not runs), as Python reads
    them: text, brackets, control characters, and bytes that are not UTF-8 (a run copied from
    another system), up to 255 bytes."""
    as_text = st.one_of(st.sampled_from(NASTY_TEXT), texts, st.text(min_size=1, max_size=60)).map(lambda t: t.replace("/", "∕").replace("\x00", ""))
    as_bytes = st.binary(min_size=1, max_size=40).map(lambda b: os.fsdecode(b.replace(b"/", b"_").replace(b"\x00", b"_")))
    return st.one_of(as_text, as_bytes).filter(_possible_name)


def _possible_name(name: str) -> bool:
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:
        return False
    return 0 < len(raw) <= 255 and not name.startswith(".") and name not in GOOD and "exports" != name


def test_a_run_folder_of_any_name_lists_and_prints_without_control_characters(template, runs_of):
    @_every_reader_settings(30)
    @given(folder_names())
    def check(name: str):
        runs = runs_of(Generated(folder="regular file"))  # the good runs only
        write_generated(runs, template, Generated(), name)
        records = list_runs(runs)
        assert_good_runs(records)
        [record] = [r for r in records if r.run_id == name]
        assert record.status == "finished", record
        code, out, err = cli_result("runs", "--runs", str(runs))
        assert code == 0 and err == "", (code, err)
        assert_clean(out)
        assert printable(name, one_line=True).strip()[:20] in out
        for command in (["eval", name], ["follow", name]):
            code, out, err = cli_result(*command, "--runs", str(runs))
            assert code in (0, 1, 2), (command, code, out, err)  # 2: a name that is part of another's
            assert_clean(out, err, allowed=())

    check()


# ---------------------------------------------------------------------------------------------
# The properties: every option of every command


def options() -> list[tuple[str | None, Any]]:
    """(command, argparse action) for every option and argument of every command (None: the
    app's own), from the parser itself, so that a new option is covered as it comes."""
    import argparse

    parser = cli.build_parser()
    commands: dict[str | None, argparse.ArgumentParser] = {None: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands.update(action.choices)
    return [
        (command, action)
        for command, sub in commands.items()
        for action in sub._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
    ]


ARGUMENTS = ["", "-1", "0", "1", "2", "64", "nan", "inf", "-inf", "1e308", "1e999", str(2**63), "9" * 5000, "-0", "0.5", " 1", "1_000", "١٢", "0x10"]
ARGUMENTS += [
    "[red]x",
    "[GPU 0; x=1: y]",
    "\x1b[2J",
    "\x1b]0;pwned\x07",
    "\x9b31m",
    "x" * 5000,
    "{}",
    "[1]",
    "null",
    '{"recipe": 5}',
    '{"model": "v2", "recipe": {"epochs": 1e999}}',
]
ARGUMENTS += ["[" * 100_000, "-", "--", "v2", "cpu", "cuda", "model:v2 acc>", "acc>nan", "lr<1e999", "epochs>=" + "9" * 5000, "b0b0b0", "\udcff"]
# Folders (--runs, --data, --config-json's runs_dir) stay inside this test's folder: a valid one is trained into or deleted from.
FOLDERS = st.one_of(
    st.sampled_from(["", ".", "runs", "[red]", "\x1b[2J", "a" * 300, "x/" * 2500, "no/such/folder", "file.txt", "\udcff"]), st.text(max_size=12)
)


def argument_values(action) -> st.SearchStrategy[str]:
    if action.metavar == "DIR":
        return FOLDERS.map(lambda t: t.replace("..", "_").lstrip("/~")).filter(_arguable)
    choices = [str(c) for c in action.choices or ()]
    return st.one_of(st.sampled_from(ARGUMENTS + choices), texts, numbers.map(str)).filter(_arguable)


def _arguable(value: str) -> bool:
    """A value a shell can pass (no NUL, encodable) that is not a request for help."""
    try:
        os.fsencode(value)
    except UnicodeEncodeError:
        return False
    return "\x00" not in value and not value.startswith(("-h", "--h"))


TRAIN_BOUND_S = 5.0  # a valid value that trains long (--epochs 1000000) is stopped after this


@contextmanager
def no_processes_and_bounded_training():
    """What `train`, `resume`, `--nproc` and `--detach` would start, kept in this process:
    training stops after TRAIN_BOUND_S (exit 130 then), torchrun and detached trainers are not
    started, and MNIST is never downloaded (a folder without it says so)."""
    from mnist_tui import trainer
    from mnist_tui.core import data
    from mnist_tui.core import train as engine
    from mnist_tui.trainer import Launch, world

    train, resume = engine.train, engine.resume

    def bounded(run):
        def wrapped(first, stop=None, *args, **kwargs):
            stop = stop or threading.Event()
            timer = threading.Timer(TRAIN_BOUND_S, stop.set)
            timer.start()
            try:
                yield from run(first, stop, *args, **kwargs)
            finally:
                timer.cancel()

        return wrapped

    class NoLauncher:
        def train(self, config, runs_dir):
            return self._launch(Path(runs_dir) / "never-started")

        def resume(self, run_dir, *args):
            return self._launch(Path(run_dir))

        def _launch(self, run_dir: Path) -> Launch:
            done = threading.Thread(target=lambda: None)
            done.start()
            done.join()
            return Launch(run_dir, None, thread=done)

    def no_download(root):
        raise data.DataError(f"MNIST is not in {data.raw_dir(root)} (no download in the tests)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "train", bounded(train))
        patch.setattr(engine, "resume", bounded(resume))
        patch.setattr(world, "run_world", lambda nproc, rank_args, run_dir, start=None: 0)  # what --nproc starts (trainer.run)
        patch.setattr(trainer, "ProcessLauncher", NoLauncher)  # where the commands find it when they run
        patch.setattr(data, "_download", no_download)
        yield


def test_every_option_of_every_command_exits_0_1_or_2_in_a_few_lines(template, tmp_path_factory, digit_png):
    """Generated values for each option (huge, negative, nan, inf, empty, brackets, escapes,
    very long, JSON deep enough to break a parser): an exit status of 0, 1 or 2 (130: stopped
    after TRAIN_BOUND_S), never a traceback, and an error is one line after argparse's usage."""
    every = options()
    assert {c for c, _ in every} >= {
        None,
        "train",
        "resume",
        "stop",
        "follow",
        "delete",
        "runs",
        "tui",
        "eval",
        "predict",
        "layers",
        "export",
        "queue",
        "note",
        "tag",
    }

    @_every_reader_settings(80)
    @given(st.sampled_from(every).flatmap(lambda pair: st.tuples(st.just(pair), argument_values(pair[1]))))
    def check(choice):
        (command, action), value = choice
        home = tmp_path_factory.mktemp("cli")
        runs = home / "runs"
        runs.mkdir()
        write_generated(runs, template, Generated())  # a finished run, NAME: eval, predict, delete... find it
        (home / "file.txt").write_text("not a folder")
        base = {
            None: [],
            "train": ["train", "--limit", "64", "--test-limit", "64", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--runs", "runs"],
            "predict": ["predict", "b0b0b0", str(digit_png), "--runs", "runs"],
            "note": ["note", "b0b0b0", "a note", "--runs", "runs"],
            "tag": ["tag", "b0b0b0", "best", "--runs", "runs"],
            "runs": ["runs", "--runs", "runs"],
            "layers": ["layers"],
            "tui": ["tui"],
        }.get(command, [command, "b0b0b0", "--runs", "runs"])
        argv = list(base)
        if not action.option_strings:  # a positional: this value in its place
            at = {"run": 1, "image": 2, "model": 1, "text": 2, "tags": 2}[action.dest]
            argv[at : at + 1] = [value] if at < len(argv) else []
            argv += [value] if at >= len(argv) else []
        elif action.nargs == 0:
            argv += [action.option_strings[-1]]
        else:
            argv += [action.option_strings[-1], value]
        cwd = os.getcwd()
        os.chdir(home)  # relative folders land here
        try:
            with no_processes_and_bounded_training():
                code, out, err = cli_result(*argv)
        finally:
            os.chdir(cwd)
        allowed = (0, 1, 2, 130) if command in ("train", "resume") else (0, 1, 2)
        assert code in allowed, (argv[:12], code, out[-500:], err[-500:])
        assert_clean(out, err, allowed=())
        if code not in (0, 130):
            message = [line for line in err.split("\n") if line and not line.startswith(("usage:", " "))]
            assert 1 <= len(message) <= 2 and message[-1].startswith("mnist-tui"), err[-2000:]

    check()


# ---------------------------------------------------------------------------------------------
# Findings: each shrunk example, kept until it is fixed (then its flag above goes to False)


def _one_run(tmp_path_factory, template: Template, run: Generated, name: str = NAME) -> Path:
    """The good runs and `run` as `name`."""
    runs = store(tmp_path_factory, template, Generated(folder="regular file"))
    (runs / NAME).unlink()
    write_generated(runs, template, run, name)
    return runs


@pytest.mark.parametrize(
    "where",
    [
        "status.json's reason",
        "a folder name that is not UTF-8",
        "--runs that is not UTF-8",
    ],
)
def test_a_lone_surrogate_in_a_run_file_or_an_argument_is_printed_without_a_crash(template, tmp_path_factory, where):
    if where == "status.json's reason":
        runs = _one_run(tmp_path_factory, template, Generated(status="failed", reason="\ud800"))
    elif where == "a folder name that is not UTF-8":
        runs = _one_run(tmp_path_factory, template, Generated(), os.fsdecode(b"run-\xff"))
    else:
        runs = tmp_path_factory.mktemp("finding") / os.fsdecode(b"\xff")
    code, out, err = cli_result("runs", "--runs", str(runs))
    assert code in (0, 2)
    assert_clean(out, err)


@pytest.mark.parametrize(
    "run, name",
    [
        (Generated((Edit("set", "config.json", ("device_name",), "\x1b[2J"),)), NAME),
        (Generated(status="failed", reason="\x1b[2J"), NAME),
        (Generated((Edit("set", "config.json", ("format",), "\x1b[2J"),)), NAME),  # damaged: "unknown format version ESC[2J"
        (Generated(), "\x1b[2J"),
    ],
    ids=["device_name", "reason", "format", "folder name"],
)
def test_follow_prints_text_from_run_files_and_folder_names_without_escapes(template, tmp_path_factory, run, name):
    runs = _one_run(tmp_path_factory, template, run, name)
    code, out, err = cli_result("follow", name, "--runs", str(runs))
    assert code in (0, 1)
    assert_clean(out, err)


def test_the_run_detail_title_shows_a_model_named_with_escapes_without_them(template, tmp_path_factory):
    runs = _one_run(tmp_path_factory, template, Generated((Edit("set", "config.json", ("config", "model"), "\x81"),)))
    _listed, shown, _screen, _notes = asyncio.run(open_in_the_app(runs, NAME))
    assert_clean(shown)


def test_a_heartbeat_from_the_future_is_not_live_forever(template, tmp_path_factory):
    """Another host's run whose status.json says 2999 (a wrong clock) but has not changed for
    longer than the stale limit, as this reader sees it, is stale: follow ends, and delete
    applies with --force only."""
    heartbeat = (Edit("set", "status.json", ("host",), "elsewhere"), Edit("set", "status.json", ("updated",), "2999-12-31T23:59:59+00:00"))
    runs = _one_run(tmp_path_factory, template, Generated(heartbeat, status="running"))
    gone_silent(runs / NAME)
    record = read_run(runs / NAME)
    assert record.status == "stale" and record.updated is not None and record.updated.year == 2999, record
    with bounded_follow(2.0):
        code, _out, err = cli_result("follow", NAME, "--runs", str(runs))
    assert code == 1 and err.startswith("mnist-tui: stale: on host elsewhere") and err.count("\n") == 1, err
    code, _out, err = cli_result("delete", NAME, "--yes", "--runs", str(runs))
    assert code == 1 and "--force" in err and (runs / NAME).exists(), err
    code, out, err = cli_result("delete", NAME, "--yes", "--force", "--runs", str(runs))
    assert code == 0 and not (runs / NAME).exists(), (out, err)


def test_follow_of_a_folder_without_config_json_says_damaged_at_once(template, tmp_path_factory):
    runs = _one_run(tmp_path_factory, template, Generated((Edit("kind", "config.json", value="missing"),)))
    with bounded_follow(2.0):
        code, _out, err = cli_result("follow", NAME, "--runs", str(runs))
    assert code == 1 and "damaged" in err


TRAIN_ARGS = ("train", "--limit", "64", "--test-limit", "64", "--epochs", "1", "--batch-size", "16", "--device", "cpu")


def test_a_runs_folder_named_too_long_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli_result("runs", "--runs", "a" * 256)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("mnist-tui runs: error: "), err


def test_a_data_folder_named_too_long_is_refused_in_one_line(tmp_path, monkeypatch):
    """Found by the slow profile: Path.exists raised ENAMETOOLONG out of data.prepare, a
    traceback (fixed in core/data.py)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = cli_result(*TRAIN_ARGS, "--runs", "runs", "--data", "a" * 300)
    assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("mnist-tui: failed: ") and "File name too long" in err, err


def trainer_result(*argv: str) -> tuple[int, str, str]:
    """The trainer's entry point (`python -m mnist_tui.trainer`) run as its launchers run it."""
    done = subprocess.run([sys.executable, "-m", "mnist_tui.trainer", *argv], capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_a_trainer_config_file_nested_deep_is_refused_in_one_line(tmp_path):
    """Found as `train --config-json` nested 100,000 deep (RecursionError out of json.loads, a
    traceback); the config now comes to the trainer's entry point as a file, as untrusted."""
    config = tmp_path / "config.json"
    config.write_text("[" * 100_000)
    code, out, err = trainer_result(str(config), str(tmp_path / "runs" / "20261128T000000Z-v4-abcdef"))
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("mnist-tui trainer: error: "), err
    assert "not valid JSON" in err and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("run_dir", ["../escaped", "runs/../escaped", "elsewhere/run", "runs/.hidden"])
def test_a_run_folder_argument_cannot_place_a_run_outside_the_runs_folder(tmp_path, monkeypatch, run_dir):
    """Found as `train --run-name ../escaped` (the name used as a path); the trainer's entry
    point refuses a RUN_DIR that is not a plain name directly in the config's runs folder,
    in one line, and writes nothing anywhere."""
    from mnist_tui.core.versions import get_version

    (tmp_path / "home").mkdir()
    config = tmp_path / "home" / "config.json"
    config.write_text(json.dumps(get_version("v4").config(epochs=1, limit=64, device="cpu", runs_dir=str(tmp_path / "home" / "runs")).to_dict()))
    monkeypatch.chdir(tmp_path / "home")
    code, out, err = trainer_result(str(config), run_dir)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("mnist-tui trainer: error: RUN_DIR "), err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["config.json", "home"]  # no run, no log, no folder


@pytest.mark.parametrize("argv", [("runs", "--runs", "\x1b[2J"), (*TRAIN_ARGS, "--lr", " -1\x85")], ids=["runs folder", "lr"])
def test_a_folder_argument_with_escapes_is_named_without_them(tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli_result(*argv)
    assert code == 2
    assert_clean(out, err)


@pytest.mark.parametrize(
    "run",
    [Generated(status="failed", reason="\x1b[2J"), Generated((Edit("set", "config.json", ("format",), "\x1b[2J"),))],
    ids=["status.json's reason", "damaged: unknown format version ESC[2J"],
)
def test_the_runs_screen_shows_a_reason_with_escapes_without_them(template, tmp_path_factory, run):
    runs = _one_run(tmp_path_factory, template, run)
    listed, shown, _screen, _notes = asyncio.run(open_in_the_app(runs, NAME))
    assert_clean(listed, shown)


def test_an_index_entry_cannot_list_a_run_damaged_without_a_reason(template, tmp_path_factory):
    runs = _one_run(tmp_path_factory, template, Generated())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(index, "INDEX_MIN_RUNS", 1)
        patch.setattr(index, "RACY_NS", -(10**18))
        patch.setattr(index, "_memory", {})
        patch.setattr(index, "_saved_at", {})
        list_runs(runs)
        path = index.index_path(runs)
        data = json.loads(path.read_text())
        data["runs"][NAME]["checkpoint"] = " "
        path.write_text(json.dumps(data))
        index._memory.clear()
        [record] = [r for r in list_runs(runs) if r.run_id == NAME]
    assert_shown_or_named(record)
