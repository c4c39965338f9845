"""The checkpoint: one typed record of everything an exact continuation needs.

Saved with torch.save as a dict of plain data and tensors (like nanoGPT's), loaded with
weights_only=True so that a crafted file cannot run code, and checked key by key so that a
damaged or foreign file is refused with a reason instead of failing somewhere later.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_tui.core.store import files
from mnist_tui.core.store.records import CHECKPOINT, CHECKPOINT_CAP

if TYPE_CHECKING:  # for annotations only: torch is imported when a checkpoint is saved or loaded
    import torch


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged, foreign, or refused as unsafe."""


@dataclass
class Checkpoint:
    model: dict[str, Any]  # the network's state dict
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]  # empty without a scheduler
    epoch: int  # the last finished epoch it holds
    config: dict[str, Any]  # TrainConfig.to_dict() of the run
    rng: dict[str, torch.Tensor]  # torch: the global generator (dropout); order: data order; augment: augmentation

    def to_state(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_state(cls, state: Any) -> Checkpoint:
        """Check a loaded dict against the format; CheckpointError names what is wrong."""
        import torch

        if not isinstance(state, dict):
            raise CheckpointError("the checkpoint does not hold a dict")
        missing = [k for k in cls.__dataclass_fields__ if k not in state]
        if missing:
            raise CheckpointError(f"the checkpoint lacks {', '.join(missing)}")
        for key in ("model", "optimizer", "scheduler", "config", "rng"):
            if not isinstance(state[key], dict):
                raise CheckpointError(f"the checkpoint's {key} is not a dict")
        epoch = state["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise CheckpointError(f"the checkpoint's epoch is not a positive whole number ({str(epoch)[:20]!r})")
        for name in ("torch", "order", "augment"):
            value = state["rng"].get(name)
            if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
                raise CheckpointError(f"the checkpoint's random state {name!r} is not a generator state")
        return cls(**{k: state[k] for k in cls.__dataclass_fields__})


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write to a unique temporary file and rename: a crash or a full disk mid-write leaves
    the previous checkpoint as it was."""
    import torch

    files.write_atomic(path / CHECKPOINT, lambda fh: torch.save(checkpoint.to_state(), fh), binary=True)


def load_state(run_dir: Path, map_location: str = "cpu") -> Any:
    """A checkpoint file's raw content, loaded with weights_only=True so it cannot run code."""
    import torch

    path = Path(run_dir) / CHECKPOINT
    try:
        blob = files.read_bytes(path, CHECKPOINT_CAP)
    except files.FileProblem as exc:
        raise CheckpointError(str(exc)) from None
    if not _is_zip(blob):  # what torch.save writes; anything else is no checkpoint of ours
        raise CheckpointError(f"{CHECKPOINT} is not a checkpoint (unreadable)")
    try:
        return torch.load(io.BytesIO(blob), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # The weights-only unpickler names the global it refused ("unsupported GLOBAL
        # posix.system"); any other refusal is a damaged pickle, not a crafted one.
        found = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if not found:
            raise CheckpointError(f"{CHECKPOINT} is damaged (its pickle cannot be read)") from None
        raise CheckpointError(
            f"{path} was refused: it holds objects other than tensors and plain data, which could "
            f"run code when loaded (torch.load with weights_only=True). {found[0][:200]}"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ValueError... for damage
        raise CheckpointError(f"{CHECKPOINT} is damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _is_zip(blob: bytes) -> bool:
    try:
        return zipfile.is_zipfile(io.BytesIO(blob))
    except Exception:  # a crafted zip trailer can make zipfile raise what it likes
        return False


def load(run_dir: Path, map_location: str = "cpu") -> Checkpoint:
    return Checkpoint.from_state(load_state(run_dir, map_location))


def load_weights(run_dir: Path, map_location: str = "cpu") -> dict[str, Any]:
    """Only the network's state dict (what predictions need)."""
    state = load_state(run_dir, map_location)
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise CheckpointError("the checkpoint holds no model weights")
    return weights


__all__ = ["Checkpoint", "CheckpointError", "load", "load_state", "load_weights", "save"]
