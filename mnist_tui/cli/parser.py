"""The command line's grammar: every command, its options and their checks (argparse)."""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from mnist_tui import __version__
from mnist_tui.cli.notes import add_parsers as add_notes_parsers
from mnist_tui.cli.notes import notify_option

RUNS_HELP = "runs folder (default: $MNIST_TUI_RUNS or the project's runs/)"
DATA_HELP = "dataset root (default: $MNIST_TUI_DATA or the project's data/)"
RUN_HELP = "the run's id, its short id (the 6 hex digits at its end), or its folder"
SCREENS = ("train", "layers", "runs")


class Parser(argparse.ArgumentParser):
    """argparse, whose errors echo what was typed without its escapes (an `ESC[2J` in a folder
    name would clear the screen) or lone surrogates (which no terminal can be sent)."""

    def error(self, message: str) -> NoReturn:
        from mnist_tui.present.text import printable

        super().error(printable(message, one_line=True))


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


positive_int, non_negative_int = _whole_number(1), _whole_number(0)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text.strip()}")
    return value


def folder(text: str) -> str:
    """An argparse type: a folder's path, which may not be empty (`--runs "$UNSET"` would
    otherwise mean the default folder, and `delete --yes` act on it)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path names no folder")
    return text


def _quick_help() -> str:
    """--quick's help, its time read from the registry as the app's picker reads it."""
    from mnist_tui.core.hardware import auto_precision
    from mnist_tui.core.versions import QUICK
    from mnist_tui.present.times import duration

    mode = auto_precision("auto", QUICK.model)
    took = QUICK.expected_seconds(QUICK.recipe.epochs, mode)
    about = f", about {duration(took)} on a 2-core CPU in {mode} (what --precision auto picks here)" if took is not None else ""
    return f"the quick recipe: {QUICK.model} for {QUICK.recipe.epochs} epochs, {QUICK.recipe.scheduler} schedule{about}; options still override"


def _parents() -> dict[str, argparse.ArgumentParser]:
    """The options several commands share, declared once."""
    runs, data, run = (argparse.ArgumentParser(add_help=False) for _ in range(3))
    runs.add_argument("--runs", type=folder, metavar="DIR", help=RUNS_HELP)
    data.add_argument("--data", type=folder, metavar="DIR", help=DATA_HELP)
    run.add_argument("run", help=RUN_HELP)
    return {"runs": runs, "data": data, "run": run}


def _recipe_options(t: argparse.ArgumentParser) -> None:
    from mnist_tui.core.config import OPTIMIZERS, SCHEDULERS
    from mnist_tui.core.versions import QUICK, VERSIONS

    t.add_argument("--quick", action="store_true", help=_quick_help())
    t.add_argument("--model", choices=list(VERSIONS), help=f"model version (default: v2, or {QUICK.model} with --quick)")
    t.add_argument("--epochs", type=positive_int)
    t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--lr", type=positive_float, help="learning rate")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--scheduler", choices=SCHEDULERS)
    t.add_argument("--dropout", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--momentum", type=float, help="SGD's momentum; under onecycle its cycle runs from 0.05 below it to 0.05 above (at most halfway to 1)")
    t.add_argument("--rotate", type=float, metavar="DEG", help="augment: rotate each image by up to ± DEG degrees")
    t.add_argument("--translate", type=float, metavar="F", help="augment: shift each image by up to ± F of its size")
    t.add_argument("--scale", type=float, metavar="F", help="augment: zoom each image by 1 ± up to F")


def _train_parser(sub, parents: dict[str, argparse.ArgumentParser]) -> None:
    from mnist_tui.core.config import DEVICES, PRECISIONS

    t = sub.add_parser(
        "train",
        parents=[parents["data"], parents["runs"]],
        help="train a model version headless",
        description="Train a model version without the TUI. Unset options take the version's recipe.",
    )
    _recipe_options(t)
    t.add_argument("--seed", type=non_negative_int, default=0)
    t.add_argument("--device", choices=DEVICES, default="auto")
    t.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    t.add_argument(
        "--test-limit", type=positive_int, metavar="N", help="evaluate on the first N test images only (a quick check: not the whole test set's accuracy)"
    )
    t.add_argument(
        "--target", type=float, metavar="PCT", help="stop at the end of the first epoch whose test accuracy reaches PCT %%; the time to it is recorded"
    )
    t.add_argument("--precision", choices=PRECISIONS, default="auto", help="fp32, bf16 autocast, or auto: bf16 where the hardware has it (default)")
    t.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false", help="on CUDA, train eagerly instead of replaying each step from a CUDA graph")
    t.add_argument(
        "--holdout", type=non_negative_int, default=0, metavar="N", help="evaluate on the last N training images instead of the test set (for tuning)"
    )
    t.add_argument("--nproc", type=positive_int, default=1, metavar="N", help="train on N processes of this machine (torch.distributed DDP through torchrun)")
    t.add_argument(
        "--detach", action="store_true", help="train in a background process of its own; return once it has made its run folder, printing the run id"
    )
    when = t.add_mutually_exclusive_group()
    when.add_argument(
        "--queue", action="store_true", help="queue the run: it starts in the background once its device is free (the default when another run trains on it)"
    )
    when.add_argument("--now", action="store_true", help="start now even if another run trains on the device: the CPU's cores are split between them")
    t.add_argument(
        "--print-config", action="store_true", help="print the run's config as JSON and exit (for torchrun: python -m mnist_tui.trainer CONFIG.json RUN_DIR)"
    )
    notify_option(t, by_default=False)
    t.set_defaults(refuse=t.error)  # bad values found after parsing exit 2 the argparse way


def _run_parsers(sub, p: dict[str, argparse.ArgumentParser]) -> None:
    """The commands about one saved or live run."""
    res = sub.add_parser("resume", parents=[p["run"], p["runs"]], help="continue a stopped or interrupted run from its last checkpoint")
    res.add_argument("--data", type=folder, metavar="DIR", help=DATA_HELP + "; never the folder stored in the run")
    res.add_argument("--force", action="store_true", help="resume a run last seen training on another host that has been silent for 10 minutes")
    res.add_argument("--nproc", type=positive_int, metavar="N", help="continue on N processes (default: as many as it started with)")
    res.add_argument("--detach", action="store_true", help="continue in a background process of its own; return once it has taken the run over")

    st = sub.add_parser("stop", parents=[p["run"], p["runs"]], help="stop a live run after its current batch, or cancel a queued one")
    st.add_argument("--no-wait", dest="wait", action="store_false", help="return at once instead of waiting until it has stopped")
    q = sub.add_parser("queue", parents=[p["runs"]], help="list the runs training and queued, in the order they start; or move a queued run")
    q.add_argument("--move", metavar="RUN", help="a queued run to move (" + RUN_HELP + ")")
    q.add_argument("--to", type=positive_int, default=1, metavar="N", help="with --move: its new place in the queue (1: next to start)")
    fo = sub.add_parser("follow", parents=[p["run"], p["runs"]], help="show a run's progress and epochs until it ends (Ctrl+C stops following, not training)")
    notify_option(fo, by_default=True)
    de = sub.add_parser("delete", parents=[p["run"], p["runs"]], help="delete a run that is not training")
    de.add_argument("--force", action="store_true", help="also delete a run last seen training on another host that has been silent for 10 minutes")
    de.add_argument("--yes", "-y", action="store_true", help="do not ask (otherwise the answer is read from stdin, terminal or not)")


def _study_parsers(sub, p: dict[str, argparse.ArgumentParser]) -> None:
    """The commands that list runs, study a run's model, or open the app."""
    from mnist_tui.core.config import PRECISIONS
    from mnist_tui.core.export import FORMATS
    from mnist_tui.core.versions import VERSIONS

    r = sub.add_parser("runs", parents=[p["runs"]], help="list saved runs")
    r.add_argument("--filter", default="", metavar="QUERY", help="as the Runs screen's filter: words, model:v2, device:cpu, acc>99.4, epochs>=10, lr<0.01")
    u = sub.add_parser("tui", parents=[p["runs"], p["data"]], help="open the app (the default when no command is given)")
    u.add_argument("--open", choices=SCREENS, default="train", help="the screen to open on")
    ev = sub.add_parser("eval", parents=[p["run"], p["runs"], p["data"]], help="accuracy, per-digit figures, confusion of a run or exported file")
    ev.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: the run's own (bf16 only where this CPU has it natively)")
    ev.add_argument("--json", action="store_true", help="print JSON instead of tables")
    pr = sub.add_parser(
        "predict", parents=[p["run"], p["runs"]], help="classify a digit's picture (PNG or PGM, any size or background) by a run or an exported file"
    )
    pr.add_argument("image", help="the picture's file")
    ex = sub.add_parser("export", parents=[p["run"], p["runs"], p["data"]], help="save a run's last checkpoint as ONNX, int8 ONNX or pt2, checked")
    ex.add_argument("--format", choices=list(FORMATS), default="onnx", help="onnx, onnx-int8 (the export extra) or pt2 (torch only)")
    ex.add_argument("--out", metavar="FILE", help="the file to write, in an existing folder (default: <runs>/exports/<run id>.<format's extension>)")
    ex.add_argument("--json", action="store_true", help="print the check as JSON (it is saved beside the file as FILE.json either way)")
    lay = sub.add_parser("layers", help="layer-by-layer breakdown of a version, or all versions compared")
    lay.add_argument("model", nargs="?", choices=list(VERSIONS))
    lay.add_argument("--classic", action="store_true", help="print the classic torchsummary table")


def _sweep_parser(sub, parents: dict[str, argparse.ArgumentParser]) -> None:
    from mnist_tui.core.config import DEVICES, PRECISIONS
    from mnist_tui.core.versions import VERSIONS

    sw = sub.add_parser(
        "sweep",
        parents=[parents["data"], parents["runs"]],
        help="search a version's recipe with Optuna, each trial an ordinary run",
        description="An Optuna study over a version's recipe, scored on held-out training images; with --study NAME alone, resume it.",
    )
    sw.add_argument("--model", choices=list(VERSIONS), help="the version whose recipe is searched (needed to create a study)")
    sw.add_argument("--trials", type=positive_int, help="trials to reach (default 20; on resume, a new target)")
    sw.add_argument("--epochs", type=positive_int, help="epochs of each trial (default: the recipe's)")
    sw.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    sw.add_argument(
        "--test-limit", type=positive_int, metavar="N", help="score on the first N held-out images only; the best's test check on the first N test images"
    )
    sw.add_argument("--space", metavar="FILE.toml", help="the search space (default: one around the version's recipe)")
    sw.add_argument("--metric", choices=("holdout_acc", "holdout_loss"), default="holdout_acc", help="the final epoch's figure on the held-out images")
    sw.add_argument("--holdout", type=non_negative_int, default=10_000, metavar="N", help="training images held out to score trials on (default 10,000)")
    sw.add_argument("--prune", nargs="?", const="median", choices=("median", "hyperband"), help="end poor trials early (median, or hyperband)")
    sw.add_argument("--study", metavar="NAME", help="the study's name (default: MODEL-TIME); an existing one is resumed")
    sw.add_argument("--storage", metavar="URL", help="an Optuna storage URL or journal file (default: a journal in the runs folder's .sweeps/)")
    sw.add_argument("--jobs", type=positive_int, default=1, metavar="N", help="trials at once on this machine (they share its cores)")
    sw.add_argument("--seed", type=non_negative_int, default=0, help="the sampler's and every trial's seed")
    sw.add_argument("--precision", choices=PRECISIONS, default="auto")
    sw.add_argument("--device", choices=DEVICES, default="auto")
    sw.add_argument("--detach", action="store_true", help="work the sweep in a background process; return once the study exists")
    sw.add_argument("--show", metavar="NAME", help="print a study's trials and best, and exit")
    sw.add_argument("--json", action="store_true", help="with --show: print JSON")
    sw.set_defaults(refuse=sw.error)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mnist-tui", description="Train and study MNIST convolutional networks. With no command, opens the app.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--runs", dest="app_runs", type=folder, metavar="DIR", help=RUNS_HELP + " for the app")
    parser.add_argument("--data", dest="app_data", type=folder, metavar="DIR", help=DATA_HELP + " for the app")
    parser.add_argument("--open", dest="app_open", choices=SCREENS, default="train", help="the screen the app opens on")
    parser.add_argument("--where", action="store_true", help="print every folder mnist-tui uses (runs, data, caches, logs) and what chose it, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = _parents()
    _train_parser(sub, parents)
    _run_parsers(sub, parents)
    _study_parsers(sub, parents)
    _sweep_parser(sub, parents)
    add_notes_parsers(sub, parents)
    return parser
