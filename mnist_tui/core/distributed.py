"""One run on N processes with torch.distributed (DistributedDataParallel), as one process
would train it.

torchrun starts the processes and sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous
address in their environment; `World.from_env` reads them. Every rank keeps the whole data
set resident and draws the same random numbers as the one-process run would: the data order
(one permutation per epoch from the run's seeded generator), the augmentation of the whole
global batch and the dropout masks of the whole global batch, of which each rank then takes
its own rows. Batch norm statistics cover the global batch (`GlobalBatchNorm`: torch's
SyncBatchNorm runs on GPUs only, and gloo on the CPU is the case tested everywhere), and each
rank's loss is weighted so that DDP's averaged gradient is the global batch's mean. In exact
arithmetic an N-process run therefore equals the one-process run with the same seed and
global batch, whatever N, which is also why a run may resume on another number of processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

# A collective that waits longer than this on a peer fails the run (torchrun tears every
# process down as soon as one dies, so this is only the last line of defence).
COLLECTIVE_TIMEOUT = timedelta(minutes=5)


@dataclass
class World:
    """This process's place among the run's processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    backend: str = ""
    # The size of the global batch being trained: the dropout layers read it to draw the
    # whole batch's masks.
    batch: int = 0
    devices: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> World:
        """The world torchrun describes in the environment (a lone process is a world of 1)."""
        env = os.environ
        try:
            size = int(env.get("WORLD_SIZE", "1"))
            rank, local_rank = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
            local_size = int(env.get("LOCAL_WORLD_SIZE", str(size)))
        except ValueError:
            raise RuntimeError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None
        if size <= 1:
            return cls()
        return cls(rank, size, local_rank, max(local_size, 1))

    def part(self, n: int) -> slice:
        """This rank's contiguous share of n items (shares differ by at most one, no padding)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def device(self, device: torch.device) -> torch.device:
        """This rank's device of the kind asked for: its own GPU (LOCAL_RANK) on CUDA."""
        if device.type != "cuda" or not self.active:
            return device
        mine = torch.device("cuda", self.local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(mine)
        return mine

    def join(self, device: torch.device) -> None:
        """Enter the process group: gloo on the CPU, nccl on CUDA."""
        if not self.active or dist.is_initialized():
            return
        device = self.device(device)
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(self.backend, timeout=COLLECTIVE_TIMEOUT, device_id=device if device.type == "cuda" else None)

    def leave(self, together: bool = False) -> None:
        """Leave the process group; `together` (the run ended the same way on every rank):
        first wait for every rank, so that none tears its connections down while another
        still finishes its last collective (gloo then aborts that process)."""
        if not (self.active and dist.is_initialized()):
            return
        if together:
            try:
                dist.barrier()
            except Exception:
                pass  # a peer already gone: leave anyway
        dist.destroy_process_group()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor summed over every rank (in place)."""
        if self.active:
            dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether the flag is set on any rank (every rank calls it at the same point)."""
        if not self.active:
            return flag
        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def share(self, obj: Any) -> Any:
        """Rank 0's object, on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's object, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out


def cpu_threads(world: World) -> int:
    """The CPU's cores split evenly between this machine's ranks (at least one each)."""
    return max(1, (os.cpu_count() or 1) // world.local_size)


class _AllSum(torch.autograd.Function):
    """A sum over every rank that gradients flow through: each rank's input reaches every
    rank's output, so the backward pass sums the incoming gradients over the ranks too."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover every rank's share of the global batch.

    The per-channel sums, sums of squares and counts are all-reduced (differentiably, so the
    backward pass sums the gradient contributions of every rank too). Outside a process
    group, and in eval mode, it is plain BatchNorm2d. The state dict is BatchNorm2d's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.float()
        c = xf.shape[1]
        count = xf.new_full((1,), xf.numel() / c)
        stats = _AllSum.apply(torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            self._track(mean.detach(), var.detach() * n.detach() / (n.detach() - 1).clamp_min(1))
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -mean * scale + (self.bias if self.bias is not None else 0)
        out: torch.Tensor = (xf * scale[None, :, None, None] + shift[None, :, None, None]).to(x.dtype)
        return out

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        assert self.running_mean is not None and self.running_var is not None and self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked.item())
        self.running_mean.lerp_(mean, momentum)
        self.running_var.lerp_(unbiased_var, momentum)


class GlobalDropout(nn.Module):
    """Dropout whose mask is drawn for the whole global batch on every rank, from the same
    random stream, each rank keeping its own rows: the masks the one-process run draws.

    The mask is drawn as torch's own dropout draws it on the CPU (a tensor of the input's
    dtype and memory layout filled by bernoulli_, the batch outermost), so a world of one
    equals nn.Dropout exactly."""

    def __init__(self, p: float, world: World):
        super().__init__()
        self.p, self.world = p, world

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        total = self.world.batch or len(x)
        # The input's dimension order in memory (channels_last: N, H, W, C), outermost first.
        strides = x.stride()
        order = sorted(range(x.dim()), key=lambda d: -strides[d])
        shape = (total, *x.shape[1:])
        mask = torch.empty([shape[d] for d in order], dtype=x.dtype, device=x.device).permute(*[order.index(d) for d in range(x.dim())])
        rows = self.world.part(total) if self.world.active else slice(0, total)
        return x * mask.bernoulli_(1 - self.p)[rows].div_(1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def globalise(model: nn.Module, world: World) -> nn.Module:
    """Swap the model's BatchNorm2d and Dropout layers for their global-batch versions (same
    parameters and state dict)."""
    for name, child in list(model.named_children()):
        if type(child) is nn.BatchNorm2d:
            swapped = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            swapped.load_state_dict(child.state_dict())
            setattr(model, name, swapped)
        elif type(child) is nn.Dropout:
            setattr(model, name, GlobalDropout(child.p, world))
        else:
            globalise(child, world)
    return model


def weighted_loss(out: torch.Tensor, y: torch.Tensor, world: World) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss to differentiate, this rank's mean loss): the rank's summed loss weighted so
    that DDP's average over ranks is the mean over the global batch."""
    total = F.cross_entropy(out.float(), y, reduction="sum")
    return total * (world.size / world.batch), total.detach() / len(y)
