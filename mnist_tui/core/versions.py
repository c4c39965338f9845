"""The model registry: stable names, their default recipes and reported results, no torch.

The measured figures come from measured.json (core/measured.py), which the benchmarks write.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mnist_tui.core import measured as measured_figures
from mnist_tui.core.config import Recipe, TrainConfig

if TYPE_CHECKING:  # for annotations only: importing this module stays free of torch
    from torch import nn


@dataclass(frozen=True)
class ModelVersion:
    """One registered network: what it is, how it trains by default, how well it did."""

    name: str
    title: str
    net: str  # class name in mnist_tui.core.nets
    params: int  # trainable parameters; a test checks it against the built network
    recipe: Recipe
    description: str
    seed_accuracy: float | None = None  # the seed project's reported final test accuracy, %
    # Our final-epoch test accuracies, one per seed, with this recipe in the default numeric
    # mode (measured.json's "accuracy", written by benchmarks/accuracy.py).
    measured: tuple[float, ...] = ()
    # Wall seconds per epoch of this recipe on all 60,000 images, evaluation included, by
    # numeric mode, on the project's 2-core CPU (measured.json's "seconds"; each entry's
    # "note" says which benchmark measured it, and when).
    epoch_seconds: tuple[tuple[str, float], ...] = ()

    @property
    def measured_mean(self) -> float | None:
        return sum(self.measured) / len(self.measured) if self.measured else None

    def expected_seconds(self, epochs: int, precision: str, images: int = 60_000, test_images: int = 10_000) -> float | None:
        """About how long a run of `epochs` takes on a 2-core CPU in `precision` (fp32 or
        bf16), scaled to `images` training and `test_images` test images; None where it was
        not measured."""
        per_epoch = dict(self.epoch_seconds).get(precision)
        return None if per_epoch is None else expected_run_seconds(per_epoch * self.recipe.epochs, self.recipe.epochs, epochs, images, test_images)

    def build(self, dropout: float | None = None) -> nn.Module:
        """Instantiate the network (imports torch)."""
        from mnist_tui.core import nets

        cls: type[nn.Module] = getattr(nets, self.net)
        return cls(dropout=self.recipe.dropout if dropout is None else dropout)

    def config(self, **overrides: object) -> TrainConfig:
        """A TrainConfig holding this version's recipe, with any field overridden."""
        return TrainConfig(model=self.name, recipe=self.recipe).replace(**overrides)


# A test pass (10,000 images, forward only) costs about what training on this many images
# does; and a trainer takes this long to start (import torch, read the data, build the
# model). Neither shrinks with the number of training images (the test pass shrinks with the
# test images evaluated), so that a run on a few thousand images is not promised in a second.
EVAL_AS_TRAINING_IMAGES = 3_300
STARTUP_SECONDS = 5.0


def expected_run_seconds(wall: float, measured_epochs: int, epochs: int, images: int, test_images: int = 10_000) -> float:
    """A run's expected seconds from a measured one (`wall` seconds, process start to exit, for
    `measured_epochs` epochs on all 60,000 images, test passes of all 10,000 included), for
    `epochs` epochs of `images` training and `test_images` test images: the start-up once,
    the rest scaled per epoch."""
    per_epoch = max(wall - STARTUP_SECONDS, 0.0) / measured_epochs
    evaluation = EVAL_AS_TRAINING_IMAGES * min(test_images, 10_000) / 10_000
    share = (images + evaluation) / (60_000 + EVAL_AS_TRAINING_IMAGES)
    return STARTUP_SECONDS + per_epoch * epochs * share


# v3 and v4's recipe, chosen on a held-out tenth of the training set
# (benchmarks/results/tuning.md): one-cycle SGD, batches of 64, per-image augmentation.
COMPACT_RECIPE = Recipe(
    epochs=15,
    batch_size=64,
    test_batch_size=2000,
    optimizer="sgd",
    lr=0.05,
    momentum=0.9,
    weight_decay=1e-4,
    scheduler="onecycle",
    dropout=0.05,
    rotate=8.0,
    translate=0.08,
    scale=0.08,
)

_MEASURED = measured_figures.read()


def _with_measured(v: ModelVersion) -> ModelVersion:
    accuracy, seconds = measured_figures.figures("versions", v.name, _MEASURED)
    return dataclasses.replace(v, measured=accuracy, epoch_seconds=seconds)


VERSIONS: dict[str, ModelVersion] = {
    v.name: _with_measured(v)
    for v in (
        ModelVersion(
            name="v1",
            title="Seed baseline",
            net="SeedV1",
            params=420_614,
            recipe=Recipe(epochs=20, batch_size=128, test_batch_size=2000, optimizer="adam", lr=1e-3),
            description=(
                "The seed project's first network: six 3x3 convolutions widening from 8 to 256 "
                "channels, batch norm on the first five, two 2x2 max-pools, global average "
                "pooling and a 256-100-10 classifier. Most of its weight sits in the last "
                "convolution (295k of 421k parameters). Plain Adam at 1e-3, no schedule, no "
                "regularisation."
            ),
            seed_accuracy=98.47,
        ),
        ModelVersion(
            name="v2",
            title="Seed optimised",
            net="SeedV2",
            params=99_746,
            recipe=Recipe(
                epochs=20,
                batch_size=128,
                test_batch_size=2000,
                optimizer="adamw",
                lr=1e-3,
                weight_decay=1e-4,
                scheduler="cosine",
                dropout=0.1,
            ),
            description=(
                "The seed project's second network: six 3x3 convolutions (12-24-48-48-64-64 "
                "channels) each with batch norm and ReLU, max-pooling after the second and "
                "fourth, then global average pooling, dropout 0.1 and a single 64-10 linear "
                "layer. Trained with AdamW (weight decay 1e-4) and a cosine learning-rate "
                "schedule over the whole run."
            ),
            seed_accuracy=99.55,
        ),
        ModelVersion(
            name="v3",
            title="Compact <20k",
            net="CompactV3",
            params=18_252,
            recipe=COMPACT_RECIPE,
            description=(
                "Our answer to the seed's own target of 99.4% under 20k parameters. Unpadded 3x3 "
                "convolutions (12 and 24 channels) at full resolution, one 2x2 max-pool, a 1x1 "
                "convolution squeezing back to 12 channels, three more unpadded 3x3 convolutions "
                "(24-24-32) down to a 6x6 map, global average pooling and a 1x1 classifier: no "
                "dense layer at all. Batch norm replaces every bias. Trained with SGD and a "
                "one-cycle schedule, light dropout, and per-image random rotation (±8°), shift "
                "(±8%) and zoom (±8%) done on whole batches."
            ),
        ),
        ModelVersion(
            name="v4",
            title="Compact <8k",
            net="CompactV4",
            params=7_432,
            recipe=dataclasses.replace(COMPACT_RECIPE, dropout=0.0),
            description=(
                "v3's layout at about 40% of its size: 8 and 16 channels before the pool, a 1x1 "
                "squeeze to 8, then 16-16-16 down to 6x6, global average pooling and a 1x1 "
                "classifier. At this size the network underfits rather than overfits, so it "
                "trains without dropout and leans on augmentation (±8° rotation, ±8% shift and "
                "zoom, per image), batches of 64 (twice the updates of 128 in the same epochs; "
                "on a held-out 10,000 training images this lifted it from 99.37% to 99.53%) and "
                "a one-cycle SGD schedule."
            ),
        ),
        ModelVersion(
            name="v5",
            title="Separable <5k",
            net="SeparableV5",
            params=4_900,
            recipe=dataclasses.replace(COMPACT_RECIPE, batch_size=32, dropout=0.0, rotate=5.0, translate=0.05, scale=0.05),
            description=(
                "v4's kind of start (8 and 12 channels at full resolution, a 2x2 max-pool), then three "
                "depthwise-separable 3x3 convolutions (24-32-32 channels) down to 6x6: a 3x3 filter "
                "per channel, then a 1x1 convolution mixing them, a sixth to a seventh of a full "
                "convolution's weights, so the late layers are twice v4's width in two thirds of "
                "its parameters. A 1x1 convolution to 24, global average pooling, a 1x1 classifier. Trained "
                "like v4 but in batches of 32 and with lighter augmentation (±5° rotation, ±5% "
                "shift and zoom): at this size more, noisier updates paid on held-out images."
            ),
        ),
    )
}


@dataclass(frozen=True)
class Preset:
    """A named (version, recipe) pair offered before the versions' own recipes."""

    name: str
    model: str
    recipe: Recipe
    title: str
    measured: tuple[float, ...] = ()  # final test accuracy per seed, fp32 (measured.json, benchmarks/quick.py)
    # Mean wall seconds per run, process start to exit, by numeric mode, on the 2-core CPU (measured.json).
    run_seconds: tuple[tuple[str, float], ...] = ()

    def config(self, **overrides: object) -> TrainConfig:
        return TrainConfig(model=self.model, recipe=self.recipe).replace(**overrides)

    def expected_seconds(self, epochs: int, precision: str, images: int = 60_000, test_images: int = 10_000) -> float | None:
        """As ModelVersion.expected_seconds, from this preset's own measured runs."""
        per_run = dict(self.run_seconds).get(precision)
        return None if per_run is None else expected_run_seconds(per_run, self.recipe.epochs, epochs, images, test_images)


# The first run a new user makes: v4 for three one-cycle epochs on all 60,000 images, sized
# to finish in well under a minute on a 2-core CPU in fp32. Chosen among six candidates on
# the held-out last 10,000 training images (benchmarks/results/quick.md): batches of 128 at a
# peak lr of 0.1 were the fastest to 99% there; augmentation added 0.05 points for 25% more time.
def _preset_with_measured(p: Preset) -> Preset:
    accuracy, seconds = measured_figures.figures("presets", p.name, _MEASURED)
    return dataclasses.replace(p, measured=accuracy, run_seconds=seconds)


QUICK = _preset_with_measured(
    Preset(
        name="quick",
        model="v4",
        recipe=dataclasses.replace(COMPACT_RECIPE, epochs=3, batch_size=128, lr=0.1, dropout=0.0, rotate=0.0, translate=0.0, scale=0.0),
        title="v4, 3 one-cycle epochs: the quick first run",
    )
)
PRESETS: dict[str, Preset] = {QUICK.name: QUICK}


class UnknownModel(KeyError):
    def __str__(self) -> str:
        return f"unknown model {self.args[0]!r} (choose from {', '.join(VERSIONS)})"


def get_version(name: str) -> ModelVersion:
    try:
        return VERSIONS[name]
    except KeyError:
        raise UnknownModel(name) from None
