"""A sweep's worker: create or resume the study, adopt this machine's orphaned trials, ask new
ones until the count is reached (up to `jobs` at once), and at the end evaluate the best
trial on the test set, once."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_tui.core.config import TrainConfig
from mnist_tui.core.store.lock import flock_within
from mnist_tui.core.sweep import study as st
from mnist_tui.core.sweep.space import Space, recipe_point, space_json, space_of
from mnist_tui.core.sweep.study import counted, holdout_problem
from mnist_tui.core.sweep.trial import Context, TrialEnd, adopt, start_trial, tell

if TYPE_CHECKING:
    import optuna

METRICS = {"holdout_acc": ("test_acc", "maximize"), "holdout_loss": ("test_loss", "minimize")}
LOCK_WAIT_S = 60.0
RECIPE = "recipe"  # a trial's user attribute: it is the version's own recipe, tried first
SETUP_WAIT_S = 30.0  # how long a worker that found the study made waits for its maker's SETUP
MAX_JOBS = 16  # trials at once on one machine
UNNAMED_S = 60.0  # a trial that names no host this long after it was asked lost its worker
# The settings a resumed sweep takes from its study, not from the command line.
FIXED = ("model", "epochs", "limit", "holdout", "test_limit", "metric", "precision", "seed", "pruner", "space")


@dataclass(frozen=True)
class Sweep:
    """An open sweep: its study, settings (as recorded), and the config each trial starts from."""

    study: optuna.Study
    setup: dict[str, Any]
    base: TrainConfig
    space: Space
    created: bool  # this worker made the study
    differs: tuple[str, ...] = ()  # options given that the stored settings overrule


@contextlib.contextmanager
def study_lock(runs_dir: Path, name: str, suffix: str = "lock", wait_s: float = LOCK_WAIT_S) -> Iterator[bool]:
    """Hold `.sweeps/NAME.<suffix>` (an flock, so a killed worker lets go); yields whether it
    was taken within wait_s."""
    folder = st.sweeps_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{st.check_name(name)}.{suffix}", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        yield flock_within(fd, wait_s)
    finally:
        os.close(fd)


def setup_for(base: TrainConfig, trials: int, metric: str, space: Space, pruner: str | None) -> dict[str, Any]:
    """The SETUP a new study records (study.py names its keys)."""
    return {
        "model": base.model,
        "trials": trials,
        "epochs": base.recipe.epochs,
        "limit": base.limit,
        "holdout": base.holdout,
        "test_limit": base.test_limit,
        "metric": metric,
        "direction": METRICS[metric][1],
        "precision": base.precision,
        "seed": base.seed,
        "space": space_json(space),
        "pruner": pruner,
        "device": base.device,
    }


def open_sweep(runs_dir: Path, name: str, url: str | None, wanted: dict[str, Any] | None, base: TrainConfig, trials: int | None) -> Sweep:
    """Create study `name` with the settings `wanted`, or open it (wanted None: it must exist;
    its stored settings win, a new `trials` target aside). SweepError says why not."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url is not None and not st.is_url(url):
        url = str(Path(url).expanduser().absolute())  # remembered so from any folder
    with study_lock(runs_dir, name) as held:
        if not held:
            raise st.SweepError(f"the study {name}'s lock in {st.sweeps_dir(runs_dir)} stayed held for {LOCK_WAIT_S:.0f} s")
        st.refuse_torn(runs_dir, name, url)  # before this worker appends a record to it
        if wanted is None:
            found, setup, created = st.load(runs_dir, name, url), {}, False
        else:
            found, created = _create(st.open_storage(runs_dir, name, url), name, wanted["direction"])
            # The embedded journal's every maker holds the study lock we hold: none is alive.
            setup = _settle_setup(found, wanted, created, base, maker_gone=url is None)
        setup = setup or st.setup_of(found)
        if not setup:
            raise st.SweepError(f"the study {name} was not made by mnist-tui sweep (it records no settings)")
        if trials is not None and trials != setup.get("trials"):
            setup = {**setup, "trials": trials}
            found.set_user_attr(st.SETUP, setup)
        st.remember(runs_dir, name, url)
    _attach_pruner(found, setup.get("pruner"), setup.get("epochs"))
    differs = tuple(k for k in FIXED if wanted is not None and not created and wanted.get(k) != setup.get(k))
    stored_base = _base_of(setup, base)
    return Sweep(found, setup, stored_base, space_of(setup.get("space"), stored_base), created, differs)


def _settle_setup(found: optuna.Study, wanted: dict[str, Any], created: bool, base: TrainConfig, maker_gone: bool) -> dict[str, Any]:
    """The study's SETUP once settled: `wanted`, set and its recipe trial enqueued, by the
    worker whose storage made the study; a worker that found it made (on another machine,
    maybe a moment ago) waits for the maker's SETUP and takes it, enqueuing nothing. A study
    still bare (no SETUP, no trial) once its maker is gone (`maker_gone`: the study lock it
    held while making is ours; else after SETUP_WAIT_S) is taken over: its maker was killed."""
    if created:
        return _make_setup(found, wanted, base)
    deadline = time.monotonic() + (0.0 if maker_gone else SETUP_WAIT_S)
    while not st.setup_of(found) and not found.get_trials(deepcopy=False) and time.monotonic() < deadline:
        time.sleep(0.2)  # user_attrs reads the storage each time
    setup = st.setup_of(found)
    bare = not setup and not found.get_trials(deepcopy=False)
    if bare and found.direction.name.lower() == wanted.get("direction"):
        return _make_setup(found, wanted, base)
    return setup


def _make_setup(found: optuna.Study, wanted: dict[str, Any], base: TrainConfig) -> dict[str, Any]:
    """Record `wanted` as the study's SETUP and enqueue the version's recipe as its first trial."""
    found.set_user_attr(st.SETUP, wanted)
    point = recipe_point(space_of(wanted.get("space"), base), base)
    if point is not None:
        found.enqueue_trial(point, user_attrs={RECIPE: True})
    return wanted


def _attach_pruner(found: optuna.Study, pruner: object, epochs: object = 1) -> None:
    """This worker's pruner, as the study's settings say (Optuna keeps none in storage): the
    median once two trials completed, in the second half of a trial's `epochs`, or Hyperband."""
    import optuna

    if pruner == "median":
        # Epochs are reported as steps 1, 2, ...; the median asks from step n_warmup_steps on.
        # A one-cycle schedule is still warming up in a trial's first epochs, where a good
        # trial can trail: the first half is never pruned (and the last epoch never is:
        # trial.py reports that one without asking).
        whole = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0 else 1
        found.pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=(whole + 1) // 2)
    elif pruner == "hyperband":
        found.pruner = optuna.pruners.HyperbandPruner(min_resource=1)
    else:
        found.pruner = optuna.pruners.NopPruner()


def _create(storage: optuna.storages.BaseStorage, name: str, direction: str) -> tuple[optuna.Study, bool]:
    """The study, made here (True) or found made (False): the storage's own check decides,
    so of several machines on one database exactly one is its maker."""
    import optuna

    try:
        way = optuna.study.StudyDirection.MINIMIZE if direction == "minimize" else optuna.study.StudyDirection.MAXIMIZE
        try:
            return optuna.create_study(study_name=name, storage=storage, direction=way), True
        except optuna.exceptions.DuplicatedStudyError:
            return optuna.load_study(study_name=name, storage=storage), False
    except Exception as exc:  # a storage's own errors (a damaged journal, a database's)
        raise st.SweepError(f"cannot open the study {name}: {type(exc).__name__}: {exc}"[:400]) from exc


def _base_of(setup: dict[str, Any], base: TrainConfig) -> TrainConfig:
    """The config each trial starts from: the stored settings over the version's recipe
    (where to find data and runs, and the device, stay this worker's)."""
    from mnist_tui.core.validate import config_problems
    from mnist_tui.core.versions import VERSIONS

    model = setup.get("model")
    holdout = setup.get("holdout")
    problem = holdout_problem(holdout)
    if problem:
        raise st.SweepError(f"the study's settings are damaged: {problem}")
    if model not in VERSIONS:
        raise st.SweepError(f"the study's model {str(model)[:40]!r} is not a version of this mnist-tui")
    try:
        config = VERSIONS[str(model)].config(
            epochs=setup.get("epochs"),
            limit=setup.get("limit"),
            holdout=setup.get("holdout"),
            test_limit=setup.get("test_limit"),
            precision=setup.get("precision"),
            seed=setup.get("seed"),
        )
    except (TypeError, ValueError) as exc:
        raise st.SweepError(f"the study's settings are damaged: {exc}") from None
    config = config.replace(device=base.device, data_dir=base.data_dir, runs_dir=base.runs_dir)
    problems = config_problems(config)
    if problems:
        raise st.SweepError(f"the study's settings cannot train: {'; '.join(problems.values())}"[:400])
    return config


def jobs_problem(jobs: int, trials: int) -> str | None:
    """Why `jobs` trials at once are refused (None when they are not): never more than the
    trials to reach, nor than MAX_JOBS."""
    if jobs > MAX_JOBS:
        return f"--jobs {jobs} is more than {MAX_JOBS} trials at once"
    if jobs > trials:
        return f"--jobs {jobs} is more than the {trials} trial{'s' if trials != 1 else ''} to reach"
    return None


def sampler_seed(seed: object, existing: int, others_running: bool) -> int:
    """The sampler's seed for the next trial: the sweep's seed plus the trials already asked
    (one worker's draws are reproducible), and this host and process mixed in while another
    worker's trials run (two workers asking at once never draw the same point)."""
    value = (seed if isinstance(seed, int) and not isinstance(seed, bool) else 0) + existing
    if others_running:
        mixed = zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode())
        value += mixed
    return value % 2**32


def target(sweep: Sweep) -> int:
    value = sweep.setup.get("trials")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


class Worker:
    """Drives a sweep's trials: `work()` returns once no more trials are to be asked."""

    def __init__(self, sweep: Sweep, ctx: Context, runs_dir: Path, jobs: int):
        self.sweep, self.ctx, self.runs_dir, self.jobs = sweep, ctx, runs_dir, jobs
        self.name = sweep.study.study_name
        self._ask = threading.Lock()
        self.mine: set[int] = set()  # the trials this worker asked or adopted
        self.errors: list[Exception] = []

    def work(self) -> None:
        """Run up to `jobs` trials at once until none is left; the first worker thread's
        error (a storage gone, a lock held too long) is raised here once all have ended."""
        threads = [threading.Thread(target=self._loop, daemon=True, name=f"sweep-{i}") for i in range(self.jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # in short waits: the main thread's signal handlers run between
        if self.errors:
            raise self.errors[0]

    def _loop(self) -> None:
        try:
            while not self.ctx.stop.is_set() and not self.errors:
                job = self._next()
                if job is None:
                    return
                job()
        except Exception as exc:  # noqa: BLE001  # handed to work(), which raises it
            self.errors.append(exc if isinstance(exc, st.SweepError) else st.SweepError(f"{type(exc).__name__}: {exc}"[:400]))
            self.ctx.stop.set()  # the other trials end too: their runs are stopped

    def _next(self) -> Callable[[], Any] | None:
        """Under the study's lock: an orphaned trial of this machine to adopt, else a new trial
        while the count is short; None when nothing is left."""
        with self._ask, study_lock(self.runs_dir, self.name) as held:
            if not held:
                raise st.SweepError(f"the study {self.name}'s lock stayed held for {LOCK_WAIT_S:.0f} s")
            trials = self.sweep.study.get_trials(deepcopy=False)
            for frozen in trials:
                if self._orphan(frozen):
                    self.mine.add(frozen.number)
                    return self._holding(frozen.number, functools.partial(adopt, self.ctx, frozen))
            if sum(counted(t) for t in trials) >= target(self.sweep):
                return None
            return self._ask_new(trials)

    def _orphan(self, frozen: optuna.trial.FrozenTrial) -> bool:
        import optuna

        if frozen.state != optuna.trial.TrialState.RUNNING:
            return False
        host = frozen.user_attrs.get(st.HOST)
        if host is None:  # asked, but its worker had not yet said where: gone, if long ago
            start = frozen.datetime_start
            if start is None or (datetime.now(start.tzinfo) - start).total_seconds() < UNNAMED_S:
                return False
        elif host != socket.gethostname():
            return False
        lock = self._trial_lock(frozen.number)
        taken = flock_within(lock, 0.0)
        os.close(lock)
        return taken

    def _trial_path(self, number: int) -> Path:
        return st.sweeps_dir(self.runs_dir) / f"{self.name}.trial-{number}.lock"

    def _trial_lock(self, number: int) -> int:
        """An open descriptor of `.sweeps/NAME.trial-N.lock` (not locked yet)."""
        return os.open(self._trial_path(number), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)

    def _ask_new(self, trials: list[optuna.trial.FrozenTrial]) -> Callable[[], Any] | None:
        """Ask the study for a new trial, its sampler seeded by the trials already there (two
        workers never draw the same first trials); None if another storage's worker took the
        last place first."""
        import optuna

        from mnist_tui.core.sweep.space import suggest

        others = any(t.state == optuna.trial.TrialState.RUNNING and t.number not in self.mine for t in trials)
        self.sweep.study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(self.sweep.setup.get("seed"), len(trials), others))
        trial = self.sweep.study.ask()
        self.mine.add(trial.number)
        params = suggest(trial, self.sweep.space)
        earlier = [t for t in self.sweep.study.get_trials(deepcopy=False) if t.number < trial.number and counted(t)]
        if len(earlier) >= target(self.sweep):
            tell(self.ctx, trial, "FAIL", None, 0.0, "", st.BEYOND)
            return None
        return self._holding(trial.number, lambda: start_trial(self.ctx, trial, params))

    def _holding(self, number: int, job: Callable[[], TrialEnd]) -> Callable[[], TrialEnd]:
        """`job`, run while holding trial `number`'s lock (taken now); once the trial is told,
        its lock file is removed (under the study's lock, while still held) and let go."""
        path = self._trial_path(number)
        fd = self._trial_lock(number)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

        def run() -> TrialEnd:
            try:
                return job()
            finally:
                self._drop_trial_lock(path, fd)

        return run

    def _drop_trial_lock(self, path: Path, fd: int) -> None:
        try:
            with study_lock(self.runs_dir, self.name) as held:
                if held and os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    path.unlink()
        except OSError:
            pass  # left in place: the next worker's flock on it works all the same
        finally:
            os.close(fd)
