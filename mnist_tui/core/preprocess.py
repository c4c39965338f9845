"""Any drawing or picture of a digit turned into what a model trained on MNIST expects, the way
MNIST itself was made: the ink's bounding box scaled (keeping its aspect) to fit 20x20, then
placed in a 28x28 field so that its centre of mass is the field's centre.

The draw pad and `mnist-tui predict IMAGE` both use `to_mnist`; the result is a uint8 image
like the test set's, normalised by `data.normalise` as training normalised its images. A
picture file is untrusted input: `read_picture` opens only a regular file of at most
MAX_FILE_BYTES, reads its size from the header and decodes only pictures of at most
MAX_SIDE pixels a side, and turns whatever the decoder raises into an ImageError.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from PIL.Image import Image as Picture

SIZE, BOX = 28, 20
INK_FLOOR = 0.1  # of the brightest ink: fainter pixels do not count towards the bounding box
# No ink, no digit: a mark must stand this far above the background (a tenth of the range
# from paper to full ink, 25 grey levels) ...
MIN_CONTRAST = 0.1
# ... and cover this many pixels past INK_FLOOR: MNIST's sparsest digit covers 34 of its 784
# (40 in the test set), a single touch of the pad's brush 12, a speck of dust 1 to 3.
MIN_INK_PIXELS = 4

# What `read_picture` decodes: 4096 pixels a side (16.8 million pixels) is more than a phone
# camera's digit needs, and a picture that size takes about 300 MB and a second to prepare
# (RGBA, 2-core CPU); the size comes from the header, before any pixel is decoded.
MAX_SIDE = 4096
# The largest file read: a 4096x4096 PPM is 48 MiB in 8-bit RGB; PNGs compress.
MAX_FILE_BYTES = 64 * 2**20
FORMATS = ("PNG", "PPM")  # Pillow's names: PPM reads the whole PBM / PGM / PPM family


class ImageError(ValueError):
    """An image file that cannot be read as a picture of a digit."""


def to_mnist(ink: torch.Tensor) -> torch.Tensor:
    """(H, W) ink in [0, 1] (1: full ink, 0: background) to a uint8 (28, 28) MNIST digit; a
    drawing with no ink (see `has_ink`) gives a blank image."""
    ink = ink.float().clamp(0, 1)
    if ink.dim() != 2 or not has_ink(ink):
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


def has_ink(ink: torch.Tensor) -> bool:
    """Whether (H, W) ink in [0, 1] holds a mark that can be a digit: its strongest pixel at
    least MIN_CONTRAST, and at least MIN_INK_PIXELS pixels past INK_FLOOR of it. An empty
    pad, an erased one's faint leftovers and a blank picture's specks hold none."""
    if ink.numel() == 0:
        return False
    peak = float(ink.max())
    return peak >= MIN_CONTRAST and int((ink > INK_FLOOR * peak).sum()) >= MIN_INK_PIXELS


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
    are taken away, so that grey or noisy paper is no ink. A picture whose strongest mark stands
    less than MIN_CONTRAST above that floor, or less than the grain again (six spreads above
    the level in all: noise alone almost never gets there), is blank: all zeros."""
    border = torch.cat([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    ink = 1 - gray if float(border.median()) > 0.5 else gray
    edge = torch.cat([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    level = float(edge.median())
    grain = 3 * 1.4826 * float((edge - level).abs().median())  # the median absolute deviation, as a std
    floor, peak = level + grain, float(ink.max())
    if peak - floor < max(MIN_CONTRAST, grain):
        return torch.zeros_like(ink)
    return ((ink - floor) / (peak - floor)).clamp(0, 1)


def read_picture(path: Path) -> torch.Tensor:
    """A PNG or PGM (up to MAX_SIDE pixels a side, any background) as ink in [0, 1];
    ImageError, with one line saying why, for anything else."""
    with _open_regular(path) as file:
        gray = _decoded(path, file)
    if gray.numel() == 0:
        raise ImageError(f"{path} is a picture of no pixels")
    return ink_of_picture(gray.float() / 255)


def _file_kind(mode: int) -> str | None:
    """What a file that is not a regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a regular file"


def _open_regular(path: Path) -> BinaryIO:
    """The file at path, open for reading, if it is a regular file of at most MAX_FILE_BYTES.
    A named pipe would block the first read forever and a device may never end: both are
    refused by a stat before opening (opening a device can itself act), and again on the
    opened file (it may have been swapped meanwhile), which is opened without blocking."""
    try:
        kind = _file_kind(os.stat(path).st_mode)
        if kind:
            raise ImageError(f"{path} is {kind}, not a picture file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        kind = _file_kind(info.st_mode)
        if kind:
            raise ImageError(f"{path} is {kind}, not a picture file")
        if info.st_size > MAX_FILE_BYTES:
            raise ImageError(f"{path} is {info.st_size / 2**20:,.0f} MiB; picture files of at most {MAX_FILE_BYTES // 2**20} MiB are read")
        if info.st_size == 0:
            raise ImageError(f"{path} is empty")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _too_large(path: Path, size: str) -> ImageError:
    return ImageError(f"{path} is {size} pixels; pictures of at most {MAX_SIDE}x{MAX_SIDE} pixels are read")


def _decoded(path: Path, file: BinaryIO) -> torch.Tensor:
    """The picture in the open file as uint8 (H, W) grey, transparent parts on white paper.

    The decoder is a library parsing untrusted bytes: any exception it raises, of whatever
    type, means the file is not a picture it can read, and becomes an ImageError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns on stderr of a picture over 89 million pixels (which the size check
            # below refuses anyway) and raises DecompressionBombError over twice that.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file, formats=FORMATS) as opened:
                width, height = opened.size  # from the header: no pixel is decoded yet
                if width > MAX_SIDE or height > MAX_SIDE:
                    raise _too_large(path, f"{width}x{height}")
                gray = _gray(opened)
    except ImageError:
        raise
    except Image.DecompressionBombError:  # refused by Image.open itself: no size to name
        limit = Image.MAX_IMAGE_PIXELS or 0  # (Pillow raises this only while a limit is set)
        raise _too_large(path, f"over {2 * limit:,}") from None
    except UnidentifiedImageError:
        raise ImageError(f"cannot read {path}: it is not a PNG or PGM picture") from None
    except Exception as exc:  # whatever the decoder raised (see the docstring)
        raise ImageError(f"cannot read {path} as a PNG or PGM picture ({str(exc) or type(exc).__name__})") from None
    return torch.frombuffer(bytearray(gray.tobytes()), dtype=torch.uint8).view(gray.height, gray.width)


def _gray(picture: Picture) -> Picture:
    """The decoded picture in Pillow's 8-bit grey ("L"), a transparent one laid on white paper
    (a drawing exported with a transparent background)."""
    from PIL import Image

    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        paper = Image.new("RGBA", picture.size, (255, 255, 255, 255))
        picture = Image.alpha_composite(paper, picture.convert("RGBA"))
    return picture.convert("L")


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
