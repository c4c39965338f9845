"""Any drawing or picture of a digit turned into what a model trained on MNIST expects, the way
MNIST itself was made: the ink's bounding box scaled (keeping its aspect) to fit 20x20, then
placed in a 28x28 field so that its centre of mass is the field's centre.

The draw pad and `mnist-tui predict IMAGE` both use `to_mnist`; the result is a uint8 image
like the test set's, normalised by `data.normalise` as training normalised its images.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

SIZE, BOX = 28, 20
INK_FLOOR = 0.1  # of the brightest ink: fainter pixels do not count towards the bounding box


class ImageError(ValueError):
    """An image file that cannot be read as a picture of a digit."""


def to_mnist(ink: torch.Tensor) -> torch.Tensor:
    """(H, W) ink in [0, 1] (1: full ink, 0: background) to a uint8 (28, 28) MNIST digit; a
    blank drawing gives a blank image."""
    ink = ink.float().clamp(0, 1)
    if ink.dim() != 2 or ink.numel() == 0 or float(ink.max()) <= 0:
        return torch.zeros(SIZE, SIZE, dtype=torch.uint8)
    mask = ink > INK_FLOOR * float(ink.max())
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    crop = ink[int(rows[0]) : int(rows[-1]) + 1, int(cols[0]) : int(cols[-1]) + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = F.interpolate(crop[None, None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0, 0].clamp(0, 1)
    field = torch.zeros(SIZE, SIZE)
    top, left = (SIZE - nh) // 2, (SIZE - nw) // 2
    field[top : top + nh, left : left + nw] = small
    return (shift_to_centre(field) * 255).round().to(torch.uint8)


def shift_to_centre(field: torch.Tensor) -> torch.Tensor:
    """Move the image by whole pixels so that its centre of mass is the centre of the field
    (as far as the ink stays inside it)."""
    total = field.sum()
    if total <= 0:
        return field
    # MNIST's digits have their centre of mass on pixel (14, 14): 13.99 and 14.00 on average
    # over the test set, in pixel indices.
    coords = torch.arange(SIZE, dtype=torch.float32)
    cy = float((field.sum(1) * coords).sum() / total)
    cx = float((field.sum(0) * coords).sum() / total)
    rows, cols = field.any(1).nonzero().flatten(), field.any(0).nonzero().flatten()
    dy = max(-int(rows[0]), min(SIZE - 1 - int(rows[-1]), round(SIZE // 2 - cy)))
    dx = max(-int(cols[0]), min(SIZE - 1 - int(cols[-1]), round(SIZE // 2 - cx)))
    return torch.roll(field, shifts=(dy, dx), dims=(0, 1))


def ink_of_picture(gray: torch.Tensor) -> torch.Tensor:
    """A grayscale picture in [0, 1] as ink: dark digits on a light background (paper) are
    inverted, light digits on a dark one (MNIST's own) kept; the border tells which. The
    background's level and grain (from the border: its median, and three times its spread)
    are taken away, so that grey or noisy paper is no ink."""
    border = torch.cat([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    ink = 1 - gray if float(border.median()) > 0.5 else gray
    edge = torch.cat([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    level = float(edge.median())
    grain = 3 * 1.4826 * float((edge - level).abs().median())  # the median absolute deviation, as a std
    floor = min(level + grain, float(ink.max()) - 1e-3)
    return ((ink - floor) / max(float(ink.max()) - floor, 1e-6)).clamp(0, 1)


def read_picture(path: Path) -> torch.Tensor:
    """A PNG or PGM (any size, any background) as ink in [0, 1]; ImageError if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            picture: Image.Image = opened
            if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
                # A drawing exported with a transparent background: lay it on white paper.
                paper = Image.new("RGBA", picture.size, (255, 255, 255, 255))
                picture = Image.alpha_composite(paper, picture.convert("RGBA"))
            gray = picture.convert("L")
            data = torch.frombuffer(bytearray(gray.tobytes()), dtype=torch.uint8).view(gray.height, gray.width)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ImageError(f"cannot read {path} as an image ({exc})") from None
    if data.numel() == 0:
        raise ImageError(f"{path} is empty")
    return ink_of_picture(data.float() / 255)


# The pad's brush: a soft round pen, strongest at its centre (a Gaussian of this many pixels).
BRUSH_SIGMA = 0.9
BRUSH_REACH = 2  # pixels either side of the centre it touches


def paint(ink: list[list[float]], x: float, y: float, erase: bool = False) -> None:
    """Touch the 28x28 pad at pixel coordinates (x, y) (fractional: the brush's centre) with
    the soft brush, adding ink (or taking it away), in place."""
    import math

    for r in range(max(0, int(y) - BRUSH_REACH), min(SIZE, int(y) + BRUSH_REACH + 1)):
        for c in range(max(0, int(x) - BRUSH_REACH), min(SIZE, int(x) + BRUSH_REACH + 1)):
            d2 = (c + 0.5 - x) ** 2 + (r + 0.5 - y) ** 2
            amount = math.exp(-d2 / (2 * BRUSH_SIGMA**2))
            ink[r][c] = max(0.0, ink[r][c] - amount) if erase else min(1.0, ink[r][c] + amount)


def stroke(ink: list[list[float]], start: tuple[float, float], end: tuple[float, float], erase: bool = False) -> None:
    """Paint along the segment from start to end, a touch every half pixel (no gaps)."""
    (x0, y0), (x1, y1) = start, end
    steps = max(1, int(max(abs(x1 - x0), abs(y1 - y0)) * 2))
    for i in range(1, steps + 1):
        t = i / steps
        paint(ink, x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, erase)
