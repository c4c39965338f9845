"""Questions asked of many runs at once: filter, sort, summarise as rows, export to CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.core.store import RunRecord

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
        v = self.value(column)
        # Missing numbers sort first ascending; tuples keep None from being compared.
        return (v is not None, v if v is not None else 0)


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


def matches(row: RunRow, query: str) -> bool:
    """`model:v2 status:finished digits` style: key:value terms match that column exactly,
    other words match anywhere (case-insensitive); every term must match."""
    for term in query.lower().split():
        key, sep, wanted = term.partition(":")
        if sep and key in ("model", "status", "device"):
            if str(row.value(key)).lower() != wanted:
                return False
        elif term not in " ".join(str(row.value(c)) for c in COLUMNS).lower():
            return False
    return True


def select(records: list[RunRecord], query: str = "", sort: str = "started", reverse: bool = False) -> list[RunRow]:
    rows = [row_of(r) for r in records]
    rows = [r for r in rows if matches(r, query)]
    return sorted(rows, key=lambda r: r.sort_key(sort), reverse=reverse)


def export_csv(rows: list[RunRow], path: Path) -> Path:
    path = Path(path)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(["" if row.value(c) is None else row.value(c) for c in COLUMNS])
    return path
