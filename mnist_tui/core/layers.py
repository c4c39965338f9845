"""Layer-by-layer breakdown of a version (a torchinfo forward trace) and its torchsummary text.

One derivation for every version: the leaf modules in the order a forward pass calls them,
each with its output shape. The networks make every ReLU, pooling and dropout a module of its
own (core/nets.py), so the trace shows them all, and the classic table is written from the same
rows, so the CLI, the screen and the copied text can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnist_tui.core.versions import get_version

INPUT_SHAPE = (1, 28, 28)  # one grey MNIST image


@dataclass(frozen=True)
class LayerRow:
    name: str  # torchsummary-style: class name and its position among the rows
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
    from torch import nn

    net = get_version(model_name).build()
    # The evaluation pass: the layers in the order the seed wrote them (SeedNet.quicker in core/nets.py).
    stats = torchinfo.summary(net, input_size=(1, *INPUT_SHAPE), verbose=0, device="cpu", mode="eval")
    total = stats.total_params
    # nn.Identity only holds the place of a dropout of p = 0 (nets.dropout_or_nothing): the
    # network does nothing there, so neither does the table.
    leaves = [info for info in stats.summary_list if info.is_leaf_layer and not isinstance(info.module, nn.Identity)]
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


def classic_summary(model_name: str) -> str:
    """torchsummary's table of a version, framed as the seed README shows it."""
    return classic_table(breakdown(model_name))


def classic_table(b: Breakdown) -> str:
    """A breakdown's rows as torchsummary prints its table (its column widths, "{:>20}  {:>25}
    {:>15}"), between the rules the seed README frames it with.

    Written from the breakdown rather than by torchsummary itself: torchsummary lists every
    module it sees, the placeholders of unused dropout included, and prints to the process's
    stdout, which the Layers screen's worker threads would have to take turns at.
    """
    rule = "=" * 64
    lines = [rule, f"{'Layer (type)':>20}  {'Output Shape':>25} {'Param #':>15}", rule]
    lines += [f"{row.name:>20}  {row.shape_text:>25} {row.params:>15,}" for row in b.rows]
    lines += [
        rule,
        f"Total params: {b.total_params:,}",
        f"Trainable params: {b.trainable_params:,}",
        f"Non-trainable params: {b.total_params - b.trainable_params:,}",
        rule,
    ]
    return "\n".join(lines) + "\n"


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
