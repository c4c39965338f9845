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


def finished(found: optuna.Study, wanted: int, counted: Any) -> bool:
    """Whether every counted trial has ended and there are `wanted` of them."""
    import optuna

    trials = [t for t in found.get_trials(deepcopy=False) if counted(t)]
    return len(trials) >= wanted and all(t.state != optuna.trial.TrialState.RUNNING for t in trials)


def evaluate_best(found: optuna.Study, runs_dir: Path, data_dir: str | None) -> dict[str, Any] | None:
    """BEST_TEST, evaluated now unless it was already (call under the study's lock); None
    when no trial completed or its run cannot be evaluated (the reason is recorded)."""
    done = found.user_attrs.get(st.BEST_TEST)
    if isinstance(done, dict):
        return done
    best = best_trial(found)
    if best is None:
        return None
    run = best.user_attrs.get(st.RUN)
    if not isinstance(run, str) or not run or "/" in run:
        return None
    result = _test_accuracy(Path(runs_dir) / run, data_dir)
    record: dict[str, Any] = {"trial": best.number, "run": run, **result}
    found.set_user_attr(st.BEST_TEST, record)
    return record


def _test_accuracy(run_dir: Path, data_dir: str | None) -> dict[str, Any]:
    """The run's last checkpoint on the test images (its --test-limit subset if it had one),
    as `mnist-tui eval` computes it."""
    from mnist_tui.core.data import DataError
    from mnist_tui.core.insight import run_outputs
    from mnist_tui.core.store import CheckpointError

    try:
        outputs = run_outputs(run_dir, data_dir)
    except (CheckpointError, DataError, OSError) as exc:
        return {"test_acc": None, "test_images": 0, "problem": str(exc)[:300]}
    right = int((outputs.predicted == outputs.labels).sum())
    return {"test_acc": round(100.0 * right / max(1, len(outputs)), 4), "test_images": len(outputs)}
