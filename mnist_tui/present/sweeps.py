"""A sweep in words, for `mnist-tui sweep --show` and the Sweep screen: the trials' cells, the
best trial with its settings, importance bars, the setup and the listing of studies.

Every string that comes from a study (parameter names and values, run names, reasons,
the setup) is passed through `printable`: a study's storage is anyone's to write."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text

from mnist_tui.core.sweep.report import Param, SweepReport, SweepSummary, TrialRow, shown_url
from mnist_tui.present.runs import figure
from mnist_tui.present.text import printable
from mnist_tui.present.times import duration

STATE_STYLES = {"complete": "green", "pruned": "yellow", "failed": "red", "running": "cyan", "waiting": "", "damaged": "red"}
TEST_LABEL = "test accuracy (looked at once, at the end)"
BAR = 24  # cells of the longest importance bar
SETUP_KEYS = ("model", "epochs", "limit", "holdout", "test_limit", "metric", "direction", "pruner", "precision", "seed")


def safe(text: object) -> str:
    """Text from a study, fit for one line of a terminal."""
    return printable(str(text), one_line=True)


def param_text(value: Param) -> str:
    """A parameter's value: '0.00831', '128', 'cosine', 'true'."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}"
    return safe(value)


def score_text(value: float | None, metric: str = "") -> str:
    """A trial's score: a percentage for an accuracy ('99.12%'), else four figures."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{figure(value, 2)}%" if metric.endswith("acc") else f"{value:.4g}"


def settings_text(params: dict[str, Param]) -> str:
    """'lr=0.00831 batch_size=128 dropout=0.207'."""
    return " ".join(f"{safe(k)}={param_text(v)}" for k, v in params.items())


def param_names(report: SweepReport) -> list[str]:
    """Every parameter any trial has, in the order first seen."""
    names: dict[str, None] = {}
    for row in report.trials:
        names.update(dict.fromkeys(row.params))
    return list(names)


def trial_headers(report: SweepReport) -> list[str]:
    return ["#", "state", *(safe(p) for p in param_names(report)), safe(report.metric), "time", "run"]


def trial_cells(row: TrialRow, report: SweepReport) -> list[str]:
    """One trial's cells, in trial_headers' order."""
    params = [param_text(row.params.get(name)) if name in row.params else "" for name in param_names(report)]
    seconds = duration(row.seconds, "compact") if row.seconds is not None else "-"
    return [str(row.number), row.state, *params, score_text(row.value, report.metric), seconds, safe(row.run) or "-"]


def best_lines(report: SweepReport) -> list[str]:
    """The best trial so far: its score and run, then its settings."""
    best = report.best
    if best is None:
        return ["best: none yet (no trial is complete)"]
    run = f" · run {safe(best.run)}" if best.run else ""
    return [f"best: trial {best.number} · {safe(report.metric)} {score_text(best.value, report.metric)}{run}", f"settings: {settings_text(best.params)}"]


def best_test_line(report: SweepReport) -> str:
    test = report.best_test
    if test is None:
        return f"{TEST_LABEL}: not yet (it is measured once, for the best trial, when the sweep ends)"
    images = f", {test.test_images:,} images" if test.test_images else ""
    return f"{TEST_LABEL}: {test.test_acc:.2f}% (trial {test.trial}{images})"


def importance_bars(report: SweepReport, width: int = BAR) -> list[Text]:
    """A line per parameter, largest first: 'lr          ██████████▌ 62%'; or why there are none."""
    if not report.importances:
        return [Text(report.importance_note or "no importances")]
    names = [safe(name) for name, _ in report.importances]
    pad = max(len(n) for n in names)
    top = max(share for _, share in report.importances) or 1.0
    lines = []
    for name, (_, share) in zip(names, report.importances):
        eighths = round(max(0.0, share) / top * width * 8)
        bar = "█" * (eighths // 8) + (" ▏▎▍▌▋▊▉"[eighths % 8] if eighths % 8 else "")
        lines.append(Text.assemble(f"{name:<{pad}} ", (f"{bar:<{width}}", "magenta"), f" {share * 100:3.0f}%"))
    return lines


def setup_line(report: SweepReport) -> str:
    """'study s1 · finished · 6/6 trials (4 complete, 1 pruned, 1 failed) · model v4 · epochs 5 ...'."""
    target = report.target
    done = f"{report.done}/{target}" if target is not None else str(report.done)
    counts = ", ".join(f"{n} {state}" for state, n in report.counts().items())
    parts = [f"study {safe(report.name)}", report.state, f"{done} trials" + (f" ({counts})" if counts else "")]
    setup: dict[str, Any] = report.setup
    parts += [f"{key} {safe(setup[key])}" for key in SETUP_KEYS if key in setup and setup[key] is not None and not isinstance(setup[key], (dict, list))]
    parts.append(f"storage {safe(shown_url(report.storage))}" if report.storage else "storage: the runs folder's journal")
    return " · ".join(parts)


def failure_lines(report: SweepReport) -> list[str]:
    """Why each failed trial failed, one line each."""
    return [f"trial {r.number} failed: {safe(r.failed_why)}" for r in report.trials if r.state == "failed" and r.failed_why]


def summary_cells(summary: SweepSummary) -> list[str]:
    """A study's line in the listing: name, state, model, trials, best (or why it is damaged)."""
    if summary.state == "damaged":
        return [safe(summary.name), "damaged", "", "", safe(summary.reason)]
    if summary.state == "remote":  # not connected to until asked for
        return [safe(summary.name), "remote", "", "", safe(shown_url(summary.storage))]
    trials = f"{summary.done}/{summary.target}" if summary.target is not None else str(summary.done)
    best = score_text(summary.best, summary.metric) if summary.best is not None else "-"
    return [safe(summary.name), summary.state, safe(summary.model) or "-", trials, best]


SUMMARY_HEADERS = ["study", "state", "model", "trials", "best"]
