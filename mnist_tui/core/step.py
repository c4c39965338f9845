"""One training step's forward and backward pass: eager everywhere, a CUDA graph on CUDA.

On a GPU, MNIST-sized networks spend most of an eager step launching many small kernels from
Python (benchmarks/results/gpu.md: v2's 20 epochs take 34 s eagerly, 9 s replayed).
`GraphStep` records the forward pass, the loss and the backward pass of one full batch once,
as a CUDA graph, and afterwards only copies each batch into the graph's input buffers and
replays it: one launch instead of one per kernel. The optimizer step, the schedule and the
running sums stay eager (a few launches, a fused optimizer on CUDA).

Both steps leave the gradients in the parameters' `.grad` and return (logits, loss); the caller
then steps the optimizer. A batch of another size than the recorded one (the last, partial
batch of an epoch) runs eagerly, accumulating into the graph's own gradient buffers after
zeroing them in place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mnist_tui.core.distributed import World, weighted_loss


def autocast(device: torch.device, precision: str, cache: bool = True) -> torch.autocast:
    # Recording a CUDA graph needs the weight-cast cache off: cached casts would be graph memory.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=cache)


def forward_backward(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, precision: str, cache: bool = True, world: World | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and mean loss of the batch, gradients left in `.grad`. In a world of several
    processes the batch is this rank's share and the gradient is weighted for the global
    batch (see distributed.weighted_loss)."""
    with autocast(device, precision, cache):
        out = model(x)
    if world is not None and world.active:
        weighted, loss = weighted_loss(out, y, world)
        weighted.backward()
        return out, loss
    loss = F.cross_entropy(out.float(), y)
    loss.backward()
    return out, loss


# cuDNN's algorithm search (its benchmark mode) while a CUDA graph is recorded, as measured
# on an H200 (benchmarks/results/gpu.md): it costs 0.3-3.1 s before the first epoch and then
# saves 0.13-0.2 ms a step (v2: 0.39 s an epoch of 469 steps instead of 0.48 s). Whole runs
# with and without it: v2's 20 epochs (9,380 steps) took 8.9-9.6 s with it and 10.6 s
# without; v3's 10-epoch schedule (4,690 steps) 6.1-7.8 s with it and 5.2 s without; v3's
# own recipe (14,070 steps) tied. Runs planned shorter than this record with cuDNN's quick
# heuristics instead, and so does any run that stops at a --target: there the time to the
# target is the point, and the search is paid before the first step.
SEARCH_PAYS_FROM_STEPS = 7_000


def search_pays(steps: int, target: float | None) -> bool:
    """Whether cuDNN's algorithm search pays for itself in a run of `steps` training steps."""
    return target is None and steps >= SEARCH_PAYS_FROM_STEPS


class EagerStep:
    """Forward and backward pass in plain PyTorch, gradients set afresh each step."""

    graph = False  # whether steps are replayed from a CUDA graph
    searched = False  # whether cuDNN timed its algorithms for the recorded steps
    fallback: str | None = None  # why a GraphStep trains eagerly after all

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, precision: str, world: World | None = None) -> None:
        self.model, self.optimizer, self.device, self.precision, self.world = model, optimizer, device, precision, world

    def prepare(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called once with a sample batch before training; nothing to do here."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        return forward_backward(self.model, x, y, self.device, self.precision, world=self.world)


class GraphStep(EagerStep):
    """Forward and backward pass of full batches replayed from a CUDA graph (CUDA only).

    `prepare` records the graph from a sample batch, after three warm-up passes on a side
    stream (cuDNN picks its algorithms there); the batch-norm running statistics those passes
    touch are put back, so recording leaves the model as it found it. If recording fails, the
    step says why in `fallback` and runs eagerly from then on.
    """

    graph = True
    # True or False: search, or not, whatever the run's length (benchmarks/gpu.py's `tune=`).
    force_search: bool | None = None

    def __init__(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, precision: str, batch_size: int, search: bool = True
    ) -> None:
        super().__init__(model, optimizer, device, precision)
        self.batch_size = batch_size
        # Let cuDNN time its algorithms for the recorded shapes where that pays (search_pays):
        # the recorded step then runs faster every epoch. Everything run eagerly (evaluation,
        # the partial batch) keeps cuDNN's quick heuristics.
        self.search = search if self.force_search is None else self.force_search
        self.cuda_graph: torch.cuda.CUDAGraph | None = None

    def prepare(self, x: torch.Tensor, y: torch.Tensor) -> None:
        try:
            self._record(x[: self.batch_size], y[: self.batch_size])
        except RuntimeError as exc:
            self.fallback = f"CUDA graph recording failed, training eagerly: {str(exc).strip().splitlines()[0]}"
            self.cuda_graph = None
            self.graph = self.searched = False
            self.optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize(self.device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cuda_graph is None or len(y) != self.batch_size:
            return self._eager(x, y)
        self.x.copy_(x)
        self.y.copy_(y)
        self.cuda_graph.replay()
        return self.out, self.loss

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Zero in place: the graph keeps writing into these same gradient tensors.
        self.optimizer.zero_grad(set_to_none=self.cuda_graph is None)
        return forward_backward(self.model, x, y, self.device, self.precision)

    def _record(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x.clone(), y.clone()
        saved = {name: b.clone() for name, b in self.model.named_buffers()}
        benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.search
        try:
            self._warm_up_and_record(saved)
        finally:
            torch.backends.cudnn.benchmark = benchmark
        self.searched = self.search

    def _warm_up_and_record(self, saved: dict[str, torch.Tensor]) -> None:
        model, device = self.model, self.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up passes: they touch the BN statistics, restored below
            for _ in range(3):
                self.optimizer.zero_grad(set_to_none=True)
                forward_backward(model, self.x, self.y, device, self.precision, cache=False)
        torch.cuda.current_stream(device).wait_stream(side)
        # Gradients must not exist yet, so that backward allocates them from the graph's pool.
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out, loss = forward_backward(model, self.x, self.y, device, self.precision, cache=False)
            # Keep the outputs' memory but not their autograd graph: holding it would keep the
            # parameters' gradient-accumulator nodes tied to the recording stream, and an eager
            # backward (the partial last batch) would then add its gradients on that stream.
            self.out, self.loss = out.detach(), loss.detach()
            del out, loss
        finally:
            with torch.no_grad():
                for name, b in model.named_buffers():
                    b.copy_(saved[name])
        self.cuda_graph = graph


# DDP all-reduces the gradients from hooks that run during the backward pass, outside any
# recorded graph: under DDP every step runs eagerly.
UNDER_DDP = "CUDA graphs are off under DDP (its gradient all-reduce runs outside a recorded graph)"


def make_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    precision: str,
    batch_size: int,
    cuda_graph: bool,
    world: World | None = None,
    search: bool = True,
) -> EagerStep:
    """GraphStep on CUDA when asked for (one process only; `search`: let cuDNN time its
    algorithms while recording), EagerStep everywhere else."""
    if cuda_graph and device.type == "cuda":
        if world is None or not world.active:
            return GraphStep(model, optimizer, device, precision, batch_size, search)
        step = EagerStep(model, optimizer, device, precision, world)
        step.fallback = UNDER_DDP
        return step
    return EagerStep(model, optimizer, device, precision, world)
