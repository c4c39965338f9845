"""Questions asked of many runs at once: filter, sort, summarise as rows, export to CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.core.store import RunRecord
from mnist_tui.core.store.records import EXPORTS

# Columns of the runs table and of the CSV export, in order.
COLUMNS = ("started", "run", "model", "status", "epochs", "final_acc", "best_acc", "params", "seconds", "device")


@dataclass(frozen=True)
class RunRow:
    """One run as the runs table shows it; `sort_key` orders each column sensibly."""

    record: RunRecord
    started: str
    run: str
    model: str
    epochs: str
    final_acc: float | None
    best_acc: float | None
    params: int | None
    device: str
    seconds: float
    status: str

    def value(self, column: str):
        return getattr(self, column)

    def sort_key(self, column: str):
        # Epochs by how many are done ("9/20" before "10/20"), not as text.
        v = self.record.epochs_done if column == "epochs" else self.value(column)
        # Missing numbers sort first ascending; tuples keep None from being compared.
        return (v is not None, v if v is not None else 0)

    def number(self, key: str) -> float | None:
        """A numeric fact a filter can compare (`acc>99.4`, `epochs>=10`, `lr<0.01`)."""
        if key in NUMERIC_COLUMNS:
            value = self.value(NUMERIC_COLUMNS[key])
            return self.record.epochs_done if key == "epochs" else value
        recipe = self.record.config.get("config", {}).get("recipe", {}) if isinstance(self.record.config.get("config"), dict) else {}
        raw = (recipe if isinstance(recipe, dict) else {}).get(RECIPE_KEYS.get(key, ""))
        if key == "seed":
            raw = self.record.config.get("seed")
        return raw if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None


# Filter keys that compare numbers: table columns, and recipe settings from config.json.
NUMERIC_COLUMNS = {"acc": "final_acc", "final": "final_acc", "best": "best_acc", "epochs": "epochs", "params": "params", "time": "seconds", "seconds": "seconds"}
RECIPE_KEYS = {"lr": "lr", "batch": "batch_size", "dropout": "dropout", "seed": "seed"}
TEXT_COLUMNS = ("model", "status", "device", "run", "started")
COMPARISONS = (">=", "<=", "!=", ">", "<", "=")


def row_of(record: RunRecord) -> RunRow:
    total = "?" if record.epochs_total is None else str(record.epochs_total)
    return RunRow(
        record=record,
        started=record.created.replace("T", " ")[:19],
        run=record.run_id,
        model=record.model,
        epochs=f"{record.epochs_done}/{total}",
        final_acc=record.final_test_acc,
        best_acc=record.best_test_acc,
        params=record.params,
        device=record.device,
        seconds=record.seconds,
        status=record.status,
    )


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
        elif op is not None and term.split(op, 1)[0] in {**NUMERIC_COLUMNS, **RECIPE_KEYS}:
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


# The CSV's columns: the table's, with epochs as two numbers and the recipe's main settings.
CSV_COLUMNS = ("started", "run", "model", "status", "epochs_done", "epochs_total", "final_acc", "best_acc", "params", "seconds", "device", "lr", "batch", "seed")


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
                "seconds": round(row.seconds, 1),
                "lr": row.number("lr"),
                "batch": row.number("batch"),
                "seed": row.number("seed"),
            }
            writer.writerow(["" if values[c] is None else values[c] for c in CSV_COLUMNS])
    return path


def exports_dir(runs_dir: Path) -> Path:
    """Where the app saves what a user exports (CSV tables, summaries): <runs>/exports."""
    return Path(runs_dir) / EXPORTS
