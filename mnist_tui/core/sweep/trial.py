"""One trial of a sweep driven to its end: its run started (or adopted), followed by reading
its folder, each epoch's held-out figure reported to the pruner, and its result told."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mnist_tui.core.config import TrainConfig
from mnist_tui.core.store import read_run, request_stop
from mnist_tui.core.store.notes import NotesError, change_notes
from mnist_tui.core.sweep import study as st
from mnist_tui.core.sweep.study import holdout_ok

if TYPE_CHECKING:
    import optuna

POLL_S = 0.5
POKE_S = 2.0  # how often a queued trial's worker asks the queue to start what may start
START_S = 120.0  # how long a run may take to appear once its trainer was started
USER_STOP = st.USER_STOP
PRUNED_TAG = "pruned"


class Starter(Protocol):
    """How a worker starts its trials' runs: through the run queue, by whoever owns trainers
    (the CLI hands in one; the core never imports the trainer)."""

    def reserve(self, model: str) -> str:
        """A fresh run folder name."""
        ...

    def start(self, config: TrainConfig, runs_dir: Path, name: str) -> Callable[[], str | None]:
        """Start or queue run `name`; returns a check: why its trainer ended before making the
        run folder, or None (still starting, or made it). OSError when it cannot be started."""
        ...

    def poke(self, runs_dir: Path) -> None:
        """Start the queued runs whose device is free."""
        ...


@dataclass(frozen=True)
class TrialEnd:
    """What a trial came to, as the worker tells its user."""

    number: int
    state: str  # COMPLETE, PRUNED or FAIL
    params: dict[str, Any]
    value: float | None
    seconds: float
    run: str
    why: str = ""


@dataclass
class Context:
    """What every trial of one worker shares."""

    study: optuna.Study
    runs_dir: Path
    base: TrainConfig  # the sweep's config, before a trial's params
    metric: str  # test_acc or test_loss of each epoch (held-out images)
    starter: Starter
    stop: threading.Event
    told: Callable[[TrialEnd], None]
    live: set[Path] = field(default_factory=set)  # the run folders being followed (for Ctrl+C)
    lock: threading.Lock = field(default_factory=threading.Lock)


def start_trial(ctx: Context, trial: optuna.Trial, params: dict[str, Any]) -> TrialEnd:
    """Start a new trial's run with `params` and drive it to its end."""
    config = ctx.base.replace(**params, study=ctx.study.study_name, trial=trial.number)
    name = ctx.starter.reserve(config.model)
    trial.set_user_attr(st.RUN, name)  # before the run exists: a worker killed now leaves it findable
    trial.set_user_attr(st.HOST, socket.gethostname())
    try:
        failure = ctx.starter.start(config, ctx.runs_dir, name)
    except OSError as exc:
        return tell(ctx, trial, "FAIL", None, 0.0, name, f"cannot start its run: {exc}")
    return follow_trial(ctx, trial, name, failure, time.monotonic())


@dataclass
class _Followed:
    """What following a trial's run has done so far."""

    reported: set[int] = field(default_factory=set)  # the epochs reported to the study
    pruned: bool = False  # the pruner asked for its run to stop
    last_poke: float = 0.0


def follow_trial(ctx: Context, trial: optuna.Trial, name: str, failure: Callable[[], str | None], began: float, seen: _Followed | None = None) -> TrialEnd:
    """Follow run `name` of `trial` until it ends, reporting each epoch; tell the result.
    The run must say it is this trial's before it is followed, stopped or scored."""
    run_dir = st.run_folder(ctx.runs_dir, name)
    if run_dir is None:
        return tell(ctx, trial, "FAIL", None, 0.0, "", "its recorded run name cannot name a run folder")
    seen = seen or _Followed()
    with ctx.lock:
        ctx.live.add(run_dir)
    try:
        while True:
            record = read_run(run_dir) if run_dir.is_dir() else None
            if record is None or record.status == "damaged":
                why = failure() or (record.reason if record is not None else None)
                if (why is not None and record is None) or time.monotonic() - began > START_S:
                    return tell(ctx, trial, "FAIL", None, time.monotonic() - began, name, why or "its run was never made")
            elif not _ours(ctx, trial, record):
                return tell(
                    ctx,
                    trial,
                    "FAIL",
                    None,
                    time.monotonic() - began,
                    name,
                    f"run {name} does not record this trial (study {record.study}, trial {record.trial})",
                )
            else:
                ended = _look(ctx, trial, record, run_dir, seen, began)
                if ended is not None:
                    return ended
            ctx.stop.wait(POLL_S) if not ctx.stop.is_set() else time.sleep(POLL_S)
    finally:
        with ctx.lock:
            ctx.live.discard(run_dir)


def _ours(ctx: Context, trial: optuna.Trial, record: Any) -> bool:
    """Whether a run's record says it is this trial's (the study's run name is untrusted)."""
    return bool(record.study == ctx.study.study_name and record.trial == trial.number)


def _look(ctx: Context, trial: optuna.Trial, record: Any, run_dir: Path, seen: _Followed, began: float) -> TrialEnd | None:
    """One look at a trial's run: poke the queue, report new epochs (stopping the run when
    pruned), or tell how it ended; None while it goes on."""
    if record.status == "queued" and time.monotonic() - seen.last_poke > POKE_S:
        ctx.starter.poke(ctx.runs_dir)
        seen.last_poke = time.monotonic()
    elif record.status not in ("queued", "running"):
        _report_new(ctx, trial, record, seen, ask=False)  # the epochs it finished since the last look
        return _ended(ctx, trial, record, seen.pruned, began)
    if _report_new(ctx, trial, record, seen, ask=True) and not seen.pruned:
        seen.pruned = True
        trial.set_user_attr(st.PRUNED_AT, max(seen.reported))  # before the stop: an adopter knows why it stopped
        request_stop(run_dir)
    if ctx.stop.is_set() and _stopped(run_dir, record.status):
        return tell(ctx, trial, "FAIL", None, time.monotonic() - began, record.run_id, USER_STOP)
    return None


def _report_new(ctx: Context, trial: optuna.Trial, record: Any, seen: _Followed, ask: bool) -> bool:
    """Report the epochs not reported yet; whether the pruner (asked only when `ask`, and
    never at the final epoch) says to end the trial."""
    prune = False
    if not _on_holdout(record):
        return False  # figures of the test set are never reported to a study
    for epoch in record.metrics:
        if int(epoch.epoch) in seen.reported:
            continue
        seen.reported.add(int(epoch.epoch))
        final = int(epoch.epoch) >= int(epoch.epochs)
        if _report(ctx, trial, epoch) and ask and not final and trial.should_prune():
            prune = True
    return prune


def _on_holdout(record: Any) -> bool:
    """Whether a run's records say it was scored on held-out training images (a run of the
    test set must never score a trial)."""
    config = record.config.get("config") if isinstance(record.config, dict) else None
    holdout = config.get("holdout") if isinstance(config, dict) else None
    return record.config.get("evaluated_on") == "holdout" and holdout_ok(holdout)


def _stopped(run_dir: Path, status: str) -> bool:
    """Stop a trial's run for a user who stopped the sweep: True when it was queued and is
    cancelled (nothing trained), False when its trainer was asked to stop (wait for it)."""
    from mnist_tui.core.store import queue
    from mnist_tui.core.store.trainers import QueueBusy, queue_lock

    if status == "queued":
        try:
            with queue_lock(run_dir.parent):
                if queue.cancel(run_dir):
                    return True
        except (QueueBusy, OSError):
            return False
    try:
        request_stop(run_dir)
    except OSError:
        pass  # gone already, or ended: the next look sees how
    return False


def _report(ctx: Context, trial: optuna.Trial, epoch: Any) -> bool:
    """Report an epoch's held-out figure; whether it was reported (a finite number)."""
    value = float(getattr(epoch, ctx.metric))
    if not math.isfinite(value):
        return False
    trial.report(value, int(epoch.epoch))
    return True


def _ended(ctx: Context, trial: optuna.Trial, record: Any, pruned: bool, began: float) -> TrialEnd:
    """Tell how the ended run went: its final epoch's figure, pruned, or failed and why."""
    seconds = record.seconds if record.seconds else time.monotonic() - began
    name = record.run_id
    trained_all = record.status == "finished" and bool(record.metrics) and int(record.metrics[-1].epoch) >= int(record.metrics[-1].epochs)
    if pruned and record.status in ("stopped", "finished") and not trained_all:
        try:
            change_notes(record.path, add=[PRUNED_TAG])
        except NotesError:
            pass  # the trial is pruned all the same; its tag is a convenience
        return tell(ctx, trial, "PRUNED", None, seconds, name)
    if ctx.stop.is_set() and record.status != "finished":
        return tell(ctx, trial, "FAIL", None, seconds, name, USER_STOP)
    if record.status == "finished" and not _on_holdout(record):
        return tell(ctx, trial, "FAIL", None, seconds, name, "its run was scored on the test set, not on held-out images")
    if record.status != "finished":
        why = f"its run is {record.status}" + (f": {record.reason}" if record.reason else "")
        return tell(ctx, trial, "FAIL", None, seconds, name, why)
    value = float(getattr(record.metrics[-1], ctx.metric)) if record.metrics else math.nan
    if not math.isfinite(value):
        return tell(ctx, trial, "FAIL", None, seconds, name, "its run ended without a final figure")
    return tell(ctx, trial, "COMPLETE", value, seconds, name)


def tell(ctx: Context, trial: optuna.Trial, state: str, value: float | None, seconds: float, run: str, why: str = "") -> TrialEnd:
    """Record a trial's end in the study and tell the user."""
    import optuna

    trial.set_user_attr(st.SECONDS, round(float(seconds), 2))
    if why:
        trial.set_user_attr(st.FAILED_WHY, why[:500])
    states = {"COMPLETE": optuna.trial.TrialState.COMPLETE, "PRUNED": optuna.trial.TrialState.PRUNED, "FAIL": optuna.trial.TrialState.FAIL}
    ctx.study.tell(trial.number, value if state == "COMPLETE" else None, state=states[state], skip_if_finished=True)
    end = TrialEnd(trial.number, state, dict(trial.params), value, float(seconds), run, why)
    ctx.told(end)
    return end


def adopt(ctx: Context, frozen: optuna.trial.FrozenTrial) -> TrialEnd:
    """Drive a RUNNING trial whose worker is gone: follow its run (still starting, queued or
    live) and tell its result, its epochs reported; a run its pruner stopped is pruned."""
    import optuna

    trial = optuna.trial.Trial(ctx.study, frozen._trial_id)
    name = frozen.user_attrs.get(st.RUN)
    if not isinstance(name, str) or not name:
        return tell(ctx, trial, "FAIL", None, 0.0, "", "its worker ended before its run was named")
    # The run may not exist yet (its trainer still importing): the same grace as a new trial's,
    # from when the trial was asked.
    start = frozen.datetime_start
    age = (datetime.now(start.tzinfo) - start).total_seconds() if start is not None else START_S
    seen = _Followed(reported=set(frozen.intermediate_values), pruned=frozen.user_attrs.get(st.PRUNED_AT) is not None)
    return follow_trial(ctx, trial, name, lambda: None, time.monotonic() - max(0.0, age), seen)
