"""Batch augmentation on the training device: one random affine transform per image.

Each image gets its own rotation, translation and zoom, drawn from a seeded CPU generator
(so a run's augmentation is the same on every device and resumes exactly), turned into a
2x3 matrix per image and applied to the whole batch at once with `affine_grid` and
`grid_sample`. No per-sample Python, no PIL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Affine:
    """Ranges of the per-image transform: ± degrees, ± fraction of the size, 1 ± zoom."""

    rotate: float = 0.0
    translate: float = 0.0
    scale: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.rotate or self.translate or self.scale)

    def matrices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 2, 3) matrices in affine_grid's normalised coordinates, on the CPU."""
        u = torch.rand(n, 4, generator=generator) * 2 - 1  # uniform in [-1, 1)
        angle = u[:, 0] * math.radians(self.rotate)
        zoom = 1 + u[:, 1] * self.scale
        # affine_grid maps output to input coordinates, so dividing by the zoom enlarges the digit.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        # Normalised coordinates span 2 units per image width: a shift of t of the size is 2t.
        shift = u[:, 2:] * (2 * self.translate)
        return torch.stack(
            (torch.stack((cos, -sin, shift[:, 0]), 1), torch.stack((sin, cos, shift[:, 1]), 1)),
            1,
        )

    def __call__(self, images: torch.Tensor, generator: torch.Generator, background: float, share: tuple[int, slice] | None = None) -> torch.Tensor:
        """Transform a batch (N, 1, H, W); pixels pulled in from outside take `background`.

        `share` (global batch size, these rows): the batch is one rank's rows of a global
        batch, whose transforms are all drawn (as one process would draw them) and sliced."""
        if not self.active:
            return images
        total, rows = share if share is not None else (len(images), slice(0, len(images)))
        theta = self.matrices(total, generator)[rows].to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        # grid_sample pads with zeros; shift so that zero is the (normalised) black background.
        moved = F.grid_sample(images - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return moved + background
