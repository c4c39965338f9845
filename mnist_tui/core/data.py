"""Find, verify, extract or download MNIST; hold it as tensors on the device; serve batches.

The package carries the four MNIST files gzip-compressed (mnist_tui/data/, package data, so a
wheel has them too); they are extracted on first use into the data root: the checkout's
`data/`, or the user's cache folder for an installed copy (see core/paths.py).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_tui.core.distributed import World
from mnist_tui.core.paths import DATA_ENV, SHIPPED_DATA, resolve_dir
from mnist_tui.core.store.files import FileProblem, open_regular, write_atomic

# Pixel mean and standard deviation of the 60,000 training images scaled to [0, 1];
# tests recompute both from the data.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
BACKGROUND = (0.0 - MNIST_MEAN) / MNIST_STD  # a black pixel after normalisation

# md5 of each *uncompressed* IDX file, the canonical values of the original distribution.
IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


class DataError(RuntimeError):
    """The dataset is missing or damaged; the message names the file and what to do."""


def find_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Dataset root: an explicit path, else $MNIST_TUI_DATA, else the checkout's data/, else
    the user's cache folder / data (an installed copy)."""
    return resolve_dir(explicit, DATA_ENV, "data")


def raw_dir(root: Path) -> Path:
    # torchvision's MNIST class reads <root>/MNIST/raw/.
    return root / "MNIST" / "raw"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    try:
        fd = open_regular(path, follow=True)  # a FIFO or device planted in its place would never end
    except FileProblem as exc:
        raise DataError(f"{path} cannot be used: {exc}") from None
    with os.fdopen(fd, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=32)
def _verified(path: Path, size: int, mtime_ns: int) -> bool:
    """Checksum once per file version per process; the key changes when the file does."""
    return _md5(path) == IDX_MD5[path.name]


def _check(path: Path) -> None:
    stat = path.stat()
    if not _verified(path, stat.st_size, stat.st_mtime_ns):
        raise DataError(
            f"{path} is damaged (its md5 is not the canonical {IDX_MD5[path.name]}). "
            f"Delete it: it is extracted again from {path.name}.gz (beside it or shipped with "
            "mnist-tui), or downloaded again."
        )


def _extract(gz: Path, target: Path) -> None:
    """Decompress into a uniquely named, exclusively created file, then rename over target
    (a planted symlink is never followed, a shared folder never sees half a file)."""
    try:
        src_fd = open_regular(gz, follow=True)
        with os.fdopen(src_fd, "rb") as raw_src, gzip.open(raw_src, "rb") as src:
            write_atomic(target, lambda dst: shutil.copyfileobj(src, dst, 1 << 20), binary=True)
    except (OSError, EOFError, gzip.BadGzipFile, FileProblem) as exc:
        raise DataError(f"{gz} cannot be decompressed ({exc}); replace it or delete it to download again.") from None


def _download(root: Path) -> None:
    from torchvision.datasets import MNIST

    try:
        MNIST(str(root), train=True, download=True)
    except Exception as exc:  # no network, mirror down, disk full: all end the same way
        expected = ", ".join(IDX_MD5)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"MNIST is not in {raw_dir(root)} and could not be downloaded ({first_line}). "
            f"Put the four files there ({expected}, or the same names with .gz), "
            "or point --data / $MNIST_TUI_DATA at a folder that has them."
        ) from None


def archive(raw: Path, name: str) -> Path | None:
    """The .gz of IDX file `name`: one beside it in `raw` first (a data folder of the user's
    own), else the one shipped inside the package; None without either."""
    for gz in (raw / f"{name}.gz", SHIPPED_DATA / f"{name}.gz"):
        if gz.is_file():
            return gz
    return None


def _extract_missing(raw: Path, log: Callable[[str], None]) -> list[str]:
    """Extract each missing IDX file that has an archive; the names still missing after."""
    try:
        missing = [name for name in IDX_MD5 if not (raw / name).exists()]
        sources = {name: gz for name in missing if (gz := archive(raw, name)) is not None}
    except OSError as exc:  # a folder name too long, a folder that cannot be searched
        raise DataError(f"{raw} cannot be used for MNIST ({exc.strerror})") from None
    if sources:  # one line, not one per file: the first run's output stays short
        folders = sorted({str(gz.parent) for gz in sources.values()})
        count = f"{len(sources)} MNIST file{'s' if len(sources) != 1 else ''}"
        log(f"extracting {count} from the archives in {', '.join(folders)} into {raw} (first use only)")
        try:
            raw.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"{raw} cannot be created for MNIST ({exc.strerror})") from None
    for name, gz in sources.items():
        _extract(gz, raw / name)
    return [name for name in missing if name not in sources]


def prepare(root: Path, download: bool = True, log: Callable[[str], None] = lambda _msg: None) -> Path:
    """Make sure the four IDX files are present and intact under root; return their folder.

    Missing IDX files are extracted from a .gz beside them or, without one, from the archives
    shipped inside the package; with neither, the dataset is downloaded through torchvision
    (its mirrors and checksums, with a progress bar).
    """
    raw = raw_dir(root)
    missing = _extract_missing(raw, log)
    if missing:
        if not download:
            raise DataError(f"MNIST files missing from {raw}: {', '.join(missing)}")
        log(f"downloading MNIST into {raw}")
        _download(root)
    for name in IDX_MD5:
        try:
            _check(raw / name)
        except DataError:
            gz = archive(raw, name)
            if gz is None:
                raise
            # A damaged copy with an archive of it at hand: extract it again.
            log(f"{name} is damaged; extracting it again from {gz}")
            _extract(gz, raw / name)
            try:
                _check(raw / name)
            except DataError:
                raise DataError(f"{gz} holds a damaged copy of {name}; replace the .gz, or delete both to download them again") from None
    return raw


@dataclass(frozen=True)
class Split:
    """One split as uint8 images (N, 28, 28) and int64 labels (N,), on the CPU."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def split_off(self, n: int) -> tuple[Split, Split]:
        """(all but the last n, the last n): a validation split carved from this one."""
        return Split(self.images[:-n], self.labels[:-n]), Split(self.images[-n:], self.labels[-n:])


def read_idx(path: Path, dims: int) -> torch.Tensor:
    """An IDX file of unsigned bytes (md5-checked by `prepare`) as a uint8 tensor. Read
    directly: torchvision's MNIST class costs over a second of imports (torch._dynamo)."""
    raw = bytearray(path.read_bytes())
    header = 4 + 4 * dims
    if len(raw) < header or raw[:3] != b"\x00\x00\x08" or raw[3] != dims:
        raise DataError(f"{path} is not an IDX file of {dims}-dimensional unsigned bytes")
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    if len(raw) - header != math.prod(shape):
        raise DataError(f"{path} holds {len(raw) - header:,} bytes where its header says {math.prod(shape):,}")
    return torch.frombuffer(raw, dtype=torch.uint8, offset=header).view(shape)


@functools.lru_cache(maxsize=2)
def _load(root: Path) -> tuple[Split, Split]:
    raw = raw_dir(root)
    splits = []
    for prefix in ("train", "t10k"):
        images = read_idx(raw / f"{prefix}-images-idx3-ubyte", 3)
        labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte", 1).long()
        splits.append(Split(images, labels))
    return splits[0], splits[1]


def load(root: str | os.PathLike[str] | None = None, download: bool = True, log: Callable[[str], None] = lambda _m: None) -> tuple[Split, Split]:
    """The training and test splits, read once per process."""
    root = find_root(root)
    prepare(root, download=download, log=log)
    return _load(root.resolve())


def normalise(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, 28, 28) to normalised float32 (N, 1, 28, 28) on the device, done once."""
    x = images.to(device).unsqueeze(1).float().div_(255.0)
    return x.sub_(MNIST_MEAN).div_(MNIST_STD)


@dataclass
class DeviceSplit:
    """A split resident on the training device, ready to be indexed batch by batch."""

    images: torch.Tensor  # float32 (N, 1, 28, 28), normalised
    labels: torch.Tensor  # int64 (N,)

    @classmethod
    def from_split(cls, split: Split, device: torch.device | str, limit: int | None = None) -> DeviceSplit:
        n = len(split) if limit is None else min(limit, len(split))
        return cls(normalise(split.images[:n], device), split.labels[:n].to(device))

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator: torch.Generator | None = None, world: World | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches in a fresh order drawn from `generator`, or in order when it is None.

        In a world of several processes each batch is the global batch's share of this rank
        (the same order on every rank), and `world.batch` is set to the global batch's size."""
        n = len(self)
        if generator is None and world is None:
            for start in range(0, n, batch_size):
                yield self.images[start : start + batch_size], self.labels[start : start + batch_size]
            return
        if generator is None:
            order = torch.arange(n, device=self.labels.device)
        else:
            order = torch.randperm(n, generator=generator).to(self.labels.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if world is not None:
                world.batch = len(idx)
                idx = idx[world.part(len(idx))]
            yield self.images[idx], self.labels[idx]

    def share(self, world: World) -> DeviceSplit:
        """This rank's contiguous share of the split (all of it in a world of one)."""
        rows = world.part(len(self))
        return DeviceSplit(self.images[rows], self.labels[rows])

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)
