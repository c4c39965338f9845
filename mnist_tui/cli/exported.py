"""`eval FILE` and `predict FILE IMAGE`: an exported model file in place of a run."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mnist_tui.cli.common import absolute, say

SUFFIXES = (".onnx", ".pt2")  # core/exported.py's, without importing torch to read an argument


def names_file(argument: str) -> bool:
    """Whether RUN names a file rather than a run: an exported model's extension, or any
    path that exists and is not a folder (run folders are folders)."""
    if argument.lower().endswith(SUFFIXES):
        return True
    return os.path.lexists(argument) and not os.path.isdir(argument)


def eval_file(args: argparse.Namespace) -> int:
    """The file on the test set, printed as a run's evaluation is."""

    from mnist_tui.core.data import DataError
    from mnist_tui.core.exported import ExportedError, load

    if args.precision != "auto":
        say("--precision applies to runs; an exported file runs in the precision it was exported in", "eval", error=True)
        return 2
    try:
        outputs = load(Path(args.run).expanduser()).outputs(absolute(args.data))
    except (ExportedError, DataError) as exc:
        say(f"cannot evaluate {exc}" if isinstance(exc, DataError) else str(exc), "eval")
        return 1
    from mnist_tui.cli.models import show_eval

    return show_eval(outputs, args.json)


def predict_file(args: argparse.Namespace, digit) -> int:  # digit: uint8 (28, 28), torch imported by the caller
    """The three likeliest digits of the picture by the file's model."""
    from mnist_tui.core.exported import ExportedError, load
    from mnist_tui.present.text import printable

    try:
        model = load(Path(args.run).expanduser())
        probs = model.probabilities(digit[None])[0]
    except ExportedError as exc:
        say(str(exc), "predict")
        return 1
    top = probs.topk(3)
    image, name, described = (printable(text, one_line=True) for text in (args.image, model.path.name, model.described))
    epoch = f", epoch {model.epoch}" if model.epoch is not None else ""
    print(f"{image}: {int(top.indices[0])}   (file {name}, {described}{epoch}, {model.precision})")
    for p, c in zip(top.values.tolist(), top.indices.tolist()):
        print(f"  {c}  {100 * p:6.2f}%")
    return 0
