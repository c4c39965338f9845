"""The end of a sweep: its best trial, evaluated on the test set once (the only time a sweep
looks at the test set), recorded as the study's BEST_TEST."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_tui.core.sweep import study as st

if TYPE_CHECKING:
    import optuna


def best_trial(found: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The completed trial with the best held-out figure (None before one completes)."""
    try:
        return found.best_trial
    except ValueError:
        return None


def finished(found: optuna.Study, wanted: int) -> bool:
    """Whether every counted trial (study.counted) has ended and there are `wanted` of them."""
    import optuna

    trials = [t for t in found.get_trials(deepcopy=False) if st.counted(t)]
    return len(trials) >= wanted and all(t.state != optuna.trial.TrialState.RUNNING for t in trials)


def evaluate_best(found: optuna.Study, runs_dir: Path, data_dir: str | None) -> dict[str, Any] | None:
    """The current best trial's test accuracy (call under the study's lock): BEST_TEST when it
    was measured for that trial, else measured now and recorded (a trial that becomes the best
    later is measured then; the figure never selects anything). None before a trial completes;
    a result with a `problem` (its run cannot be evaluated now) is returned, never stored."""
    best = best_trial(found)
    if best is None:
        return None
    done = found.user_attrs.get(st.BEST_TEST)
    if isinstance(done, dict) and done.get("trial") == best.number and done.get("problem") is None:
        return done
    run = best.user_attrs.get(st.RUN)
    record: dict[str, Any] = {"trial": best.number, "run": run if isinstance(run, str) else None}
    problem = _not_this_trials(found, best.number, Path(runs_dir), run)
    result = {"test_acc": None, "test_images": 0, "problem": problem} if problem else _test_accuracy(Path(runs_dir) / str(run), data_dir)
    record.update(result)
    if record.get("problem") is None:
        found.set_user_attr(st.BEST_TEST, record)
    return record


def _not_this_trials(found: optuna.Study, number: int, runs_dir: Path, run: object) -> str | None:
    """Why the recorded run cannot be trial `number`'s to evaluate (None when it is)."""
    from mnist_tui.core.store import read_run

    folder = st.run_folder(runs_dir, run)
    if folder is None:
        return "its recorded run name cannot name a run folder"
    record = read_run(folder) if folder.is_dir() else None
    if record is None:
        return f"its run {folder.name} is not in {runs_dir}"
    if record.study != found.study_name or record.trial != number:
        return f"run {folder.name} does not record this trial (study {record.study}, trial {record.trial})"
    return None


def _test_accuracy(run_dir: Path, data_dir: str | None) -> dict[str, Any]:
    """The run's last checkpoint on the test images (its --test-limit subset if it had one):
    the figure `mnist-tui eval` prints, by its path (run_outputs, then confusion)."""
    from mnist_tui.core.data import DataError
    from mnist_tui.core.insight import confusion, run_outputs
    from mnist_tui.core.store import CheckpointError

    try:
        matrix = confusion(run_outputs(run_dir, data_dir))
    except (CheckpointError, DataError, OSError) as exc:
        return {"test_acc": None, "test_images": 0, "problem": str(exc)[:300]}
    return {"test_acc": round(matrix.accuracy, 4), "test_images": matrix.total}
