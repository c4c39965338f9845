"""Questions asked of many runs at once: filter, sort, summarise as rows, export to CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.core.store import RunRecord
from mnist_tui.core.store.records import EXPORTS

# What one column of a run holds: text, a number, or None where the run does not say.
Cell = str | int | float | None

# Every column a run has in the runs table and the CSV, in table order (which of them a
# table shows depends on its width: see mnist_tui/present.py).
COLUMNS = (
    "run", "model", "status", "epochs", "final_acc", "best_acc", "min_loss", "params", "seconds", "epoch_s", "img_s", "to_target", "device",
    "lr", "batch", "images", "seed", "precision", "started",
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

    def value(self, column: str) -> Cell:
        r = self.record
        values: dict[str, Cell] = {
            "run": r.run_id,
            "model": r.model,
            "status": r.status,
            "epochs": f"{r.epochs_done}/{'?' if r.epochs_total is None else r.epochs_total}",
            "final_acc": r.final_test_acc,
            "best_acc": r.best_test_acc,
            "min_loss": None if r.lowest_loss_epoch is None else r.lowest_loss_epoch.test_loss,
            "params": r.params,
            "seconds": r.seconds,
            "epoch_s": r.epoch_seconds,  # the cost of an epoch: its seconds...
            "img_s": r.images_per_s,  # ...and the training images per second
            "to_target": None if r.target_reached is None else r.target_reached.elapsed,  # time to --target
            "device": r.device,
            "lr": r.lr,
            "batch": r.batch_size,
            "images": r.train_size,
            "seed": r.seed,
            "precision": r.precision,
            "started": r.created.replace("T", " ")[:19],
        }
        return values[column]

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
COMPARISONS = (">=", "<=", "!=", ">", "<", "=")


def row_of(record: RunRecord) -> RunRow:
    return RunRow(record)


def _compare(value: float | None, op: str, wanted: str) -> bool:
    try:
        target = float(wanted)
    except ValueError:
        return False
    if value is None:
        return False
    return {">=": value >= target, "<=": value <= target, "!=": value != target, ">": value > target, "<": value < target, "=": value == target}[op]


def matches(row: RunRow, query: str) -> bool:
    """Every term must match (case-insensitive): `model:v2`, `device:cpu` match within that
    column; `acc>99.4`, `epochs>=10`, `lr<0.01`, `batch=64` compare numbers; other words
    match anywhere in the row."""
    for term in query.lower().split():
        key, sep, wanted = term.partition(":")
        op = next((o for o in COMPARISONS if o in term), None)
        if sep and key in TEXT_COLUMNS:
            if wanted not in str(row.value(key)).lower():
                return False
        elif op is not None and term.split(op, 1)[0] in NUMERIC_KEYS:
            name, wanted = term.split(op, 1)
            if not _compare(row.number(name), op, wanted):
                return False
        elif term not in " ".join(str(row.value(c)) for c in COLUMNS).lower():
            return False
    return True


def select(records: list[RunRecord], query: str = "", sort: str = "started", reverse: bool = False) -> list[RunRow]:
    rows = [row_of(r) for r in records]
    rows = [r for r in rows if matches(r, query)]
    return sorted(rows, key=lambda r: r.sort_key(sort), reverse=reverse)


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
)


def export_csv(rows: list[RunRow], path: Path) -> Path:
    """Write rows to a new CSV file at path (numbers as numbers, seconds rounded)."""
    path = Path(path)
    with open(path, "x", newline="") as fh:  # never over an existing file
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            values = {
                **{c: row.value(c) for c in COLUMNS if c != "epochs"},
                "epochs_done": row.record.epochs_done,
                "epochs_total": row.record.epochs_total,
                "seconds": round(row.record.seconds, 1),
                "best_epoch": None if row.record.best_epoch is None else row.record.best_epoch.epoch,
                "min_loss_epoch": None if row.record.lowest_loss_epoch is None else row.record.lowest_loss_epoch.epoch,
                "target": row.record.target,
                "target_epoch": None if row.record.target_reached is None else row.record.target_reached.epoch,
            }
            writer.writerow(["" if values[c] is None else values[c] for c in CSV_COLUMNS])
    return path


def exports_dir(runs_dir: Path) -> Path:
    """Where the app saves what a user exports (CSV tables, summaries): <runs>/exports."""
    return Path(runs_dir) / EXPORTS
