"""Layer-by-layer parameter breakdown (from torchinfo) and the classic torchsummary text."""

from __future__ import annotations

import contextlib
import io
import threading
from dataclasses import dataclass

from mnist_tui.core.versions import get_version

INPUT_SHAPE = (1, 28, 28)  # one grey MNIST image


@dataclass(frozen=True)
class LayerRow:
    name: str  # torchsummary-style: class name and its position in the forward pass
    kind: str
    output_shape: tuple[int, ...]  # batch dimension shown as -1
    params: int
    share: float  # fraction of the model's parameters, 0..1
    mult_adds: int  # per image

    @property
    def shape_text(self) -> str:
        return "[" + ", ".join(str(d) for d in self.output_shape) + "]"


@dataclass(frozen=True)
class Breakdown:
    model: str
    rows: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    param_mb: float  # size of the parameters in memory
    mult_adds: int  # per image


def breakdown(model_name: str) -> Breakdown:
    """The structured breakdown of a registered version, read from torchinfo's statistics."""
    import torchinfo

    net = get_version(model_name).build()
    stats = torchinfo.summary(net, input_size=(1, *INPUT_SHAPE), verbose=0, device="cpu")
    total = stats.total_params
    leaves = [info for info in stats.summary_list if info.is_leaf_layer]
    rows = tuple(
        LayerRow(
            name=f"{info.class_name}-{i}",
            kind=info.class_name,
            output_shape=(-1, *info.output_size[1:]),
            params=info.num_params,
            share=info.num_params / total if total else 0.0,
            mult_adds=info.macs,
        )
        for i, info in enumerate(leaves, start=1)
    )
    return Breakdown(
        model=model_name,
        rows=rows,
        total_params=total,
        trainable_params=stats.trainable_params,
        param_mb=stats.to_megabytes(stats.total_param_bytes),
        mult_adds=stats.total_mult_adds,
    )


_PRINT_LOCK = threading.Lock()


def classic_summary(model_name: str) -> str:
    """torchsummary's own table for a version, framed as the seed README shows it."""
    from torchsummary import summary

    net = get_version(model_name).build()
    out = io.StringIO()
    # torchsummary prints; redirect_stdout swaps the process-wide sys.stdout, so two threads
    # doing this at once (a user scrolling through versions) would restore each other's
    # streams and spill a table onto the terminal. One at a time.
    with _PRINT_LOCK, contextlib.redirect_stdout(out):
        summary(net, INPUT_SHAPE, device="cpu")
    lines = out.getvalue().splitlines()
    # Keep the table and its totals; torchsummary's memory estimates follow them.
    end = next(i for i, line in enumerate(lines) if line.startswith("Non-trainable params"))
    rule = "=" * 64
    return "\n".join([rule, *lines[1 : end + 1], rule]) + "\n"


@dataclass(frozen=True)
class VersionFacts:
    """One line of the side-by-side comparison of versions."""

    name: str
    title: str
    params: int
    mult_adds: int
    param_mb: float
    seed_accuracy: float | None
    measured_accuracy: float | None = None  # mean of our seeds, see versions.ModelVersion.measured


def compare_versions() -> list[VersionFacts]:
    from mnist_tui.core.versions import VERSIONS

    facts = []
    for name, version in VERSIONS.items():
        b = breakdown(name)
        facts.append(VersionFacts(name, version.title, b.total_params, b.mult_adds, b.param_mb, version.seed_accuracy, version.measured_mean))
    return facts
