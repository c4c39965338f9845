"""A sweep read back from its Optuna study: the trials, the best, the objective's history and
what each parameter mattered, for `mnist-tui sweep --show` and the Sweep screen.

Everything in a study's storage is untrusted (another worker, another version, a hand edit
wrote it): user attributes are any JSON, values any float. A figure that is not a finite
number is left out; a study that cannot be read costs its own listing, never the others'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_tui.core.sweep import study as studies
from mnist_tui.core.sweep.study import run_folder as run_folder  # the screens' name for it

if TYPE_CHECKING:
    import optuna

STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
ENDED = ("complete", "pruned", "failed")  # the states of an ended trial
MIN_FOR_IMPORTANCE = 2  # fANOVA fits a forest on the complete trials: one says nothing
_TEXT_CAP = 500  # longest text kept from an attribute (a run name, a reason)

Param = float | int | str | bool | None
# fANOVA fits a forest (seconds): kept per study and set of complete trials, so a screen that
# reads a study again refits only when a trial completes.
_IMPORTANCES: dict[tuple[str, frozenset[Any]], tuple[tuple[tuple[str, float], ...], str]] = {}
_IMPORTANCES_KEPT = 32


@dataclass(frozen=True)
class TrialRow:
    """One trial as the study recorded it."""

    number: int
    state: str  # complete, pruned, failed, running, waiting
    params: dict[str, Param]
    value: float | None  # the held-out score of a complete trial
    seconds: float | None
    run: str  # the run folder's name ("" when none was recorded)
    failed_why: str = ""
    host: str = ""
    counted: bool = True  # toward the sweep's count (study.counted: not stopped by its user)


@dataclass(frozen=True)
class BestTest:
    """The best trial's test accuracy, looked at once, at the end of the sweep."""

    trial: int
    run: str
    test_acc: float
    test_images: int | None


@dataclass(frozen=True)
class SweepReport:
    name: str
    storage: str | None  # None: the journal embedded in the runs folder
    setup: dict[str, Any]
    direction: str  # maximize or minimize
    trials: tuple[TrialRow, ...]
    best: TrialRow | None  # None while no trial is complete
    history: tuple[tuple[int, float, float], ...]  # (trial, its value, best so far), complete trials in order
    importances: tuple[tuple[str, float], ...]  # (parameter, share of the variance), largest first
    importance_note: str  # why there are none, when there are none
    best_test: BestTest | None
    log_params: frozenset[str] = field(default_factory=frozenset)  # sampled on a log scale

    @property
    def metric(self) -> str:
        metric = self.setup.get("metric")
        return _text(metric) or "score"

    @property
    def target(self) -> int | None:
        """The trial count the sweep is to reach, as set up."""
        return _count(self.setup.get("trials"))

    @property
    def done(self) -> int:
        return sum(t.state in ENDED and t.counted for t in self.trials)

    @property
    def state(self) -> str:
        """running (a trial is running), finished (its count reached), or unfinished."""
        if any(t.state == "running" for t in self.trials):
            return "running"
        target = self.target
        return "finished" if target is not None and self.done >= target else "unfinished"

    def counts(self) -> dict[str, int]:
        return {state: sum(t.state == state for t in self.trials) for state in STATES.values() if any(t.state == state for t in self.trials)}


@dataclass(frozen=True)
class SweepSummary:
    """A study's line in the listing; `damaged` with the reason when it cannot be read."""

    name: str
    storage: str | None
    model: str = ""
    done: int = 0
    target: int | None = None
    best: float | None = None
    metric: str = ""
    state: str = "damaged"
    reason: str = ""
    modified: float = 0.0  # when its files in the runs folder last changed: the newest is shown first


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9 else None


def _text(value: object) -> str:
    return value[:_TEXT_CAP] if isinstance(value, str) else ""


def _param(value: object) -> Param:
    if value is None or isinstance(value, (bool, str)):
        return value[:_TEXT_CAP] if isinstance(value, str) else value
    if isinstance(value, int):
        return value
    return _finite(value)  # a float, or None for NaN, infinities and what is not a number


def _seconds(trial: optuna.trial.FrozenTrial) -> float | None:
    recorded = _finite(trial.user_attrs.get(studies.SECONDS))
    if recorded is not None and recorded >= 0:
        return recorded
    start, end = trial.datetime_start, trial.datetime_complete
    return (end - start).total_seconds() if start is not None and end is not None else None


def trial_row(trial: optuna.trial.FrozenTrial) -> TrialRow:
    state = STATES.get(trial.state.name, trial.state.name.lower())
    value = _finite(trial.value) if state == "complete" and trial.values is not None and len(trial.values) == 1 else None
    return TrialRow(
        number=trial.number,
        state=state,
        params={str(k)[:_TEXT_CAP]: _param(v) for k, v in trial.params.items()},
        value=value,
        seconds=_seconds(trial),
        run=_text(trial.user_attrs.get(studies.RUN)),
        failed_why=_text(trial.user_attrs.get(studies.FAILED_WHY)),
        host=_text(trial.user_attrs.get(studies.HOST)),
        counted=studies.counted(trial),
    )


def _direction(study: optuna.Study, setup: dict[str, Any]) -> str:
    try:
        directions = study.directions
    except Exception:  # a storage that lost its record of them
        directions = []
    if len(directions) == 1:
        return "minimize" if directions[0].name == "MINIMIZE" else "maximize"
    return "minimize" if setup.get("direction") == "minimize" else "maximize"


def history_of(rows: tuple[TrialRow, ...], direction: str) -> tuple[tuple[int, float, float], ...]:
    """(trial, value, best so far) of the complete trials with a value, by trial number."""
    better = min if direction == "minimize" else max
    out: list[tuple[int, float, float]] = []
    for row in sorted(rows, key=lambda r: r.number):
        if row.state == "complete" and row.value is not None:
            best = row.value if not out else better(out[-1][2], row.value)
            out.append((row.number, row.value, best))
    return tuple(out)


def best_of(rows: tuple[TrialRow, ...], direction: str) -> TrialRow | None:
    scored = [r for r in rows if r.state == "complete" and r.value is not None]
    if not scored:
        return None
    # The earliest of equal scores, as Optuna's best_trial picks.
    if direction == "minimize":
        return min(scored, key=lambda r: (r.value, r.number))
    return min(scored, key=lambda r: (-(r.value or 0.0), r.number))


def importances_of(study: optuna.Study, rows: tuple[TrialRow, ...]) -> tuple[tuple[tuple[str, float], ...], str]:
    """Each parameter's share of the objective's variance (fANOVA, seeded so that a
    reading gives the same figures), or none and why."""
    scored = frozenset((r.number, r.value, tuple(sorted(r.params.items()))) for r in rows if r.state == "complete" and r.value is not None)
    if len(scored) < MIN_FOR_IMPORTANCE:
        return (), f"importances need {MIN_FOR_IMPORTANCE} complete trials ({len(scored)} so far)"
    key = (study.study_name, scored)
    if key not in _IMPORTANCES:
        if len(_IMPORTANCES) >= _IMPORTANCES_KEPT:
            _IMPORTANCES.pop(next(iter(_IMPORTANCES)))
        _IMPORTANCES[key] = _fanova(study)
    return _IMPORTANCES[key]


def _fanova(study: optuna.Study) -> tuple[tuple[tuple[str, float], ...], str]:
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    try:
        found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except Exception as exc:  # a failed estimate is reported, never raised
        return (), f"importances could not be estimated: {type(exc).__name__}: {str(exc)[:200]}"
    shares = [(str(name), float(share)) for name, share in found.items() if math.isfinite(float(share))]
    if not shares:
        return (), "importances: no parameter varied across the complete trials"
    return tuple(sorted(shares, key=lambda p: -p[1])), ""


def best_test_of(study: optuna.Study) -> BestTest | None:
    data = study.user_attrs.get(studies.BEST_TEST)
    if not isinstance(data, dict):
        return None
    trial, acc = _count(data.get("trial")), _finite(data.get("test_acc"))
    if trial is None or acc is None or not 0 <= acc <= 100:
        return None
    return BestTest(trial=trial, run=_text(data.get("run")), test_acc=acc, test_images=_count(data.get("test_images")))


def _log_params(trials: list[optuna.trial.FrozenTrial]) -> frozenset[str]:
    logged: set[str] = set()
    for trial in trials:
        for name, dist in trial.distributions.items():
            if getattr(dist, "log", False) is True:
                logged.add(str(name))
    return frozenset(logged)


def report_of(study: optuna.Study, name: str, url: str | None = None) -> SweepReport:
    """The report of an open study."""
    setup = studies.setup_of(study)
    trials = study.get_trials(deepcopy=False)
    rows = tuple(trial_row(t) for t in trials)
    direction = _direction(study, setup)
    importances, note = importances_of(study, rows)
    return SweepReport(
        name=name,
        storage=url,
        setup=setup,
        direction=direction,
        trials=rows,
        best=best_of(rows, direction),
        history=history_of(rows, direction),
        importances=importances,
        importance_note=note,
        best_test=best_test_of(study),
        log_params=_log_params(trials),
    )


def _quiet() -> None:
    """Optuna's INFO lines go to stderr; a reader of a study has nothing to add to them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def read_sweep(runs_dir: Path, name: str, url: str | None = None) -> SweepReport:
    """The report of study `name`; SweepError (one line) when it cannot be read."""
    _quiet()
    study = studies.load(runs_dir, name, url)
    try:
        return report_of(study, name, url)
    except studies.SweepError:
        raise
    except Exception as exc:  # a damaged storage: one line, not a traceback
        raise studies.SweepError(f"study {name} cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from exc


def _summary(runs_dir: Path, name: str, url: str | None) -> SweepSummary:
    """One study's line; its damage said in it. A study in a database or redis is not
    connected to (a pointer file is anyone's to write): it is read when asked for."""
    if studies.is_url(url):
        return SweepSummary(name=name, storage=url, state="remote", reason="in a database: pick it to read it", modified=_modified(runs_dir, name))
    try:
        study = studies.load(runs_dir, name, url)
        setup = studies.setup_of(study)
        rows = tuple(trial_row(t) for t in study.get_trials(deepcopy=False))
        direction = _direction(study, setup)
    except Exception as exc:  # any failure of one storage costs its line only
        why = str(exc) if isinstance(exc, studies.SweepError) else f"{type(exc).__name__}: {exc}"
        return SweepSummary(name=name, storage=url, reason=why[:_TEXT_CAP], modified=_modified(runs_dir, name))
    report = SweepReport(name, url, setup, direction, rows, best_of(rows, direction), (), (), "", None)
    return SweepSummary(
        name=name,
        storage=url,
        model=_text(setup.get("model")),
        done=report.done,
        target=report.target,
        best=report.best.value if report.best else None,
        metric=report.metric,
        state=report.state,
        modified=_modified(runs_dir, name),
    )


def list_sweeps(runs_dir: Path) -> list[SweepSummary]:
    """Every study remembered in the runs folder, by name; a damaged one listed as such."""
    _quiet()
    return [_summary(runs_dir, name, url) for name, url in studies.known_studies(runs_dir)]


def _modified(runs_dir: Path, name: str) -> float:
    """When the study's files in the runs folder last changed (0 when it has none there)."""
    times = []
    for suffix in (".journal", ".json"):
        try:
            times.append((studies.sweeps_dir(runs_dir) / f"{name}{suffix}").stat().st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


_SECRET_KEYS = ("pass", "secret", "token", "key")


def shown_url(url: str | None) -> str | None:
    """A storage URL fit to print: its password, and any query value whose key names a
    secret (?password=, ?sslkey=, ?token=), replaced by '***'."""
    if not url:
        return url
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        secret = any(s in k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True) for s in _SECRET_KEYS)
        if parts.password is None and not secret:
            return url  # as given: urlunsplit would rewrite sqlite:/// as sqlite:/
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[1]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        if secret:
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            masked = [(k, "***" if any(s in k.lower() for s in _SECRET_KEYS) else v) for k, v in pairs]
            parts = parts._replace(query=urlencode(masked, safe="*"))
        return urlunsplit(parts)
    except ValueError:
        return "(a storage URL that cannot be read)"


def plain(value: object) -> Any:
    """JSON read from a storage made safe to print as strict JSON: numbers that are not
    finite become null (json.loads takes NaN; a script's parser would not)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def report_json(report: SweepReport) -> dict[str, Any]:
    """The report as plain JSON for scripts (`sweep --show NAME --json`)."""

    def trial(row: TrialRow) -> dict[str, Any]:
        return {
            "number": row.number,
            "state": row.state,
            "params": row.params,
            "value": row.value,
            "seconds": row.seconds,
            "run": row.run or None,
            "failed_why": row.failed_why or None,
            "host": row.host or None,
        }

    test = report.best_test
    return {
        "name": report.name,
        "storage": shown_url(report.storage),
        "state": report.state,
        "direction": report.direction,
        "metric": report.metric,
        "setup": plain(report.setup),
        "trials_done": report.done,
        "trials_target": report.target,
        "counts": report.counts(),
        "best": trial(report.best) if report.best else None,
        "trials": [trial(r) for r in report.trials],
        "history": [{"trial": n, "value": v, "best": b} for n, v, b in report.history],
        "importances": dict(report.importances),
        "importance_note": report.importance_note or None,
        "best_test": None if test is None else {"trial": test.trial, "run": test.run or None, "test_acc": test.test_acc, "test_images": test.test_images},
    }
