"""Helpers for the pilot and snapshot tests: a fixture run store, key presses and waiting
for workers and messages."""

from __future__ import annotations

import asyncio
import json
import threading
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

from mnist_tui.core.config import TrainConfig
from mnist_tui.trainer import Launch, reserve_name


async def drained(pilot, timeout: float = 30.0) -> None:
    """Wait until the app and every widget of its screen have handled every message queued
    to them, including those that handling posts (a key hops from the app to the focused
    widget, whose messages bubble up to the screen), and the screen has refreshed and run
    what was to run after it (`call_after_refresh`): rounds of a callback queued behind each
    node's messages and one after the screen's next refresh, until two rounds in a row end
    with every queue empty and no widget added or removed. A round also ends when the screen
    changes or the app quits.

    Unlike `pilot.pause()`, which sleeps until the whole process has been idle for 20 ms (a
    second at most when a training thread keeps a core busy), this waits for exactly the
    messages and no longer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    app = pilot.app
    calm = False
    while True:
        screen = app.screen
        nodes = [app, *screen.walk_children(with_self=True)]
        barriers = [asyncio.Event() for _ in range(len(nodes) + 1)]
        queued = [node.call_later(barrier.set) for node, barrier in zip(nodes, barriers)]
        queued.append(screen.call_after_refresh(barriers[-1].set))
        while not all(barrier.is_set() for barrier, ok in zip(barriers, queued) if ok):
            if not app.is_running or app.return_code is not None or app.screen is not screen:
                break
            if loop.time() > deadline:
                raise AssertionError("the app did not settle in time")
            await asyncio.sleep(0.002)
        if not app.is_running or app.return_code is not None:
            return
        settled = app.screen is screen and not any(node.message_queue_size for node in nodes)
        settled = settled and nodes == [app, *screen.walk_children(with_self=True)]  # no widget mounted meanwhile
        if settled and calm:
            return
        calm = settled  # two settled rounds in a row: a handler that awaited is done too


async def press(pilot, *keys: str) -> None:
    """Press keys as `pilot.press` does (the same key names), waiting after each key until
    the app has handled it and what it caused (see drained) rather than for an idle process."""
    from textual import events
    from textual.keys import KEY_NAME_REPLACEMENTS, KEY_TO_UNICODE_NAME, REPLACED_KEYS

    for key in keys:
        if len(key) == 1 and not key.isalnum():  # "." is the key full_stop, "-" minus
            key = unicodedata.name(key).lower().replace("-", "_").replace(" ", "_")
            key = KEY_NAME_REPLACEMENTS.get(key, key)
        original = REPLACED_KEYS.get(key, key)  # "minus" is Unicode's hyphen_minus
        try:  # the character the key types: "space" a blank, "minus" a dash, "up" none
            character: str | None = unicodedata.lookup(KEY_TO_UNICODE_NAME.get(original, original))
        except KeyError:
            character = key if len(key) == 1 else None
        pilot.app.post_message(events.Key(key, character))
        await drained(pilot)


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus a field (as Tab would, scrolling it into view), clear it (ctrl+u deletes all
    left of the cursor) and type."""
    pilot.app.screen.query_one(selector).focus()
    await drained(pilot)
    await press(pilot, "end", "ctrl+u", *text)


async def _workers_done(pilot) -> None:
    """Every worker finished. One cancelled on the way (an exclusive group's older reading,
    replaced by a newer one) is done too; one that failed fails the test."""
    import asyncio

    from textual.worker import WorkerFailed

    ended = await asyncio.gather(*[worker.wait() for worker in list(pilot.app.workers)], return_exceptions=True)
    for outcome in ended:
        if isinstance(outcome, WorkerFailed):
            raise outcome


async def settle(pilot) -> None:
    """Wait for every worker to finish and the messages they posted to be handled."""
    await _workers_done(pilot)
    await drained(pilot)
    await _workers_done(pilot)
    await drained(pilot)


async def wait_until(pilot, condition, timeout: float = 60.0) -> None:
    """Let the app run until condition() holds (checked between short pauses)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)


async def wait_for_run_end(pilot, timeout: float = 120.0) -> None:
    """Let the app run until the Train screen's followed run has ended (or none is followed)."""
    from mnist_tui.ui.screens.train import TrainScreen

    await drained(pilot)
    screen = pilot.app.get_screen("train")
    assert isinstance(screen, TrainScreen)
    await wait_until(pilot, lambda: screen.follower is not None and not screen.running, timeout)
    await drained(pilot)


def write_run(
    runs_dir: Path,
    name: str,
    model: str,
    status: str,
    accs: list[float],
    epochs_total: int = 3,
    created: str = "2026-11-01T10:00:00+00:00",
    lr: float | None = None,  # recorded in the recipe only when given
    seed: int = 0,
    points: int = 0,
) -> Path:
    """A run folder in the documented format (version 1), without training anything; with
    `points`, a per-batch curve of that many points an epoch (batches.csv)."""
    path = Path(runs_dir) / name
    path.mkdir(parents=True)
    params = {"v1": 420614, "v2": 99746, "v3": 18252, "v4": 7432}[model]
    recipe = {"epochs": epochs_total, "batch_size": 128, **({} if lr is None else {"lr": lr})}
    config = {
        "format": 1,
        "run_id": name,
        "created": created,
        "config": {"model": model, "recipe": recipe, "seed": seed, "device": "cpu"},
        "train_size": 60000,
        "test_size": 10000,
        "seed": seed,
        "device": "cpu",
        "device_name": "CPU, 2 threads",
        "params": params,
    }
    (path / "config.json").write_text(json.dumps(config))
    lines = []
    for i, acc in enumerate(accs, start=1):
        lines.append(
            json.dumps(
                {
                    "epoch": i,
                    "epochs": epochs_total,
                    "train_loss": 0.5 / i,
                    "train_acc": acc - 0.5,
                    "test_loss": 0.4 / i,
                    "test_acc": acc,
                    "lr": (lr or 0.001) / i,
                    "seconds": 40.0,
                    "images_per_s": 1500.0,
                }
            )
        )
    (path / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    if points:
        curve = [
            f"{e},{b * 469 // points},469,{0.6 / (e - 1 + b / points) + 0.05 * (b % 3):.4f},{min(100.0, acc - 1 + 0.2 * (b % 4)):.2f}"
            for e, acc in enumerate(accs, start=1)
            for b in range(1, points + 1)
        ]
        (path / "batches.csv").write_text("epoch,batch,batches,loss,acc\n" + "".join(line + "\n" for line in curve))
    if accs:  # a finished epoch always has its checkpoint; this one holds no weights
        import torch

        torch.save({"epoch": len(accs), "config": config["config"]}, path / "checkpoint.pt")
    (path / "status.json").write_text(json.dumps({"status": status, "epochs_done": len(accs), "updated": created, "pid": 0, "host": "elsewhere"}))
    return path


def fixture_store(runs_dir: Path) -> None:
    write_run(runs_dir, "20261101T100000Z-v1-aaaaaa", "v1", "finished", [97.1, 98.0, 98.4], created="2026-11-01T10:00:00+00:00")
    write_run(runs_dir, "20261102T100000Z-v2-bbbbbb", "v2", "finished", [98.4, 99.1, 99.5], created="2026-11-02T10:00:00+00:00")
    write_run(runs_dir, "20261103T100000Z-v2-cccccc", "v2", "stopped", [98.2], created="2026-11-03T10:00:00+00:00")
    broken = Path(runs_dir) / "20261104T100000Z-v2-dddddd"
    broken.mkdir()
    (broken / "config.json").write_text("{half")


class InProcessLauncher:
    """Runs the same engine, writer and lock in a thread of this process, for tests that must
    not pay a process start (mnist_tui.trainer.Launcher). Clients follow the folder either way."""

    def __init__(self) -> None:
        self.launches: list[Launch] = []

    def _start(self, run_dir: Path, events: Callable[[threading.Event], Iterable]) -> Launch:
        from mnist_tui.core.events import RunFailed

        launch = Launch(run_dir, stop_event=threading.Event())

        def consume() -> None:
            for ev in events(launch.stop_event):
                if isinstance(ev, RunFailed):
                    launch.error = ev.reason

        launch.thread = threading.Thread(target=consume, daemon=True, name=f"trainer {run_dir.name}")
        launch.thread.start()
        self.launches.append(launch)
        return launch

    def train(self, config: TrainConfig, runs_dir: Path) -> Launch:
        return self.start(config, runs_dir, reserve_name(config.model))

    def start(self, config: TrainConfig, runs_dir: Path, name: str, place=None, slot=None) -> Launch:
        """Train the run `name` in a thread; its slot (schedule.admit's) is let go when it
        ends, as a trainer's is. Its place is not applied: the tests' threads are their own."""
        from mnist_tui.core.train import train

        config = config.replace(runs_dir=str(runs_dir))

        def events(stop: threading.Event) -> Iterable:
            try:
                yield from train(config, stop, run_name=name)
            finally:
                if slot is not None:
                    slot.release()

        return self._start(Path(runs_dir) / name, events)

    def resume(self, run_dir: Path, data_dir: str | None, force: bool = False) -> Launch:
        from mnist_tui.core.train import resume

        return self._start(Path(run_dir), lambda stop: resume(run_dir, stop, data_dir=data_dir, force=force))

    def join(self, timeout: float = 120.0) -> None:
        """Wait for every trainer this launcher started to end."""
        for launch in self.launches:
            if launch.thread is not None:
                launch.thread.join(timeout)
