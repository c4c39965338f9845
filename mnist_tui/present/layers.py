"""A version's layer breakdown as cells (the Layers screen and `mnist-tui layers VERSION`)."""

from __future__ import annotations

from rich.text import Text

from mnist_tui.core.layers import LayerRow

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
