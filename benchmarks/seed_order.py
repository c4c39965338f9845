"""The seed notebooks' layer order, for the benchmarks' seed pipeline (and its test)."""

from __future__ import annotations

from torch import nn

from mnist_tui.core.nets import SeedNet


def in_seed_order(net: nn.Module) -> nn.Module:
    """`net`, made to compute every pass in the order the seed's code did: what the
    benchmarks time as the seed's pipeline. Versions other than v1 and v2 have one order."""
    for module in net.modules():
        if isinstance(module, SeedNet):
            module.seed_order = True
    return net
