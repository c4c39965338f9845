"""The Train screen's version picker: the quick first run, then each version, one line each,
and the title line that tells what the picked entry is and how long it takes here."""

from __future__ import annotations

from typing import Literal

from textual.widgets import OptionList
from textual.widgets.option_list import Option

from mnist_tui.core.config import TrainConfig
from mnist_tui.core.hardware import auto_precision
from mnist_tui.core.versions import PRESETS, VERSIONS
from mnist_tui.present.times import duration

PICKS = [*PRESETS, *VERSIONS]  # the picker's entries: the quick first run, then each version


def version_label(name: str) -> str:
    """One line of the picker: name, parameters, measured accuracy, expected time here."""
    preset = PRESETS.get(name)
    v = VERSIONS[preset.model if preset else name]
    pick = preset or v
    if preset is not None:
        acc: float | None = sum(preset.measured) / len(preset.measured) if preset.measured else None
    else:
        acc = v.measured_mean if v.measured_mean is not None else v.seed_accuracy
    params = f"{v.params / 1000:.0f}k" if v.params >= 100_000 else f"{v.params / 1000:.1f}k"
    took = pick.expected_seconds(pick.recipe.epochs, auto_precision("auto", v.name))
    return f"{name:<5} {params:>5} {'-' if acc is None else f'{acc:.2f}%':>6} {'?' if took is None else duration(took, 'compact'):>4}"


def version_title(name: str, config: TrainConfig | None) -> str:
    """The picked entry's title line (markup): its name and title, what it measured, and how
    long the form's recipe (`config`, None while the form is invalid) takes here."""
    preset = PRESETS.get(name)
    v = VERSIONS[preset.model if preset else name]
    facts = []
    if preset is not None:
        title = f"[b]{name}[/b]: {preset.title}"
        if preset.measured:
            facts.append(f"measured {sum(preset.measured) / len(preset.measured):.2f}% (mean of {len(preset.measured)} seeds, fp32)")
    else:
        title = f"[b]{v.name}[/b]: {v.title}"
        if v.measured:
            facts.append(f"measured {v.measured_mean:.2f}% (mean of {len(v.measured)} seeds)")
        if v.seed_accuracy is not None:
            facts.append(f"seed reported {v.seed_accuracy:.2f}%")
    if config is not None:
        mode = auto_precision(config.precision, config.model)
        images = min(config.limit or 60_000, 60_000 - config.holdout)
        took = (preset or v).expected_seconds(config.recipe.epochs, mode, images, config.test_limit or 10_000)
        facts.append(f"about {duration(took)} on a 2-core CPU ({mode})" if took else f"time not measured in {mode}")
    return title + "".join(f" · {f}" for f in facts)


class VersionList(OptionList):
    """The version picker. Page keys move by the lines laid out; while the list has not been
    laid out at its current size (the recipe panel hidden on a narrow terminal, a resize
    under way) Textual's OptionList raised KeyError and ended the app (found by the slow
    walk, seed 18): then they go to the first or last entry instead."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(*[Option(version_label(n), id=n) for n in PICKS], id=id)

    def show(self, name: str) -> None:
        """Highlight an entry without announcing it (OptionHighlighted is for the user's
        moves: whoever calls this fills the form itself)."""
        with self.prevent(OptionList.OptionHighlighted):
            self.highlighted = self.get_option_index(name)

    def _move_page(self, direction: Literal[-1, 1]) -> None:
        if (self.highlighted or 0) not in self._index_to_line or not self._lines:
            self.highlighted = 0 if direction < 0 else len(self._options) - 1
            return
        super()._move_page(direction)
