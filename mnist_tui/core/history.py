"""Questions asked of many runs at once: filter, sort, summarise as rows, export to CSV."""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from mnist_tui.core.events import EpochFinished
from mnist_tui.core.store import RunRecord
from mnist_tui.core.store.provenance import stamp_of
from mnist_tui.core.store.records import EXPORTS

# What one column of a run holds: text, a number, or None where the run does not say.
Cell = str | int | float | None

# Every column a run has in the runs table and the CSV, in table order (which of them a
# table shows depends on its width: see mnist_tui/present.py).
COLUMNS = (
    "run", "model", "status", "epochs", "final_acc", "best_acc", "min_loss", "params", "seconds", "epoch_s", "img_s", "to_target", "device",
    "lr", "batch", "images", "seed", "precision", "started", "tags",
)  # fmt: skip


@dataclass(frozen=True)
class RunRow:
    """One run as the runs table shows it; `sort_key` orders each column sensibly."""

    record: RunRecord

    @property
    def run(self) -> str:
        return self.record.run_id

    @property
    def status(self) -> str:
        return self.record.status

    @cached_property
    def best(self) -> EpochFinished | None:
        return self.record.best_epoch

    @cached_property
    def lowest(self) -> EpochFinished | None:
        return self.record.lowest_loss_epoch

    @cached_property
    def reached(self) -> EpochFinished | None:
        return self.record.target_reached

    @cached_property
    def values(self) -> dict[str, Cell]:
        """Every column's value, worked out once (sorting, filtering and drawing read them often)."""
        r = self.record
        best, lowest, reached = self.best, self.lowest, self.reached
        return {
            "run": r.run_id,
            "model": r.model,
            "status": r.status,
            "epochs": f"{r.epochs_done}/{'?' if r.epochs_total is None else r.epochs_total}",
            "final_acc": r.final_test_acc,
            "best_acc": None if best is None else best.test_acc,
            "min_loss": None if lowest is None else lowest.test_loss,
            "params": r.params,
            "seconds": r.seconds,
            "epoch_s": r.epoch_seconds,  # the cost of an epoch: its seconds...
            "img_s": r.images_per_s,  # ...and the training images per second
            "to_target": None if reached is None else reached.elapsed,  # time to --target
            "device": r.device,
            "lr": r.lr,
            "batch": r.batch_size,
            "images": r.train_size,
            "seed": r.seed,
            "precision": r.precision,
            "started": r.created.replace("T", " ")[:19],
            "tags": " ".join(r.notes.tags),
        }

    def value(self, column: str) -> Cell:
        return self.values[column]

    def kept(self, key: str, wanted: str) -> bool:
        """Whether what is kept beside the figures matches (NOTE_KEYS): a whole tag, text
        within the note, the start of the commit the run's code came from, or the whole name
        of the sweep's study the run is a trial of."""
        notes = self.record.notes
        if key == "tag":
            return wanted in notes.tags
        if key == "note":
            return wanted in notes.note.lower()
        if key == "study":
            return (self.record.study or "").lower() == wanted
        stamp, _problem = stamp_of(self.record.config)
        return stamp is not None and stamp.git is not None and stamp.git.commit.startswith(wanted)

    def sort_key(self, column: str) -> tuple[bool, str | int | float]:
        # Epochs by how many are done ("9/20" before "10/20"), not as text.
        v = self.record.epochs_done if column == "epochs" else self.value(column)
        # Missing numbers sort first ascending; tuples keep None from being compared.
        return (v is not None and v != "", v if v is not None else 0)

    def number(self, key: str) -> float | None:
        """A numeric fact a filter can compare (`acc>99.4`, `epochs>=10`, `lr<0.01`)."""
        if key == "epochs":
            return self.record.epochs_done
        value = self.value(NUMERIC_KEYS[key]) if key in NUMERIC_KEYS else None
        return value if isinstance(value, (int, float)) else None


# Filter keys that compare numbers, and the column each reads.
NUMERIC_KEYS = {
    "acc": "final_acc",
    "final": "final_acc",
    "best": "best_acc",
    "loss": "min_loss",
    "epoch_s": "epoch_s",
    "speed": "img_s",
    "target": "to_target",
    "epochs": "epochs",
    "params": "params",
    "time": "seconds",
    "seconds": "seconds",
    "lr": "lr",
    "batch": "batch",
    "images": "images",
    "seed": "seed",
}
TEXT_COLUMNS = ("model", "status", "device", "run", "started", "precision")
# Filter keys about what is kept beside the figures: `tag:best` (a whole tag), `note:word`
# (within the note), `commit:abc123` (the start of the commit the run's code came from),
# `study:NAME` (the trials of a sweep, by the study's whole name).
NOTE_KEYS = ("tag", "note", "commit", "study")
COMPARISONS = (">=", "<=", "!=", ">", "<", "=")
OPERATOR_CHARACTERS = "<>=!"


def row_of(record: RunRecord) -> RunRow:
    """A run's row; a run whose figures cannot be worked out is listed as damaged, saying why
    (one run's bad numbers never keep the others from being listed)."""
    row = RunRow(record)
    try:
        row.values  # noqa: B018  # worked out here, where a failure can be caught
    except (ArithmeticError, ValueError, TypeError) as exc:
        reason = f"its figures cannot be worked out ({type(exc).__name__}: {exc})"
        return RunRow(dataclasses.replace(record, status="damaged", reason=reason, metrics=[]))
    return row


class QueryError(ValueError):
    """A filter that cannot be read; the message names the term and says what is wrong."""


@dataclass(frozen=True)
class Term:
    """One term of a filter: a word matched anywhere, a column's text, or a number compared."""

    kind: Literal["word", "text", "number"]
    key: str = ""  # the column (text) or the figure (number)
    op: str = ""
    text: str = ""  # the word, or the text looked for in the column
    number: float = 0.0


def _term(term: str) -> Term:
    at = next((i for i, c in enumerate(term) if c in OPERATOR_CHARACTERS), None)
    if at is None:
        key, colon, wanted = term.partition(":")
        if not colon or not (key == "" or key.isidentifier()):
            return Term("word", text=term)  # "10:00" is a time of day
        if key not in TEXT_COLUMNS + NOTE_KEYS:
            named = f"unknown column {key!r}" if key else "no column before ':'"
            raise QueryError(f"{term!r}: {named}; text filters are {', '.join(c + ':' for c in TEXT_COLUMNS + NOTE_KEYS)}")
        if not wanted:
            raise QueryError(f"{term!r}: nothing after ':' (for example {key}:{'v2' if key == 'model' else 'cpu'})")
        return Term("text", key, text=wanted)
    op = term[at : at + 2] if term[at : at + 2] in COMPARISONS else term[at]
    key, wanted = term[:at], term[at + len(op) :]
    if op not in COMPARISONS:
        raise QueryError(f"{term!r}: {op!r} is not a comparison; use one of {' '.join(COMPARISONS)}")
    if key not in NUMERIC_KEYS:
        if key in TEXT_COLUMNS:
            raise QueryError(f"{term!r}: {key} is text; write {key}:{wanted or '...'}")
        named = f"unknown figure {key!r}" if key else f"no figure before {op!r}"
        raise QueryError(f"{term!r}: {named}; figures are {', '.join(NUMERIC_KEYS)}")
    if not wanted:
        raise QueryError(f"{term!r}: no number after {op!r}")
    try:
        number = float(wanted)
    except ValueError:
        raise QueryError(f"{term!r}: {wanted!r} is not a number") from None
    if not math.isfinite(number):
        raise QueryError(f"{term!r}: {wanted!r} is not a number")
    return Term("number", key, op, number=number)


def parse_query(query: str) -> list[Term]:
    """A filter's terms (case-insensitive); QueryError names the first that cannot be read."""
    return [_term(term) for term in query.lower().split()]


def _compare(value: float | None, op: str, target: float) -> bool:
    if value is None:
        return False
    return {">=": value >= target, "<=": value <= target, "!=": value != target, ">": value > target, "<": value < target, "=": value == target}[op]


def matches(row: RunRow, terms: Sequence[Term]) -> bool:
    """Every term must match: `model:v2`, `device:cpu` match within that column, `tag:best` a
    whole tag, `note:word` within the note, `commit:abc123` a commit's start, `study:NAME` a
    sweep's trials; `acc>99.4`,
    `epochs>=10`, `lr<0.01`, `batch=64` compare numbers; other words match anywhere in the row."""
    for term in terms:
        if term.kind == "text" and term.key in NOTE_KEYS:
            if not row.kept(term.key, term.text):
                return False
        elif term.kind == "text":
            if term.text not in str(row.value(term.key)).lower():
                return False
        elif term.kind == "number":
            if not _compare(row.number(term.key), term.op, term.number):
                return False
        elif term.text not in " ".join(str(row.value(c)) for c in COLUMNS).lower():
            return False
    return True


def filter_sort(rows: Sequence[RunRow], query: str = "", sort: str = "started", reverse: bool = False) -> list[RunRow]:
    """The rows a filter keeps, sorted by a column; QueryError for a filter that cannot be read."""
    terms = parse_query(query)
    return sorted((r for r in rows if matches(r, terms)), key=lambda r: r.sort_key(sort), reverse=reverse)


def select(records: Sequence[RunRecord], query: str = "", sort: str = "started", reverse: bool = False) -> list[RunRow]:
    return filter_sort([row_of(r) for r in records], query, sort, reverse)


# The CSV's columns: the table's, with epochs as two numbers.
CSV_COLUMNS = (
    "run",
    "model",
    "status",
    "epochs_done",
    "epochs_total",
    "final_acc",
    "best_acc",
    "best_epoch",
    "min_loss",
    "min_loss_epoch",
    "params",
    "seconds",
    "epoch_s",
    "img_s",
    "target",
    "to_target",
    "target_epoch",
    "device",
    "lr",
    "batch",
    "images",
    "seed",
    "precision",
    "started",
    "tags",
    "note",
    "commit",
)


def _rounded(value: Cell, digits: int | None) -> Cell:
    """A figure rounded for the CSV (to whole numbers with digits None); inf stays inf."""
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    return round(value) if digits is None else round(value, digits)


def _commit(record: RunRecord) -> str:
    """The commit a run's code came from ("" where unknown), `+` after it when the checkout
    had uncommitted changes."""
    stamp, _problem = stamp_of(record.config)
    if stamp is None or stamp.git is None:
        return ""
    return stamp.git.commit + ("+" if stamp.git.dirty else "")


def export_csv(rows: list[RunRow], path: Path) -> Path:
    """Write rows to a new CSV file at path (numbers as numbers, times and speeds rounded)."""
    path = Path(path)
    with open(path, "x", newline="") as fh:  # never over an existing file
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            r, best, lowest, reached = row.record, row.best, row.lowest, row.reached
            values = {
                **{c: row.value(c) for c in COLUMNS if c != "epochs"},
                "epochs_done": r.epochs_done,
                "epochs_total": r.epochs_total,
                # Seconds to a tenth, an epoch's to a hundredth, images per second whole.
                "seconds": _rounded(row.value("seconds"), 1),
                "epoch_s": _rounded(row.value("epoch_s"), 2),
                "img_s": _rounded(row.value("img_s"), None),
                "to_target": _rounded(row.value("to_target"), 1),
                "best_epoch": None if best is None else best.epoch,
                "min_loss_epoch": None if lowest is None else lowest.epoch,
                "target": r.target,
                "target_epoch": None if reached is None else reached.epoch,
                "note": r.notes.note,
                "commit": _commit(r),
            }
            writer.writerow(["" if values[c] is None else values[c] for c in CSV_COLUMNS])
    return path


def exports_dir(runs_dir: Path) -> Path:
    """Where the app saves what a user exports (CSV tables, summaries): <runs>/exports."""
    return Path(runs_dir) / EXPORTS
