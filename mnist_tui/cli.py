"""Command line: the TUI by default, and headless subcommands (train, runs, layers)."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading

from mnist_tui import __version__
from mnist_tui.core.config import DEVICES, OPTIMIZERS, PRECISIONS, SCHEDULERS
from mnist_tui.core.versions import VERSIONS


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-tui", description="Train and study MNIST convolutional networks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model version headless", description="Train a model version without the TUI. Unset options take the version's recipe.")
    t.add_argument("--model", default="v2", choices=list(VERSIONS), help="model version (default: v2)")
    t.add_argument("--epochs", type=_positive_int)
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--lr", type=_positive_float, help="learning rate")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--scheduler", choices=SCHEDULERS)
    t.add_argument("--seed", type=_non_negative_int, default=0)
    t.add_argument("--device", choices=DEVICES, default="auto")
    t.add_argument("--limit", type=_positive_int, help="train on the first N training images only")
    t.add_argument("--dropout", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--rotate", type=float, metavar="DEG", help="augment: rotate each image by up to ± DEG degrees")
    t.add_argument("--translate", type=float, metavar="F", help="augment: shift each image by up to ± F of its size")
    t.add_argument("--scale", type=float, metavar="F", help="augment: zoom each image by 1 ± up to F")
    t.add_argument("--precision", choices=PRECISIONS, default="auto", help="fp32, bf16 autocast, or auto: bf16 where the hardware has it (default)")
    t.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false", help="on CUDA, train eagerly instead of replaying each step from a CUDA graph")
    t.add_argument("--holdout", type=_non_negative_int, default=0, metavar="N", help="evaluate on the last N training images instead of the test set (for tuning)")
    t.add_argument("--data", metavar="DIR", help="dataset root (default: $MNIST_TUI_DATA or the project's data/)")
    t.add_argument("--runs", metavar="DIR", help="runs folder (default: $MNIST_TUI_RUNS or the project's runs/)")

    res = sub.add_parser("resume", help="continue a stopped or interrupted run from its last checkpoint")
    res.add_argument("run", help="the run's folder, id, or short id (the 6 hex digits at its end)")
    res.add_argument("--runs", metavar="DIR", help="runs folder (default: $MNIST_TUI_RUNS or the project's runs/)")
    res.add_argument("--data", metavar="DIR", help="dataset root (default: the one the run used)")

    r = sub.add_parser("runs", help="list saved runs")
    r.add_argument("--runs", metavar="DIR", help="runs folder (default: $MNIST_TUI_RUNS or the project's runs/)")

    u = sub.add_parser("tui", help="open the app (the default when no command is given)")
    u.add_argument("--runs", metavar="DIR", help="runs folder (default: $MNIST_TUI_RUNS or the project's runs/)")
    u.add_argument("--data", metavar="DIR", help="dataset root (default: $MNIST_TUI_DATA or the project's data/)")
    u.add_argument("--open", choices=("train", "layers", "runs"), default="train", help="the screen to open on")

    lay = sub.add_parser("layers", help="layer-by-layer breakdown of a version, or all versions compared")
    lay.add_argument("model", nargs="?", choices=list(VERSIONS))
    lay.add_argument("--classic", action="store_true", help="print the classic torchsummary table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return cmd_train(args)
    if args.command == "runs":
        return cmd_runs(args)
    if args.command == "resume":
        return cmd_resume(args)
    if args.command == "layers":
        return cmd_layers(args)
    if args.command == "tui":
        return cmd_tui(args.runs, args.data, args.open)
    return cmd_tui(None, None, "train")


def cmd_tui(runs: str | None, data_dir: str | None, screen: str) -> int:
    from mnist_tui.ui.app import MnistTuiApp

    MnistTuiApp(runs_dir=runs, data_dir=data_dir, start_mode=screen).run()
    return 0


def _stop_on_signals(stop: threading.Event) -> None:
    """Ctrl+C, SIGTERM and a dropped SSH session (SIGHUP) end the run cleanly."""

    def handler(signum, _frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C means now
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, handler)


def cmd_train(args: argparse.Namespace) -> int:
    from mnist_tui.core import data
    from mnist_tui.core.versions import get_version

    overrides = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "optimizer": args.optimizer,
            "scheduler": args.scheduler,
            "dropout": args.dropout,
            "weight_decay": args.weight_decay,
            "rotate": args.rotate,
            "translate": args.translate,
            "scale": args.scale,
        }.items()
        if v is not None
    }
    config = get_version(args.model).config(
        seed=args.seed,
        device=args.device,
        limit=args.limit,
        data_dir=args.data,
        runs_dir=args.runs,
        precision=args.precision,
        cuda_graph=args.cuda_graph,
        holdout=args.holdout,
        **overrides,
    )
    try:
        data.prepare(data.find_root(args.data), log=lambda msg: print(msg, file=sys.stderr))
    except data.DataError as exc:
        print(f"mnist-tui: error: {exc}", file=sys.stderr)
        return 1

    from mnist_tui.core.engine import train

    stop = threading.Event()
    return _report(train(config, stop), stop)


def _report(events, stop: threading.Event) -> int:
    from mnist_tui.headless import report

    _stop_on_signals(stop)
    status = report(events, interactive=sys.stdout.isatty())
    return {"finished": 0, "stopped": 130}.get(status, 1)


def cmd_resume(args: argparse.Namespace) -> int:
    from mnist_tui.core.runs import default_runs_dir, find_run

    try:
        run_dir = find_run(default_runs_dir(args.runs), args.run)
    except LookupError as exc:
        print(f"mnist-tui resume: error: {exc}", file=sys.stderr)
        return 2
    from mnist_tui.core.engine import resume

    stop = threading.Event()
    return _report(resume(run_dir, stop, data_dir=args.data), stop)


def cmd_runs(args: argparse.Namespace) -> int:
    from mnist_tui.core.runs import default_runs_dir, list_runs
    from mnist_tui.headless import print_runs

    runs_dir = default_runs_dir(args.runs)
    print_runs(list_runs(runs_dir), runs_dir)
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
