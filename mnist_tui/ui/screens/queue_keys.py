"""The Runs screen's part of the run queue: each queued run's place shown in its status
(`queued #2`), and the keys that move a queued run earlier (K) or later (J) or cancel it (C,
confirmed; Escape keeps it). Each change is made under the queue's lock (core/store/queue.py)
in a worker, and the table is read again after it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual import work

from mnist_tui.core import history
from mnist_tui.core.store import RunRecord
from mnist_tui.core.store.queue import cancel, move, queued_runs
from mnist_tui.core.store.trainers import queue_lock
from mnist_tui.present.runs import run_texts
from mnist_tui.ui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from textual.app import App

QUEUED = "queued"


def prepared(records: list[RunRecord]) -> tuple[list[history.RunRow], dict[str, dict[str, str]]]:
    """Each run's row and the text of its cells, worked out once per reading of the store
    (sorting and filtering then only reorder them); a queued run's status names its place."""
    rows = [history.row_of(r) for r in records]
    texts = {row.run: run_texts(row) for row in rows}
    queued = [r for r in records if r.status == QUEUED]
    if queued:
        places = {p.name: i for i, p in enumerate(queued_runs(queued[0].path.parent), start=1)}
        for record in queued:
            if record.run_id in places:
                texts[record.run_id]["status"] = f"{QUEUED} #{places[record.run_id]}"
    return rows, texts


class QueueKeys:
    """The Runs screen's queue actions (its bindings name them: K, J, C)."""

    app: App
    runs_dir: Path

    if TYPE_CHECKING:

        @property
        def current_row(self) -> history.RunRow | None: ...

        def notify(self, message: str, *, severity: str = "information", markup: bool = True) -> None: ...

        def reload(self) -> None: ...

    def _queued_row(self) -> history.RunRow | None:
        """The run under the cursor if it is queued, else None (and the user is told)."""
        row = self.current_row
        if row is not None and row.status != QUEUED:
            self.notify(f"{row.run} is {row.status}; only queued runs can be moved or cancelled.", severity="warning", markup=False)
            return None
        return row

    def action_queue_earlier(self) -> None:
        if (row := self._queued_row()) is not None:
            self.change_queue(row.record.path, -1)

    def action_queue_later(self) -> None:
        if (row := self._queued_row()) is not None:
            self.change_queue(row.record.path, +1)

    def action_cancel_queued(self) -> None:
        row = self._queued_row()
        if row is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.change_queue(row.record.path, None)

        question = f"Cancel the queued run {row.run}? Nothing of it has trained; its folder goes."
        self.app.push_screen(ConfirmScreen(question, yes="Cancel run", no="Keep"), answered)

    @work(thread=True, exit_on_error=False, group="runs-queue")
    def change_queue(self, run_dir: Path, step: int | None) -> None:
        """Move a queued run one place (`step` -1: earlier, +1: later), or cancel it (None),
        under the queue's lock; then read the runs again."""
        try:
            with queue_lock(self.runs_dir):
                if step is None:
                    said = f"Cancelled {run_dir.name}" if cancel(run_dir) else f"{run_dir.name} is no longer queued"
                else:
                    order = [p.name for p in queued_runs(self.runs_dir)]
                    place = order.index(run_dir.name) + 1 if run_dir.name in order else 0
                    said = f"{run_dir.name} is no longer queued" if not place else ""
                    if place:
                        move(self.runs_dir, run_dir.name, max(1, place + step))
        except OSError as exc:  # QueueBusy, or a runs folder that cannot be written
            said = f"Could not change the queue: {exc.strerror or exc}"
        self.app.call_from_thread(self._queue_changed, said)

    def _queue_changed(self, said: str) -> None:
        if said:
            self.notify(said, markup=False)
        self.reload()
