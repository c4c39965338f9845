"""Command line: the TUI by default, and headless subcommands (train, runs, layers)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from mnist_tui import __version__

# The rest of mnist-tui is imported where it is used: until main() runs, a Ctrl+C can only
# end the process with Python's traceback, so the module imports as little as it can.
if TYPE_CHECKING:
    from mnist_tui.trainer import Launch


def _whole_number(minimum: int):
    """An argparse type: a whole number of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}" if minimum == 1 else f"must be {minimum} or more, got {value}")
        return value

    return parse


_positive_int, _non_negative_int = _whole_number(1), _whole_number(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


RUNS_HELP = "runs folder (default: $MNIST_TUI_RUNS or the project's runs/)"
DATA_HELP = "dataset root (default: $MNIST_TUI_DATA or the project's data/)"
RUN_HELP = "the run's id, its short id (the 6 hex digits at its end), or its folder"


def _absolute(path: str | None) -> str | None:
    """A folder given on the command line, made absolute so it means the same later."""
    return str(Path(path).expanduser().resolve()) if path else None


def _quick_help() -> str:
    """--quick's help, its time read from the registry as the app's picker reads it."""
    from mnist_tui.core.hardware import auto_precision
    from mnist_tui.core.versions import QUICK
    from mnist_tui.present.times import duration

    mode = auto_precision("auto")
    took = QUICK.expected_seconds(QUICK.recipe.epochs, mode)
    about = f", about {duration(took)} on a 2-core CPU in {mode} (what --precision auto picks here)" if took is not None else ""
    return f"the quick recipe: {QUICK.model} for {QUICK.recipe.epochs} epochs, {QUICK.recipe.scheduler} schedule{about}; options still override"


def _train_parser(sub) -> None:
    from mnist_tui.core.config import DEVICES, OPTIMIZERS, PRECISIONS, SCHEDULERS
    from mnist_tui.core.versions import QUICK, VERSIONS

    t = sub.add_parser(
        "train", help="train a model version headless", description="Train a model version without the TUI. Unset options take the version's recipe."
    )
    t.add_argument("--quick", action="store_true", help=_quick_help())
    t.add_argument("--model", choices=list(VERSIONS), help=f"model version (default: v2, or {QUICK.model} with --quick)")
    t.add_argument("--epochs", type=_positive_int)
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--lr", type=_positive_float, help="learning rate")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--scheduler", choices=SCHEDULERS)
    t.add_argument("--seed", type=_non_negative_int, default=0)
    t.add_argument("--device", choices=DEVICES, default="auto")
    t.add_argument("--limit", type=_positive_int, help="train on the first N training images only")
    t.add_argument(
        "--test-limit", type=_positive_int, metavar="N", help="evaluate on the first N test images only (a quick check: not the whole test set's accuracy)"
    )
    t.add_argument(
        "--target", type=float, metavar="PCT", help="stop at the end of the first epoch whose test accuracy reaches PCT %%; the time to it is recorded"
    )
    t.add_argument("--dropout", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--rotate", type=float, metavar="DEG", help="augment: rotate each image by up to ± DEG degrees")
    t.add_argument("--translate", type=float, metavar="F", help="augment: shift each image by up to ± F of its size")
    t.add_argument("--scale", type=float, metavar="F", help="augment: zoom each image by 1 ± up to F")
    t.add_argument("--precision", choices=PRECISIONS, default="auto", help="fp32, bf16 autocast, or auto: bf16 where the hardware has it (default)")
    t.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false", help="on CUDA, train eagerly instead of replaying each step from a CUDA graph")
    t.add_argument(
        "--holdout", type=_non_negative_int, default=0, metavar="N", help="evaluate on the last N training images instead of the test set (for tuning)"
    )
    t.add_argument("--data", metavar="DIR", help=DATA_HELP)
    t.add_argument("--runs", metavar="DIR", help=RUNS_HELP)
    t.add_argument("--nproc", type=_positive_int, default=1, metavar="N", help="train on N processes of this machine (torch.distributed DDP through torchrun)")
    t.add_argument(
        "--detach", action="store_true", help="train in a background process of its own; return once it has made its run folder, printing the run id"
    )
    # Used by the launcher of a detached trainer: the whole config, and the reserved folder name.
    t.add_argument("--config-json", help=argparse.SUPPRESS)
    t.add_argument("--run-name", help=argparse.SUPPRESS)
    t.set_defaults(refuse=t.error)  # bad values found after parsing exit 2 the argparse way


def build_parser() -> argparse.ArgumentParser:
    from mnist_tui.core.config import PRECISIONS
    from mnist_tui.core.versions import VERSIONS

    parser = argparse.ArgumentParser(prog="mnist-tui", description="Train and study MNIST convolutional networks. With no command, opens the app.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--runs", dest="app_runs", metavar="DIR", help=RUNS_HELP + " for the app")
    parser.add_argument("--data", dest="app_data", metavar="DIR", help=DATA_HELP + " for the app")
    parser.add_argument("--open", dest="app_open", choices=("train", "layers", "runs"), default="train", help="the screen the app opens on")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _train_parser(sub)

    res = sub.add_parser("resume", help="continue a stopped or interrupted run from its last checkpoint")
    res.add_argument("run", help=RUN_HELP)
    res.add_argument("--runs", metavar="DIR", help=RUNS_HELP)
    res.add_argument("--data", metavar="DIR", help=DATA_HELP + "; never the folder stored in the run")
    res.add_argument("--force", action="store_true", help="resume a run last seen training on another host that has been silent for 10 minutes")
    res.add_argument("--nproc", type=_positive_int, metavar="N", help="continue on N processes (default: as many as it started with)")
    res.add_argument("--detach", action="store_true", help="continue in a background process of its own; return once it has taken the run over")

    st = sub.add_parser("stop", help="stop a live run after its current batch")
    st.add_argument("run", help=RUN_HELP)
    st.add_argument("--runs", metavar="DIR", help=RUNS_HELP)
    st.add_argument("--no-wait", dest="wait", action="store_false", help="return at once instead of waiting until it has stopped")

    fo = sub.add_parser("follow", help="show a run's progress and epochs until it ends (Ctrl+C stops following, not training)")
    fo.add_argument("run", help=RUN_HELP)
    fo.add_argument("--runs", metavar="DIR", help=RUNS_HELP)

    de = sub.add_parser("delete", help="delete a run that is not training")
    de.add_argument("run", help=RUN_HELP)
    de.add_argument("--runs", metavar="DIR", help=RUNS_HELP)
    de.add_argument("--force", action="store_true", help="also delete a run last seen training on another host that has been silent for 10 minutes")
    de.add_argument("--yes", "-y", action="store_true", help="do not ask (asked only on a terminal)")

    r = sub.add_parser("runs", help="list saved runs")
    r.add_argument("--runs", metavar="DIR", help=RUNS_HELP)
    r.add_argument("--filter", default="", metavar="QUERY", help="as the Runs screen's filter: words, model:v2, device:cpu, acc>99.4, epochs>=10, lr<0.01")

    u = sub.add_parser("tui", help="open the app (the default when no command is given)")
    u.add_argument("--runs", metavar="DIR", help=RUNS_HELP)
    u.add_argument("--data", metavar="DIR", help=DATA_HELP)
    u.add_argument("--open", choices=("train", "layers", "runs"), default="train", help="the screen to open on")

    ev = sub.add_parser("eval", help="a run's test accuracy, per-digit precision and recall, and confusion matrix")
    ev.add_argument("run", help=RUN_HELP)
    ev.add_argument("--runs", metavar="DIR", help=RUNS_HELP)
    ev.add_argument("--data", metavar="DIR", help=DATA_HELP)
    ev.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: the run's own (bf16 only where this CPU has it natively)")
    ev.add_argument("--json", action="store_true", help="print JSON instead of tables")

    pr = sub.add_parser("predict", help="classify a picture of a digit (PNG or PGM, any size, dark or light background) with a run's model")
    pr.add_argument("run", help=RUN_HELP)
    pr.add_argument("image", help="the picture's file")
    pr.add_argument("--runs", metavar="DIR", help=RUNS_HELP)

    lay = sub.add_parser("layers", help="layer-by-layer breakdown of a version, or all versions compared")
    lay.add_argument("model", nargs="?", choices=list(VERSIONS))
    lay.add_argument("--classic", action="store_true", help="print the classic torchsummary table")
    return parser


def run() -> NoReturn:
    """The `mnist-tui` command (and `python -m mnist_tui`, which the app's trainers are):
    main(), then the end of the process.

    Python's own shutdown, once torch has been loaded (with torch._dynamo, which torch.optim
    imports), took 1-2 s on the 2-core CPU: it tears the modules down one by one. By the time
    main() returns, a run has closed its files and released its lock, so where torch is
    loaded and no other thread that Python would wait for is alive, the process flushes its
    output and ends at once."""
    code = main()
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if "torch" not in sys.modules or others:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """The command's exit status. A Ctrl+C that comes before the command has set its own
    handlers (while Python imports what it needs: a train's handlers come within a second)
    or in a command that has none ends it with one line and status 130, as a stop would."""
    try:
        return _command(argv)
    except KeyboardInterrupt:
        # CPython remembers a KeyboardInterrupt that left code run from a string (an import's
        # namedtuple runs eval) and ends the process by SIGINT however it exits; running a
        # string to its end clears that (pythonrun.c, run_eval_code_obj).
        eval("None")
        print("mnist-tui: interrupted", file=sys.stderr)
        return 130


def _command(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # `mnist-tui --runs DIR runs` means the same as `mnist-tui runs --runs DIR`.
    for name in ("runs", "data"):
        if getattr(args, name, "absent") is None:
            setattr(args, name, getattr(args, f"app_{name}"))
    commands = {
        "train": cmd_train,
        "runs": cmd_runs,
        "resume": cmd_resume,
        "layers": cmd_layers,
        "stop": cmd_stop,
        "follow": cmd_follow,
        "delete": cmd_delete,
        "eval": cmd_eval,
        "predict": cmd_predict,
    }
    if args.command in commands:
        return commands[args.command](args)
    if args.command == "tui":
        return cmd_tui(args.runs or args.app_runs, args.data or args.app_data, args.open)
    return cmd_tui(args.app_runs, args.app_data, args.app_open)


def cmd_tui(runs: str | None, data_dir: str | None, screen: str) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        from mnist_tui.present.text import command_name

        print(
            f"mnist-tui: error: the app needs a terminal (its output is not one); for scripts and pipes use the headless commands: {command_name()} --help",
            file=sys.stderr,
        )
        return 2
    from mnist_tui.ui.app import MnistTuiApp

    return run_app(MnistTuiApp(runs_dir=_absolute(runs), data_dir=_absolute(data_dir), start_mode=screen))


def run_app(app, log_dir: Path | None = None, **run_options) -> int:
    """Run a Textual app to its end and return the process's exit status: the app's own, and
    after a crash 1, with the full traceback saved to a log whose path is printed (Textual's
    own report on the terminal is as wide as the terminal and scrolls away).
    `run_options` go to App.run (tests pass headless=True)."""
    try:
        app.run(**run_options)
    except Exception as exc:  # raised past Textual's own handling (its driver, say)
        error: BaseException | None = exc
        traceback.print_exception(exc)
    else:
        if not app.return_code:
            return 0
        # Textual keeps the first unhandled exception of a handler, a worker or a timer here
        # (App._handle_exception, which also sets return_code 1) to re-raise it under run_test.
        error = getattr(app, "_exception", None)
        if error is None:
            return app.return_code  # app.exit(return_code=N): an exit status, not a crash
    path = _save_crash(error, log_dir or crash_log_dir())
    where = f"the full traceback is in {path}" if path else "its traceback could not be saved"
    print(f"mnist-tui: the app crashed ({type(error).__name__}: {str(error)[:200]}); {where}", file=sys.stderr)
    return app.return_code or 1


def crash_log_dir() -> Path:
    """Where the app's crash logs go: $MNIST_TUI_LOGS, else the user's log folder
    (~/.local/state/mnist-tui/log on Linux, ~/Library/Logs/mnist-tui on macOS)."""
    if os.environ.get("MNIST_TUI_LOGS"):
        return Path(os.environ["MNIST_TUI_LOGS"]).expanduser()
    import platformdirs

    return platformdirs.user_log_path("mnist-tui", appauthor=False)


def _save_crash(error: BaseException, folder: Path) -> Path | None:
    """Write the crash's report (version, command, traceback) to a new file in `folder`."""
    from datetime import datetime, timezone

    import textual

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        f"mnist-tui {__version__} (textual {textual.__version__}, Python {sys.version.split()[0]}) crashed at {stamp}",
        f"command: {' '.join(sys.argv)}",
        "",
        *traceback.format_exception(error),
    ]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{stamp}-{os.getpid()}.log"
        path.write_text("\n".join(line.rstrip("\n") for line in lines) + "\n")
    except OSError:
        return None
    return path


def config_of(args: argparse.Namespace):
    """The run's config from the arguments (or, for a launched trainer, from --config-json)."""
    from mnist_tui.core.config import ConfigError, TrainConfig
    from mnist_tui.core.versions import QUICK, get_version

    if args.config_json:
        try:
            return TrainConfig.from_dict(json.loads(args.config_json))
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"--config-json: {exc}") from None
    names = ("epochs", "batch_size", "lr", "optimizer", "scheduler", "dropout", "weight_decay", "rotate", "translate", "scale")
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.quick:
        if args.model not in (None, QUICK.model):
            raise ConfigError(f"--quick trains {QUICK.model}; leave out --model, or give the recipe's options instead")
        base = QUICK
    else:
        base = get_version(args.model or "v2")
    return base.config(
        seed=args.seed,
        device=args.device,
        limit=args.limit,
        test_limit=args.test_limit,
        data_dir=_absolute(args.data),
        runs_dir=_absolute(args.runs),
        precision=args.precision,
        cuda_graph=args.cuda_graph,
        holdout=args.holdout,
        processes=args.nproc,
        target=args.target,
        **overrides,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from mnist_tui.core.config import ConfigError
    from mnist_tui.core.store import default_runs_dir
    from mnist_tui.core.validate import config_problems
    from mnist_tui.trainer import LaunchError, ProcessLauncher, handle_stop_signals, in_world, leader, reserve_name, run_world

    try:
        config = config_of(args)
    except ConfigError as exc:
        args.refuse(str(exc))
    problems = config_problems(config)
    if problems:
        args.refuse("; ".join(problems.values()))
    stop = threading.Event()
    handle_stop_signals(stop)  # before the slow imports: an early Ctrl+C ends quietly too
    runs_dir = default_runs_dir(config.runs_dir)
    if args.detach:
        from mnist_tui.core.store import CONFIG

        try:
            launch = ProcessLauncher().train(config, runs_dir)
        except LaunchError as exc:
            print(f"mnist-tui: {exc}", file=sys.stderr)
            return 1
        return _detached(launch, "training", lambda: (launch.run_dir / CONFIG).exists(), stop, new_run=True)

    from mnist_tui.core import data

    try:
        data.prepare(data.find_root(config.data_dir), log=lambda msg: print(msg, file=sys.stderr))
    except data.DataError as exc:
        return _failed_start(args, runs_dir, config, str(exc))

    if config.processes > 1 and not in_world():
        name = args.run_name or reserve_name(config.model)
        rank_args = ["train", "--config-json", json.dumps(config.replace(runs_dir=str(runs_dir)).to_dict()), "--run-name", name, "--runs", str(runs_dir)]
        return run_world(config.processes, rank_args, runs_dir / name)

    from mnist_tui.core.engine import train

    events = train(config, stop, run_name=args.run_name)
    if not leader():
        return _quietly(events)
    return _report(events, stop, runs_dir=runs_dir if args.run_name else None, start=(args, config))


def _quietly(events) -> int:
    """A distributed run's process other than rank 0: it trains and says nothing, unless it
    fails on its own."""
    from mnist_tui.core.events import RunFailed, RunFinished
    from mnist_tui.trainer import run_over

    status = "failed"
    for ev in events:
        if isinstance(ev, RunFailed):
            print(f"mnist-tui: rank {os.environ.get('RANK')}: {ev.reason}", file=sys.stderr)
        elif isinstance(ev, RunFinished):
            status = ev.status
    run_over()
    return {"finished": 0, "stopped": 130}.get(status, 1)


def _failed_start(args, runs_dir, config, reason: str) -> int:
    from mnist_tui.trainer import record_failed_start

    print(f"mnist-tui: failed: {reason}", file=sys.stderr)
    if args.run_name:
        record_failed_start(runs_dir, args.run_name, config, reason)
    return 1


# A trainer imports torch and reads MNIST before it owns its run (8-10 s on a loaded 2-core
# CPU). Past this, `--detach` returns anyway, saying that the trainer is still starting.
START_WAIT_S = 120.0


def _detached(launch: Launch, what: str, owns_run: Callable[[], bool], stop: threading.Event, new_run: bool) -> int:
    """Return once a detached trainer owns its run, so that `runs`, `follow` and `stop` find
    it: 0 with the run's id and the commands that follow and stop it, or 1 with the reason
    the trainer failed to start."""
    from mnist_tui.present.text import run_hint

    _await_start(launch, owns_run, stop)
    problem = _start_problem(launch, new_run)
    if problem:
        print(f"mnist-tui: {problem}", file=sys.stderr)
        if new_run and launch.log is not None and not launch.run_dir.exists():
            _drop_if_empty(launch.log)
        return 1
    if not owns_run() and not launch.ended():
        why = "you stopped waiting" if stop.is_set() else f"not ready after {START_WAIT_S:.0f} s"
        print(f"mnist-tui: note: the trainer is still starting ({why}); it logs to {launch.log}", file=sys.stderr)
    print(f"run {launch.run_dir.name}: {what} in the background in {launch.run_dir}")
    print(run_hint(launch.run_dir))
    return 0


def _drop_if_empty(log: Path) -> None:
    """Remove a failed trainer's starting log that holds nothing (a full disk): it would
    only stand for a run that never came; one with words is kept for whoever looks."""
    try:
        if log.stat().st_size == 0:
            log.unlink()
    except OSError:
        pass


def _await_start(launch: Launch, owns_run: Callable[[], bool], stop: threading.Event) -> None:
    """Wait until the trainer owns its run or ended, at most START_WAIT_S or until Ctrl+C,
    with a spinner on a terminal."""
    import contextlib
    import time

    deadline = time.monotonic() + START_WAIT_S
    spinner: contextlib.AbstractContextManager = contextlib.nullcontext()
    if sys.stderr.isatty():
        from rich.console import Console

        spinner = Console(stderr=True).status("starting the trainer: it imports torch and reads MNIST…")
    with spinner:
        while not (owns_run() or launch.ended() or stop.is_set() or time.monotonic() > deadline):
            stop.wait(0.1)


def _start_problem(launch: Launch, new_run: bool) -> str | None:
    """Why a detached trainer failed to start, or None: a trainer that ended in error speaks
    through its log; one that saved its new run as failed (bad data, no such device) through
    the run."""
    from mnist_tui.core.store import CONFIG, read_run

    if new_run and (launch.run_dir / CONFIG).exists():
        record = read_run(launch.run_dir)
        if record.status == "failed":
            return f"run {record.run_id} failed: {record.reason}"
    if launch.ended() and launch.process is not None and launch.process.returncode not in (0, 130):
        return launch.failure()
    return None


def _report(events, stop: threading.Event, runs_dir: Path | None = None, start=None) -> int:
    from mnist_tui.core.events import RunFailed, RunStarted
    from mnist_tui.headless import report
    from mnist_tui.trainer import adopt_starting_log, record_failed_start, run_over

    def watched(events):
        for ev in events:
            if isinstance(ev, RunStarted) and runs_dir is not None:
                adopt_starting_log(runs_dir, ev.run_dir)
            if isinstance(ev, RunFailed) and ev.run_dir is None and start is not None and start[0].run_name:
                record_failed_start(runs_dir, start[0].run_name, start[1], ev.reason)
            yield ev

    status = report(watched(events), interactive=sys.stdout.isatty())
    run_over()
    return {"finished": 0, "stopped": 130}.get(status, 1)


def _find(args: argparse.Namespace, command: str, starting: bool = False) -> Path:
    from mnist_tui.core.store import default_runs_dir, find_run

    try:
        return find_run(default_runs_dir(_absolute(args.runs)), args.run, starting)
    except LookupError as exc:
        print(f"mnist-tui {command}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_resume(args: argparse.Namespace) -> int:
    from mnist_tui.trainer import handle_stop_signals, in_world, leader, run_world

    stop = threading.Event()
    handle_stop_signals(stop)
    run_dir = _find(args, "resume")
    if args.detach:
        return _resume_detached(run_dir, args, stop)
    nproc = args.nproc or _processes_of(run_dir)
    if nproc > 1 and not in_world():
        rank_args = ["resume", str(run_dir)] + (["--data", _absolute(args.data) or ""] if args.data else []) + (["--force"] if args.force else [])
        return run_world(nproc, rank_args, run_dir)
    from mnist_tui.core.engine import resume

    events = resume(run_dir, stop, data_dir=_absolute(args.data), force=args.force)
    return _report(events, stop) if leader() else _quietly(events)


def _processes_of(run_dir: Path) -> int:
    """How many processes a run was started on (1 if its config does not say)."""
    from mnist_tui.core.config import MAX_PROCESSES
    from mnist_tui.core.store import read_run

    config = read_run(run_dir).config.get("config")
    n = config.get("processes") if isinstance(config, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_PROCESSES else 1


def _resume_detached(run_dir: Path, args: argparse.Namespace, stop: threading.Event) -> int:
    """Start a resuming trainer of its own and return once it owns the run (or refused)."""
    from mnist_tui.core.store import RESUMABLE, RESUMABLE_WORDS, read_run, taken_over
    from mnist_tui.trainer import LaunchError, ProcessLauncher

    record = read_run(run_dir)
    if record.status not in RESUMABLE and not (record.status == "stale" and args.force):
        print(f"mnist-tui: cannot resume {record.run_id}: it is {record.status}; only {RESUMABLE_WORDS} runs can be resumed", file=sys.stderr)
        return 1
    try:
        launch = ProcessLauncher().resume(run_dir, _absolute(args.data), args.force, args.nproc)
    except LaunchError as exc:
        print(f"mnist-tui: cannot resume {record.run_id}: {exc}", file=sys.stderr)
        return 1
    # Its own trainer, not another resume's, past every check that could refuse it.
    return _detached(launch, "resuming", lambda: taken_over(run_dir, launch.token, launch.since_ns), stop, new_run=False)


def _training(run_dir: Path):
    """(whether a trainer owns the run, its record): the lock decides on this host, whatever
    status.json says (it may be damaged); another host's run by its heartbeat (read_run)."""
    from mnist_tui.core.store import is_locked, read_run

    record = read_run(run_dir)
    return is_locked(run_dir) or record.status == "running", record


def cmd_stop(args: argparse.Namespace) -> int:
    import time

    from mnist_tui.core.store import request_stop
    from mnist_tui.present.text import printable

    run_dir = _find(args, "stop", starting=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # a detached trainer still setting up: its folder comes in a few seconds
    live, record = _training(run_dir)
    name = printable(record.run_id, one_line=True)
    if not live:
        print(f"mnist-tui stop: {name} is not training (it is {record.status})", file=sys.stderr)
        return 1
    try:
        request_stop(run_dir)
    except OSError as exc:
        print(f"mnist-tui stop: cannot ask {name} to stop: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not args.wait:
        print(f"asked {name} to stop after its current batch")
        return 0
    deadline = time.monotonic() + 120
    while (found := _training(run_dir))[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    live, record = found
    print(f"{name}: {'still training' if live else record.status} after {record.epochs_done} epoch{'s' if record.epochs_done != 1 else ''}")
    return 1 if live else 0


def cmd_follow(args: argparse.Namespace) -> int:
    import time

    from mnist_tui.core.store.follow import Follower
    from mnist_tui.headless import report

    run_dir = _find(args, "follow", starting=True)
    follower = Follower(run_dir)

    def events():
        while not follower.done:
            yield from follower.poll()
            time.sleep(0.25)

    try:
        status = report(events(), interactive=sys.stdout.isatty())
    except KeyboardInterrupt:
        print(f"\nstopped following; {run_dir.name} trains on", file=sys.stderr)
        return 0
    return {"finished": 0, "stopped": 130}.get(status, 1)


def cmd_delete(args: argparse.Namespace) -> int:
    from mnist_tui.core.store import RunBusy, delete_run, deletion_problem
    from mnist_tui.present.text import printable

    run_dir = _find(args, "delete")
    name = printable(run_dir.name, one_line=True)
    problem = deletion_problem(run_dir)  # asked again under the run's lock; here before asking
    if problem:
        print(f"mnist-tui delete: {printable(problem, one_line=True)}", file=sys.stderr)
        return 1
    if sys.stdin.isatty() and not args.yes:
        answer = input(f"Delete run {name} and all its files? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept")
            return 1
    try:
        delete_run(run_dir, force=args.force)
    except (RunBusy, OSError) as exc:
        print(f"mnist-tui delete: {printable(str(exc), one_line=True)}", file=sys.stderr)
        return 1
    print(f"deleted {name}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from mnist_tui.core.history import QueryError, parse_query, select
    from mnist_tui.core.store import default_runs_dir, list_runs
    from mnist_tui.headless import print_runs

    runs_dir = default_runs_dir(_absolute(args.runs))
    try:
        what = "" if not args.runs or runs_dir.is_dir() else "is not a folder" if runs_dir.exists() else "does not exist"
    except OSError as exc:  # a path too long for the system (is_dir passes ENAMETOOLONG on)
        what = f"cannot be read: {exc.strerror}"
    if what:
        print(f"mnist-tui runs: error: {runs_dir} {what}", file=sys.stderr)
        return 2
    try:
        parse_query(args.filter)
    except QueryError as exc:
        print(f"mnist-tui runs: error: --filter {exc}", file=sys.stderr)
        return 2
    everything = list_runs(runs_dir)
    records = [row.record for row in select(everything, args.filter)]
    if everything and not records:
        print(f"No runs in {runs_dir} match {args.filter!r} ({len(everything):,} run{'' if len(everything) == 1 else 's'} in all).")
        return 0
    print_runs(records, runs_dir)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rich.console import Console

    from mnist_tui.core.data import DataError
    from mnist_tui.core.insight import confusion, run_outputs
    from mnist_tui.core.store import CheckpointError
    from mnist_tui.headless import eval_record, print_eval
    from mnist_tui.present.text import printable

    run_dir = _find(args, "eval")
    try:
        outputs = run_outputs(run_dir, _absolute(args.data), args.precision)
    except (CheckpointError, DataError, OSError) as exc:
        reason = printable(f"{run_dir.name}: {getattr(exc, 'strerror', None) or exc}", one_line=True)
        print(f"mnist-tui eval: cannot evaluate {reason}", file=sys.stderr)
        return 1
    matrix = confusion(outputs)
    if args.json:
        print(json.dumps(eval_record(outputs, matrix), indent=1))  # JSON escapes control characters itself
    else:
        # The run's id and model come from its files: printed as they are, never read as markup.
        shown = replace(outputs, run_id=printable(outputs.run_id, one_line=True), model=printable(outputs.model, one_line=True))
        print_eval(shown, matrix, Console(highlight=False, markup=False))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from mnist_tui.core.insight import network
    from mnist_tui.core.preprocess import ImageError, read_picture, to_mnist
    from mnist_tui.core.store import CheckpointError
    from mnist_tui.present.text import printable

    run_dir = _find(args, "predict")
    image = printable(args.image, one_line=True)  # a name a shell glob may have taken from a folder
    try:
        digit = to_mnist(read_picture(Path(args.image)))
    except ImageError as exc:
        print(f"mnist-tui predict: {printable(str(exc), one_line=True)}", file=sys.stderr)
        return 1
    if not digit.any():
        print(f"mnist-tui predict: {image} holds no ink (a blank picture): no digit to read", file=sys.stderr)
        return 1
    try:
        net = network(run_dir)
    except (CheckpointError, OSError) as exc:
        reason = printable(f"{run_dir.name}: {getattr(exc, 'strerror', None) or exc}", one_line=True)
        print(f"mnist-tui predict: cannot use run {reason}", file=sys.stderr)
        return 1
    probs = net.probabilities(digit[None])[0]
    top = probs.topk(3)
    run_id, model = (printable(text, one_line=True) for text in (net.run_id, net.model))
    print(f"{image}: {int(top.indices[0])}   (run {run_id}, {model}, epoch {net.epoch}, {net.precision})")
    for p, c in zip(top.values.tolist(), top.indices.tolist()):
        print(f"  {c}  {100 * p:6.2f}%")
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    from mnist_tui.headless import print_breakdown, print_versions

    if args.model is None:
        print_versions()
    elif args.classic:
        from mnist_tui.core.layers import classic_summary

        print(classic_summary(args.model), end="")
    else:
        print_breakdown(args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
