"""`eval`, `predict` and `layers`: what a run's model, or a version, does."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mnist_tui.cli.common import absolute, find
from mnist_tui.cli.exported import eval_file, names_file, predict_file


def cmd_eval(args: argparse.Namespace) -> int:

    from mnist_tui.core.data import DataError
    from mnist_tui.core.insight import run_outputs
    from mnist_tui.core.store import CheckpointError
    from mnist_tui.present.text import printable

    if names_file(args.run):
        return eval_file(args)
    run_dir = find(args, "eval")
    try:
        outputs = run_outputs(run_dir, absolute(args.data), args.precision)
    except (CheckpointError, DataError, OSError) as exc:
        reason = printable(f"{run_dir.name}: {getattr(exc, 'strerror', None) or exc}", one_line=True)
        print(f"mnist-tui eval: cannot evaluate {reason}", file=sys.stderr)
        return 1
    return show_eval(outputs, args.json)


def show_eval(outputs, as_json: bool) -> int:
    """Print an evaluation (a run's or an exported file's) as JSON or as tables; 0."""
    from dataclasses import replace

    from rich.console import Console

    from mnist_tui.core.insight import confusion
    from mnist_tui.headless import eval_record, print_eval
    from mnist_tui.present.text import printable

    matrix = confusion(outputs)
    if as_json:
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

    run_dir = None if names_file(args.run) else find(args, "predict")
    image = printable(args.image, one_line=True)  # a name a shell glob may have taken from a folder
    try:
        digit = to_mnist(read_picture(Path(args.image)))
    except ImageError as exc:
        print(f"mnist-tui predict: {printable(str(exc), one_line=True)}", file=sys.stderr)
        return 1
    if not digit.any():
        print(f"mnist-tui predict: {image} holds no ink (a blank picture): no digit to read", file=sys.stderr)
        return 1
    if run_dir is None:
        return predict_file(args, digit)
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
