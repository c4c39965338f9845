"""The model registry: stable names, their default recipes and reported results, no torch."""

from __future__ import annotations

from dataclasses import dataclass

from mnist_tui.core.config import Recipe, TrainConfig


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

    def build(self, dropout: float | None = None):
        """Instantiate the network (imports torch)."""
        from mnist_tui.core import nets

        cls = getattr(nets, self.net)
        return cls(dropout=self.recipe.dropout if dropout is None else dropout)

    def config(self, **overrides) -> TrainConfig:
        """A TrainConfig holding this version's recipe, with any field overridden."""
        return TrainConfig(model=self.name, recipe=self.recipe).replace(**overrides)


VERSIONS: dict[str, ModelVersion] = {
    v.name: v
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
    )
}


class UnknownModel(KeyError):
    def __str__(self) -> str:
        return f"unknown model {self.args[0]!r} (choose from {', '.join(VERSIONS)})"


def get_version(name: str) -> ModelVersion:
    try:
        return VERSIONS[name]
    except KeyError:
        raise UnknownModel(name) from None
