"""A run as it trains: its start line, use of the machine, epoch rows and how it ended."""

from __future__ import annotations

import rich.repr
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from mnist_tui.core.events import BatchProgress, EpochFinished, RunFinished, RunStarted


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
        f"{e.precision} ({e.precision_reason})" if e.precision and e.precision_reason else e.precision,
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
