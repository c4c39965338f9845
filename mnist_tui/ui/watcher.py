"""The app's one watcher of the run store: a background thread that polls the runs it is
asked to follow and the runs folder, and posts what changed as messages, so that the UI
thread never reads a run folder (toolong's watcher does the same for log files).

Screens subscribe: the Train screen follows one run (`follow`) and hears of new runs; the
Runs screen hears that the folder changed (`RunsChanged`, merged in the queue when several
wait) and reloads in a worker of its own. At each look at the folder it also counts the live
trainers (the dashboard redraws less often beside them) and starts the queued runs whose
device is free (trainer/schedule.py), so that a trainer killed with -9 never strands the queue
while the app is open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from textual.message import Message
from textual.message_pump import MessagePump

from mnist_tui.core.events import BatchPoint, Event, RunFailed
from mnist_tui.core.store import changed_since
from mnist_tui.core.store.follow import Follower
from mnist_tui.core.store.queue import pending
from mnist_tui.core.store.trainers import live_trainers
from mnist_tui.trainer import Launch
from mnist_tui.trainer.schedule import start_next

POLL_S = 0.5  # how often a followed run is looked at: a progress bar needs no more
FOLDER_S = 1.0  # how often the runs folder is looked at (a stat of each run's few files)


class RunsChanged(Message):
    """The runs folder changed since the last look: a run appeared, went, or wrote."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsChanged)


class RunNews(Message):
    """What a followed run wrote since the last look: its events, and the per-batch curve's
    new points (`restarted`: a resume rewrote the curve; drop the points had so far), and
    how many trainers are live in the runs folder (`trainers`, as last counted)."""

    def __init__(self, follower: Follower, events: list[Event], points: list[BatchPoint], restarted: bool, trainers: int = 0) -> None:
        super().__init__()
        self.follower, self.events, self.points, self.restarted = follower, events, points, restarted
        self.trainers = trainers


class Watcher:
    """Polls followed runs and the runs folder from one thread (`run`), posting messages."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self._lock = threading.Lock()
        self._followed: dict[Follower, tuple[MessagePump, Launch | None]] = {}
        self._subscribers: list[MessagePump] = []
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self.trainers = 0  # live trainers of the runs folder at the last look

    def follow(self, follower: Follower, target: MessagePump, launch: Launch | None = None) -> None:
        """Post `follower`'s news to `target` until the run ends; `launch`: the trainer just
        started for it, whose early end (before its run could say so) is a failure."""
        with self._lock:
            self._followed[follower] = (target, launch)
        self._wake.set()

    def unfollow(self, follower: Follower) -> None:
        with self._lock:
            self._followed.pop(follower, None)

    def subscribe(self, target: MessagePump) -> None:
        """Tell `target` (RunsChanged) whenever the runs folder changes."""
        with self._lock:
            if target not in self._subscribers:
                self._subscribers.append(target)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def run(self, cancelled: Callable[[], bool] = lambda: False) -> None:
        """The watching loop, in a thread of its own until stop() or `cancelled()`."""
        stamp = changed_since(self.runs_dir, 0.0) or 0.0
        self._look_at_queue()
        next_look = time.monotonic() + FOLDER_S
        while not (self._stopped.is_set() or cancelled()):
            self._poll_followed()
            if time.monotonic() >= next_look:
                stamp = self._look_at_folder(stamp)
                next_look = time.monotonic() + FOLDER_S
            self._wake.wait(POLL_S)
            self._wake.clear()

    def _look_at_queue(self) -> None:
        """Count the live trainers, and start the queued runs whose device is free (a cheap
        look first: most runs folders have no queue)."""
        if pending(self.runs_dir):
            start_next(self.runs_dir)  # never raises: a locked or unwritable queue waits
        self.trainers = len(live_trainers(self.runs_dir))

    def _look_at_folder(self, stamp: float) -> float:
        self._look_at_queue()
        try:
            changed = changed_since(self.runs_dir, stamp)
        except OSError:
            return stamp
        if changed is not None:
            with self._lock:
                subscribers = list(self._subscribers)
            for target in subscribers:
                target.post_message(RunsChanged())
            return changed
        return stamp

    def _poll_followed(self) -> None:
        with self._lock:
            followed = list(self._followed.items())
        for follower, (target, launch) in followed:
            try:
                news = _news(follower, launch, self.trainers)
            except Exception as exc:  # a reader that raised: the run cannot be followed, the app goes on
                follower.done = True
                news = RunNews(follower, [RunFailed(f"cannot follow {follower.run_dir.name}: {exc}", None)], [], False, self.trainers)
            if news.events or news.points or news.restarted:
                target.post_message(news)
            if follower.done:
                self.unfollow(follower)


def _news(follower: Follower, launch: Launch | None, trainers: int) -> RunNews:
    """A followed run's news; a launched trainer that ended before its run said so failed."""
    events = follower.poll()
    points, restarted = follower.new_points() if follower.started else ([], False)
    if not follower.done and launch is not None and launch.ended():
        events += follower.poll()  # its last words may have landed just now
        if not follower.done:
            follower.done = True
            events.append(RunFailed(launch.failure(), None))
    if follower.done and launch is not None and launch.process is not None:
        launch.process.poll()  # reap the ended trainer: no zombie while the app runs on
    if follower.done:  # the curve's last points, written just before the end
        more, again = follower.new_points()
        points, restarted = points + more, restarted or again
    return RunNews(follower, events, points, restarted, trainers)
