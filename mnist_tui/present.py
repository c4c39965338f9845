"""Words and figures shown by both front ends (the headless commands and the app)."""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import rich.repr
from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from mnist_tui.core.events import BatchProgress, EpochFinished, RunFinished, RunStarted
from mnist_tui.core.hardware import duration
from mnist_tui.core.history import RunRow
from mnist_tui.core.layers import LayerRow
from mnist_tui.core.store import default_runs_dir
from mnist_tui.core.store.records import mean

# Terminal control sequences: CSI (ESC [ or its C1 form, parameters, a final byte); a string
# (OSC ESC ], DCS ESC P, SOS ESC X, PM ESC ^, APC ESC _, or their C1 forms) up to BEL or ST;
# any other ESC with its intermediate and final bytes. Then any control character left over:
# C0 but tab and newline, DEL, and C1 (which some terminals read as ESC and a letter).
_SEQUENCES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b[\]PX^_]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)|\x1b[ -/]*[0-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


_SURROGATES = re.compile("[\ud800-\udfff]")


def printable(text: str, one_line: bool = False) -> str:
    """Text from a file or a folder's name, safe to print to a terminal: escape sequences and
    control characters taken out (an `ESC[2J` in a model name would clear the screen, an
    `ESC]0;` retitle the window), everything else kept as it was. `one_line`: newlines and
    tabs become spaces too, for a line or a table cell."""
    if text.isprintable():  # the usual case, at C speed: nothing to take out
        return text
    # A lone surrogate (a JSON \ud800 escape, a folder name that is not UTF-8) cannot be
    # encoded for any terminal: print() would raise. It shows as the replacement character.
    text = _SURROGATES.sub("\ufffd", _CONTROLS.sub("", _SEQUENCES.sub("", text)))
    return text.replace("\n", " ").replace("\t", " ") if one_line else text


CLOCK_HOURS = 999  # the longest time a clock shows; longer is "> 999 h" (the width of 999:59:59)


def clock(seconds: float) -> str:
    """'0:54', '1:05:07'; '> 999 h' past that (up to inf), '?' for no time (NaN, negative)."""
    if not seconds >= 0:  # NaN too
        return "?"
    if seconds >= CLOCK_HOURS * 3600 + 3599.5:
        return f"> {CLOCK_HOURS} h"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}" if whole >= 3600 else f"{whole // 60}:{whole % 60:02d}"


def time_left(ev: BatchProgress, done: list[EpochFinished], train_size: int) -> str:
    """'0:12 left, run 1:05' (the epoch's time left, then the whole run's): later epochs take as long as the finished
    ones did (test pass included), or, in the first, as long as this one's pace says. Any float gives a line (an
    inf or NaN sum shows as clock shows it)."""
    if done:
        per_epoch = mean([e.seconds for e in done]) or 0.0
    elif ev.images_per_s > 0 and train_size:
        per_epoch = train_size / ev.images_per_s  # inf for a pace of 1e-310 images a second
    else:
        return ""
    later = max(0, ev.epochs - ev.epoch)
    run = ev.seconds_left + (per_epoch * later if later else 0.0)  # inf * 0 would be NaN
    return f"{clock(ev.seconds_left)} left, run {clock(run)}"  # short: it shares a line at 80 columns


def megabytes(mb: float) -> str:
    """'812 MiB', '1.4 GiB'."""
    return f"{mb / 1024:.1f} GiB" if mb >= 1024 else f"{mb:,.0f} MiB"


def usage_parts(cpu_percent: float | None, rss_mb: float | None, gpu_util: float | None, gpu_memory_mb: float | None) -> list[str]:
    parts = []
    if cpu_percent is not None:
        parts.append(f"CPU {cpu_percent:.0f}%")
    if rss_mb is not None:
        parts.append(f"memory {megabytes(rss_mb)}")
    if gpu_util is not None:
        parts.append(f"GPU {gpu_util:.0f}%")
    if gpu_memory_mb is not None:
        parts.append(f"GPU memory {megabytes(gpu_memory_mb)}")
    return parts


def usage_line(ev: BatchProgress) -> str:
    """The trainer's use of the machine now: 'trainer: CPU 197% · memory 1.2 GiB · GPU 84% · GPU memory 2.1 GiB'
    (CPU percent of one core: 200% is two cores busy)."""
    parts = usage_parts(ev.cpu_percent, ev.rss_mb, ev.gpu_util, ev.gpu_memory_mb)
    return "trainer: " + " · ".join(parts) if parts else ""


def epoch_cost(e: EpochFinished) -> str:
    """What the epoch cost: 'epoch 3: 41.2 s · 1,512 img/s · 80.1 CPU s (194%) · memory 1.2 GiB'."""
    parts = [f"epoch {e.epoch}: {e.seconds:.1f} s", f"{e.images_per_s:,.0f} img/s"]
    if e.cpu_seconds is not None:
        parts.append(f"{e.cpu_seconds:.1f} CPU s" + (f" ({e.cpu_percent:.0f}%)" if e.cpu_percent is not None else ""))
    parts += usage_parts(None, e.rss_mb, e.gpu_util, e.memory_mb)
    return " · ".join(parts)


def target_words(e: RunFinished) -> str:
    """'reached 99.40% at epoch 3, 41.2 s from the start' / 'did not reach the target 99.40%' / ''."""
    if e.target is None:
        return ""
    if e.reached is None:
        return f"did not reach the target {e.target:.2f}%"
    took = f", {e.reached.elapsed:.1f} s from the start" if e.reached.elapsed is not None else ""
    return f"reached {e.target:.2f}% at epoch {e.reached.epoch}{took}"


def best_line(epochs: list[EpochFinished]) -> str:
    """'best test acc 99.41% @7 · min test loss 0.0213 @9 · last 99.38%' (@: the epoch; all of the test set)."""
    if not epochs:
        return ""
    best = max(epochs, key=lambda e: e.test_acc)
    low = min(epochs, key=lambda e: e.test_loss)
    return f"best test acc {best.test_acc:.2f}% @{best.epoch} · min test loss {low.test_loss:.4f} @{low.epoch} · last {epochs[-1].test_acc:.2f}%"


def command_name() -> str:
    """The mnist-tui command as the user can type it, for hints to paste: `mnist-tui` where
    that name on PATH is this install; else this install's script (`.venv/bin/mnist-tui`
    after `make run`: relative to the current folder when inside it); else
    `python -m mnist_tui` with this Python."""
    scripts = [Path(sysconfig.get_path("scripts")), Path(sysconfig.get_path("scripts", f"{os.name}_user"))]
    ours = [folder / ("mnist-tui.exe" if os.name == "nt" else "mnist-tui") for folder in scripts]
    if sys.argv and Path(sys.argv[0]).name in ("mnist-tui", "mnist-tui.exe"):
        ours.insert(0, Path(sys.argv[0]))  # the script running now
    ours = [p for p in ours if p.is_file()]
    on_path = shutil.which("mnist-tui")
    if on_path and any(_same_file(on_path, p) for p in ours):
        return "mnist-tui"
    if ours:
        return shlex.quote(_as_typed(ours[0]))
    python = shutil.which("python")
    return f"{'python' if python and _same_file(python, sys.executable) else shlex.quote(sys.executable)} -m mnist_tui"


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _as_typed(path: Path) -> str:
    """A path as short as it can be typed from here: relative inside the current folder."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except (ValueError, OSError):  # outside it, or the current folder was deleted
        return str(absolute)


def with_article(number: int | str) -> str:
    """'a 7', 'an 8', 'an 11', 'an 18,000': the article as the number is read aloud."""
    digits = str(number).replace(",", "")
    vowel = digits.startswith("8") or (len(digits) % 3 == 2 and digits.startswith(("11", "18")))
    return f"{'an' if vowel else 'a'} {number}"


def digit_caption(index: int, label: int) -> str:
    """'test digit #1234 (an 8)': a test image named on the screens that show one."""
    return f"test digit #{index} ({with_article(label)})"


def run_hint(run_dir: Path) -> str:
    """The commands that follow and stop a run, ready to paste (with its runs folder when
    that is not the default one)."""
    short = run_dir.name[-6:]
    where = "" if Path(run_dir).parent.resolve() == default_runs_dir().resolve() else f" --runs {shlex.quote(str(run_dir.parent))}"
    command = command_name()
    return f"follow it: {command} follow {short}{where} · stop it: {command} stop {short}{where}"


@dataclass(frozen=True)
class RunColumn:
    """A column of the runs tables (the Runs screen's and `mnist-tui runs`)."""

    key: str  # a history.COLUMNS name
    header: str
    rank: int  # 0 is kept first when the width runs short; higher ranks go first
    right: bool = False  # numbers are right-aligned


RUN_COLUMNS = (
    RunColumn("run", "run", 0),
    RunColumn("model", "model", 3),
    RunColumn("status", "status", 2),
    RunColumn("epochs", "epochs", 4, right=True),
    RunColumn("final_acc", "final acc", 1, right=True),
    RunColumn("best_acc", "best acc", 5, right=True),
    RunColumn("min_loss", "min loss", 8, right=True),
    RunColumn("params", "params", 7, right=True),
    RunColumn("seconds", "time", 6, right=True),
    RunColumn("epoch_s", "s/epoch", 9, right=True),
    RunColumn("img_s", "img/s", 10, right=True),
    RunColumn("to_target", "to target", 10, right=True),
    RunColumn("device", "device", 11),
    RunColumn("lr", "lr", 12, right=True),
    RunColumn("batch", "batch", 13, right=True),
    RunColumn("images", "images", 14, right=True),
    RunColumn("seed", "seed", 15, right=True),
    RunColumn("precision", "precision", 16),
    RunColumn("started", "started (UTC)", 17),  # the default run id says it already
)
RUN_HEADERS = {c.key: c.header for c in RUN_COLUMNS}


def figure(value: float, decimals: int, thousands: bool = False) -> str:
    """A figure to `decimals` places ('1,512', '41.2'); past a billion in the short form
    ('1e+308': a schema-valid 1e308 would print 309 digits), infinity as '∞'."""
    if math.isinf(value):
        return "∞"
    if abs(value) >= 1e9:
        return f"{value:.3g}"
    return f"{value:,.{decimals}f}" if thousands else f"{value:.{decimals}f}"


def run_cell(row: RunRow, key: str) -> str:
    """One cell of the runs tables, as text."""
    value = row.value(key)
    if key == "to_target" and row.record.target is not None and value is None:
        return "not reached" if row.record.status in ("finished", "stopped") else "-"
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return printable(value, one_line=True)  # run id, model, device: from files and folder names
    if key == "final_acc":
        return f"{value:.2f}%"
    if key == "best_acc" and row.best is not None:
        return f"{value:.2f}% @{row.best.epoch}"
    if key == "min_loss" and row.lowest is not None:
        return f"{figure(value, 4)} @{row.lowest.epoch}"
    if key == "epoch_s":
        return figure(value, 1)
    if key == "img_s":
        return figure(value, 0, thousands=True)
    if key == "to_target" and row.reached is not None:
        return f"{figure(value, 1)} s @{row.reached.epoch}"
    if key in ("params", "images"):
        return f"{value:,}"
    if key == "seconds":
        return duration(value, compact=True)
    if key == "lr":
        return f"{value:g}"
    return str(value)


def run_texts(row: RunRow) -> dict[str, str]:
    """Every cell of a run's row, as text (worked out once per run by the tables)."""
    return {c.key: run_cell(row, c.key) for c in RUN_COLUMNS}


def cell_widths(texts: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """The widest cell of each column, its header included, in terminal cells."""
    widths = {c.key: cell_len(c.header) for c in RUN_COLUMNS}
    for cells in texts:
        for key, text in cells.items():
            if len(text) > widths[key] or not text.isascii():
                widths[key] = max(widths[key], cell_len(text))
    return widths


def fit_run_columns(rows: list[RunRow], width: int, gap: int = 2, cap: int = 28, widths: Mapping[str, int] | None = None) -> list[RunColumn]:
    """The columns that fit `width` cells, most wanted first, in table order. Each column
    takes its widest cell (header included, at most `cap`; `widths` when given, from
    cell_widths) plus `gap`; the run column is always kept whole, so that ids stay
    distinguishable."""
    widths = cell_widths(run_texts(r) for r in rows) if widths is None else widths
    sizes = {c.key: min(cap, widths[c.key]) + gap for c in RUN_COLUMNS}
    sizes["run"] = widths["run"] + gap
    chosen: set[str] = set()
    used = 0
    for column in sorted(RUN_COLUMNS, key=lambda c: c.rank):
        if column.rank > 0 and used + sizes[column.key] > width:
            break  # a less wanted column never takes the place of a more wanted one
        chosen.add(column.key)
        used += sizes[column.key]
    return [c for c in RUN_COLUMNS if c.key in chosen]


def _fitted(text: str, width: int, right: bool) -> str:
    """text in exactly `width` terminal cells: padded, or cut with an ellipsis."""
    size = cell_len(text)
    if size > width:
        return set_cell_size(text, width - 1) + "…"
    pad = " " * (width - size)
    return pad + text if right else text + pad


def run_table(rows: list[RunRow], width: int, title: str, cap: int = 28) -> Text:
    """The runs table of `mnist-tui runs` as one Text: the title, the header (bold) over a
    rule, then a line a run with the columns that fit `width` (each at most `cap` cells
    wide but the run id's, whole). Plain lines: a rich Table takes seconds for 2,000 runs."""
    texts = [run_texts(r) for r in rows]
    widths = cell_widths(texts)
    columns = fit_run_columns(rows, width, cap=cap, widths=widths)
    sizes = [widths[c.key] if c.key == "run" else min(cap, widths[c.key]) for c in columns]

    def line(cells: Mapping[str, str]) -> str:
        return " " + "  ".join(_fitted(cells[c.key], size, c.right) for c, size in zip(columns, sizes)).rstrip()

    table = Text(f"{title}\n\n")
    table.append(line(RUN_HEADERS), style="bold")
    table.append("\n " + "─" * (sum(sizes) + 2 * (len(sizes) - 1)))
    table.append("".join("\n" + line(cells) for cells in texts))
    return table


def run_settings(record) -> dict[str, object]:
    """A run's settings from its config.json, flat: model, the recipe's fields, seed, device,
    precision, training images (a damaged or foreign file gives what it can)."""
    config = record.config.get("config") if isinstance(record.config, dict) else None
    config = config if isinstance(config, dict) else {}
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    flat = {"model": record.model, **recipe}
    for key in ("seed", "device", "precision", "limit", "test_limit", "holdout", "processes", "target"):
        if key in config:
            flat[key] = config[key]
    return {k: v for k, v in flat.items() if isinstance(v, (str, int, float, type(None)))}


# Settings by how much they tell runs apart, with the words the Train form uses (short).
# A setting named "" shows its value alone ('fp32', 'adamw').
SETTING_NAMES = {
    "limit": "images", "epochs": "epochs", "lr": "lr", "batch_size": "batch", "optimizer": "", "scheduler": "",
    "seed": "seed", "precision": "", "dropout": "dropout", "rotate": "rotate", "translate": "shift", "scale": "zoom",
    "weight_decay": "decay", "momentum": "momentum", "step_size": "step", "test_batch_size": "test batch",
    "device": "", "holdout": "held out", "test_limit": "test images",
    "processes": "processes", "target": "target",
}  # fmt: skip


def setting_text(value: object) -> str:
    """'2,000', '0.001', 'adamw', 'all' (no limit)."""
    if value is None:
        return "all"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def differing_settings(records: list) -> dict[str, list[object]]:
    """The settings whose values are not the same in every run (most telling first, by their
    short names), with each run's value."""
    settings = [run_settings(r) for r in records]
    keys = dict.fromkeys(k for s in settings for k in s if k != "model")
    ordered = [k for k in SETTING_NAMES if k in keys] + [k for k in keys if k not in SETTING_NAMES]
    return {SETTING_NAMES.get(k) or k: [s.get(k) for s in settings] for k in ordered if len({repr(s.get(k)) for s in settings}) > 1}


VALUE_ALONE = {key for key, name in SETTING_NAMES.items() if not name}
NONE_MEANS = {"images": "all", "test images": "all", "target": "none"}  # a None elsewhere: not recorded, the default


def _label_part(name: str, value: object) -> str:
    """'lr=0.02', 'images=all', 'adamw' (a setting shown by its value alone), '' (no value of
    such a setting to show)."""
    alone = name in VALUE_ALONE  # 'adamw', 'fp32': their value says which setting it is
    if value is None:
        return "" if alone else f"{name}={NONE_MEANS.get(name, 'default')}"
    return setting_text(value) if alone else f"{name}={setting_text(value)}"


def short_labels(records: list) -> list[str]:
    """Legend labels: the version, then every setting that differs between the runs (lr first,
    then the most telling), and the short id when that is not enough ('v2 images=2,000',
    'v4 lr=0.01 seed=2', 'v2 lr=0.1 images=all epochs=3 adamw')."""
    differ = differing_settings(records)
    names = sorted(differ, key=lambda name: name != "lr")  # stable: the rest keep their order
    labels = []
    for i, r in enumerate(records):
        parts = [r.model] + [_label_part(name, differ[name][i]) for name in names]
        labels.append(" ".join(p for p in parts if p))
    if len(set(labels)) < len(labels):
        labels = [f"{label} {r.run_id[-6:]}" for label, r in zip(labels, records)]
    return labels


# The epoch table of both front ends: headers, then one row of cells per finished epoch.
EPOCH_COLUMNS = ("epoch", "train loss", "train acc", "test loss", "test acc", "lr", "seconds", "img/s")


def pct(value: float | None) -> str:
    """'99.41%', or '-' for no value."""
    return "-" if value is None else f"{value:.2f}%"


def epoch_cells(e: EpochFinished, best: float | None, lowest: float | None = None) -> list[Text]:
    """One row of the epoch table; the best test accuracy so far is starred in bold green, the
    lowest test loss starred too."""
    starred = e.test_acc == best
    cells = [
        f"{e.epoch}/{e.epochs}",
        f"{e.train_loss:.4f}",
        pct(e.train_acc),
        f"{e.test_loss:.4f}" + (" ★" if e.test_loss == lowest else "  "),
        pct(e.test_acc) + (" ★" if starred else "  "),
        f"{e.lr:.2e}",
        f"{e.seconds:.1f}",
        f"{e.images_per_s:,.0f}",
    ]
    return [Text(c, justify="right", style="bold green" if (starred and i == 4) or (i == 3 and e.test_loss == lowest) else "") for i, c in enumerate(cells)]


def epoch_marks(epochs: list[EpochFinished]) -> tuple[float | None, float | None]:
    """The best test accuracy and the lowest test loss, which the epoch table stars."""
    return max((e.test_acc for e in epochs), default=None), min((e.test_loss for e in epochs), default=None)


def started_facts(e: RunStarted) -> str:
    """What a run is and where it trains: '7,432 params · CPU, 2 threads · bf16 · 60,000 train / 10,000 test images'
    (a distributed run: 'CPU, 1 thread × 2 processes (gloo)')."""
    return Parts.SEPARATOR.join(_fact_parts(e))


def _fact_parts(e: RunStarted) -> list[str]:
    images = "held-out training images, reported as test" if e.evaluated_on == "holdout" else "test images"
    world = f" × {e.world_size} processes ({e.backend})" if e.world_size > 1 else ""
    parts = [
        f"{e.params:,} params",
        f"{e.device_name}{world}",
        e.precision,
        "CUDA graph" if e.cuda_graph else "",
        f"{e.train_size:,} train / {e.test_size:,} {images}",
    ]
    return [p for p in parts if p]  # a run folder may not say its precision


def started_line(e: RunStarted) -> Parts:
    """The app's line for a run: its model in bold, its facts, its id; wrapped between parts."""
    return Parts([Text(e.config.model, style="bold"), *map(Text, _fact_parts(e)), Text(e.run_id)])


@rich.repr.auto
class Parts:
    """Parts shown as 'a · b · c', broken into lines between parts only: no line ends or
    begins with a separator and no part is split across lines (one wider than a whole line
    ends in '…'), so that a widget of a few lines drops whole parts, never half of one."""

    SEPARATOR = " · "

    def __init__(self, parts: list[Text]) -> None:
        self.parts = [p for p in parts if p.plain]

    @property
    def plain(self) -> str:
        return self.SEPARATOR.join(p.plain for p in self.parts)

    def __rich_repr__(self) -> rich.repr.Result:
        yield self.plain

    def __bool__(self) -> bool:
        return bool(self.parts)

    def lines(self, width: int) -> list[Text]:
        """The parts laid out in lines of at most `width` cells."""
        lines: list[Text] = []
        for part in self.parts:
            if lines and lines[-1].cell_len + len(self.SEPARATOR) + part.cell_len <= width:
                lines[-1].append(self.SEPARATOR).append_text(part)
            else:
                lines.append(part.copy())
        for line in lines:
            line.truncate(max(width, 1), overflow="ellipsis")
        return lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((p.cell_len for p in self.parts), default=0)
        return Measurement(min(widest, options.max_width), min(Text(self.plain).cell_len, options.max_width))


# The columns of a layer breakdown (the Layers screen and `mnist-tui layers VERSION`), narrow
# enough for the screen at 80 columns beside its list of versions: the output without the
# batch dimension, the share as a whole percent and a bar, multiply-accumulates (MACs) short.
LAYER_HEADERS = ("layer", "output", "params", "share", "MACs")
LAYER_RIGHT = (False, True, True, False, True)  # numbers and shapes line up on the right


def layer_cells(row: LayerRow) -> list[Text]:
    """One layer's cells: 'Conv2d-4', '16×24×24', '1,152', '16% █' (a bar of 8 cells is the
    whole model), '664k' (multiply-adds per image)."""
    dims = row.output_shape[1:] if len(row.output_shape) > 1 else row.output_shape
    share = "0%" if row.share == 0 else "<1%" if row.share < 0.005 else f"{row.share:.0%}"
    blocks = round(row.share * 8)
    bar = Text(f"{share:>3}").append(" " + "█" * blocks if blocks else "", style="cyan")
    cells = [Text(row.name), Text("×".join(map(str, dims))), Text(f"{row.params:,}"), bar, Text(short_count(row.mult_adds))]
    for cell, right in zip(cells, LAYER_RIGHT):
        cell.justify = "right" if right else "left"
    return cells


def short_count(n: int) -> str:
    """'650', '25.7k', '664k', '1.18M': three significant figures past a thousand."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)
