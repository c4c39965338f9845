"""`mnist-tui sweep --show NAME [--json]`: a sweep read back from its study, headless; with
no name (`--show ""`), the studies the runs folder knows."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from mnist_tui.cli.common import absolute, say, silence_stdout


def _storage_of(runs_dir: Path, name: str, given: str | None) -> str | None:
    """The storage named on the command line, else the one remembered for the study."""
    if given:
        return given
    from mnist_tui.core.sweep.study import known_studies

    return dict(known_studies(runs_dir)).get(name)


@contextlib.contextmanager
def _reader_may_go() -> Iterator[None]:
    """A reader that went away (`| head -c1`) silences the rest of the output, no traceback."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()


def cmd_show(args: argparse.Namespace) -> int:
    with _reader_may_go():
        return _show(args)
    return 0  # the reader went away: what it read was whole as far as it went


def _show(args: argparse.Namespace) -> int:
    from mnist_tui.core.store import default_runs_dir
    from mnist_tui.core.sweep.report import read_sweep, report_json
    from mnist_tui.core.sweep.study import SweepError

    runs_dir = default_runs_dir(absolute(args.runs))
    name = args.show or ""
    if not name:
        return _list(runs_dir, bool(args.json))
    try:
        report = read_sweep(runs_dir, name, _storage_of(runs_dir, name, getattr(args, "storage", None)))
    except SweepError as exc:
        say(str(exc), "sweep")
        return 1
    if args.json:
        print(json.dumps(report_json(report), indent=2, allow_nan=False))
    else:
        _print_report(report)
    return 0


def _print_report(report) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from mnist_tui.headless import _console
    from mnist_tui.present import sweeps

    console = _console()
    console.print(Text(sweeps.setup_line(report)), overflow="fold")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in sweeps.trial_headers(report):
        table.add_column(header, no_wrap=True)
    for row in report.trials:
        table.add_row(*(Text(cell) for cell in sweeps.trial_cells(row, report)), style=sweeps.STATE_STYLES.get(row.state, ""))
    console.print(table)
    for line in sweeps.failure_lines(report):
        console.print(Text(line), overflow="fold")
    for line in sweeps.best_lines(report):
        console.print(Text(line), overflow="fold")
    console.print(Text("importance (fANOVA):" if report.importances else "importance:"))
    for bar in sweeps.importance_bars(report):
        console.print(Text("  ") + bar)
    console.print(Text(sweeps.best_test_line(report)))


def _list(runs_dir: Path, as_json: bool) -> int:
    """The studies remembered in the runs folder; a damaged one says why."""
    from mnist_tui.core.sweep.report import list_sweeps
    from mnist_tui.present import sweeps

    found = list_sweeps(runs_dir)
    if as_json:
        from mnist_tui.core.sweep.report import shown_url

        fields = ("name", "model", "done", "target", "best", "metric", "state", "reason")
        listed = [{f: getattr(s, f) for f in fields} | {"storage": shown_url(s.storage)} for s in found]
        print(json.dumps(listed, indent=2, allow_nan=False))
        return 0
    if not found:
        print(sweeps.safe(f"No sweeps in {runs_dir}."))
        return 0
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from mnist_tui.headless import _console

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=sweeps.safe(f"Sweeps in {runs_dir}"), title_justify="left")
    for header in sweeps.SUMMARY_HEADERS:
        table.add_column(header, no_wrap=header != "best")
    for summary in found:
        table.add_row(*(Text(c) for c in sweeps.summary_cells(summary)), style=sweeps.STATE_STYLES.get(summary.state, ""))
    _console().print(table)
    return 0
