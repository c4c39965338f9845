"""The torch side of `mnist-tui export` (core/export.py): each format written, then run and timed.

Every format takes the network's own input (INPUT): normalised float32 images (N, 1, 28, 28),
and gives (N, 10) logits. `onnx` through torch.onnx's dynamo exporter with a dynamic batch
axis; `onnx-int8`, that file with batch norms folded (ONNX Runtime's pre-processing) and
quantised statically (QDQ, int8 weights per channel, uint8 activations), its ranges from
CALIBRATION_IMAGES training images, never test images (ONNX Runtime's calibration keeps its
scratch files in a folder of the system's own, removed when it ends); `pt2`, a torch.export
program saved with torch.export.save. measure() runs a file with ONNX Runtime (torch for pt2)
on the checkpoint's test images and times it at batch 1 and 256.
"""

from __future__ import annotations

import copy
import importlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnist_tui.core import data, insight

INPUT_NAME, OUTPUT_NAME = "image", "logits"
INPUT = {
    "name": INPUT_NAME,
    "shape": ["batch", 1, 28, 28],
    "dtype": "float32",
    "pixels": f"(pixel / 255 - {data.MNIST_MEAN}) / {data.MNIST_STD}, white digits on black as in MNIST",
    "output": f"{OUTPUT_NAME}: (batch, 10) float32, one logit per digit",
}
# Training images the int8 ranges are calibrated on, drawn with a fixed seed from all 60,000
# (never test images): MinMax ranges of a few hundred digits already span what the network's
# activations take; the check on the test set is what says whether they did.
CALIBRATION_IMAGES = 512
CALIBRATION_SEED = 0
CALIBRATION_BATCH = 64
CHECK_BATCH = 500  # test images per call when checking a file
LATENCY_BATCHES = (1, 256)
LATENCY_SECONDS = 0.5  # timing per batch size: repeated calls for about this long, the median kept
LATENCY_CALLS = (5, 300)  # at least, at most

Runner = Callable[[torch.Tensor], torch.Tensor]  # normalised images -> logits


def write(fmt: str, module: nn.Module, path: Path, stage: Path, data_dir: str | None) -> None:
    """The network exported as `fmt` to `path`; intermediates in `stage`. The exporters raise
    what they like: the caller turns it into one line."""
    model = _exportable(module)
    if fmt == "pt2":
        torch.export.save(_program(model), path)
    elif fmt == "onnx":
        write_onnx(model, path)
    else:
        _write_int8(model, path, stage, data_dir)


def _exportable(module: nn.Module) -> nn.Module:
    """A copy of the evaluated network in the default layout (insight's is channels_last and
    shared with the screens)."""
    return copy.deepcopy(module).to(memory_format=torch.contiguous_format).eval()


def _example() -> tuple[torch.Tensor, ...]:
    return (torch.zeros(2, 1, 28, 28),)  # 2, not 1: the exporters specialise a batch of one


def _dynamic() -> tuple[dict[int, Any], ...]:
    return ({0: torch.export.Dim("batch")},)


def _program(model: nn.Module) -> torch.export.ExportedProgram:
    """The torch.export program, without the stack traces its nodes carry (source lines and
    this machine's absolute paths, which a file meant to leave the machine should not)."""
    program = torch.export.export(model, _example(), dynamic_shapes=_dynamic())
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)
    return program


def write_onnx(model: nn.Module, path: Path) -> None:
    """The ONNX file, without the exporter's metadata on every node and value (stack traces
    with this machine's paths, the FX graph: half of v4's file)."""
    program = torch.onnx.export(model, _example(), dynamo=True, dynamic_shapes=_dynamic(), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    ir = importlib.import_module("onnx_ir")
    graph = program.model.graph
    graph.metadata_props.clear()
    for node in ir.traversal.RecursiveGraphIterator(graph):
        node.metadata_props.clear()
        for value in node.outputs:
            value.metadata_props.clear()
    for value in [*graph.inputs, *graph.initializers.values()]:
        value.metadata_props.clear()
    program.save(str(path))


def _write_int8(model: nn.Module, path: Path, stage: Path, data_dir: str | None) -> None:
    """The fp32 ONNX file, batch norms folded and shapes inferred (ONNX Runtime's
    pre-processing), quantised statically: ranges from calibration images."""
    quantization = importlib.import_module("onnxruntime.quantization")
    preprocess = importlib.import_module("onnxruntime.quantization.shape_inference")
    fp32, prepared = stage / "fp32.onnx", stage / "prepared.onnx"
    write_onnx(model, fp32)
    preprocess.quant_pre_process(str(fp32), str(prepared))
    quantization.quantize_static(
        str(prepared),
        str(path),
        _Calibration(calibration_images(data_dir)),
        quant_format=quantization.QuantFormat.QDQ,
        per_channel=True,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        calibrate_method=quantization.CalibrationMethod.MinMax,
        # 7-bit weights: x86's u8 x s8 multiply-add (VPMADDUBSW) saturates its 16-bit pairs
        # with full-range weights; on an Intel Xeon the int8 v2 lost 0.8 points, 0.1 with this.
        reduce_range=True,
    )


def calibration_images(data_dir: str | None = None, count: int | None = None) -> torch.Tensor:
    """`count` (CALIBRATION_IMAGES) training images drawn with a fixed seed, normalised (never test images)."""
    count = CALIBRATION_IMAGES if count is None else count
    train, _ = data.load(data_dir)
    chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(CALIBRATION_SEED))[:count]
    return data.normalise(train.images[chosen])


class _Calibration:
    """ONNX Runtime's CalibrationDataReader (it checks for get_next): batches of images."""

    def __init__(self, images: torch.Tensor) -> None:
        self._batches = iter(torch.split(images, CALIBRATION_BATCH))

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch.numpy()}


def _runner(fmt: str, path: Path) -> tuple[Runner, str, int]:
    """A function running the file, what runs it, and on how many threads."""
    if fmt == "pt2":
        module = torch.export.load(path).module()

        def run_torch(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                out: torch.Tensor = module(x)
            return out

        return run_torch, f"torch {torch.__version__}", torch.get_num_threads()
    ort = importlib.import_module("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run_ort(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])

    threads = session.get_session_options().intra_op_num_threads or os.cpu_count() or 1
    return run_ort, f"onnxruntime {ort.__version__}", threads


def measure(fmt: str, path: Path, outputs: insight.Outputs) -> dict[str, Any]:
    """The file run on the checkpoint's test images: its predictions' accuracy and agreement
    with the checkpoint's (%), its latency per image by batch size, what ran it."""
    run, runtime, threads = _runner(fmt, path)
    images = data.normalise(outputs.images)
    predicted = torch.cat([run(chunk).argmax(1) for chunk in torch.split(images, CHECK_BATCH)])
    n = len(outputs)

    def share(same: torch.Tensor) -> float:
        return round(100.0 * int(same.sum()) / n, 3) if n else 0.0

    return {
        "images": n,
        "accuracy": share(predicted == outputs.labels),
        "checkpoint_accuracy": share(outputs.predicted == outputs.labels),
        "agreement": share(predicted == outputs.predicted),
        "latency_ms": {str(b): round(latency_ms(run, images, b), 4) for b in LATENCY_BATCHES},
        "runtime": runtime,
        "threads": threads,
        "calibration_images": CALIBRATION_IMAGES if fmt == "onnx-int8" else None,
        "input": INPUT,
    }


def latency_ms(run: Runner, images: torch.Tensor, batch: int, seconds: float | None = None) -> float:
    """Milliseconds per image of `run` on batches of `batch` images: the median call of
    repeated calls for about `seconds` (after one to warm up), divided by the batch."""
    seconds = LATENCY_SECONDS if seconds is None else seconds
    x = images[:batch]
    if len(x) < batch:  # fewer test images than a batch: repeat them
        x = x.repeat(-(-batch // max(len(x), 1)), 1, 1, 1)[:batch]
    x = x.contiguous()
    run(x)
    times: list[float] = []
    least, most = LATENCY_CALLS
    start = time.perf_counter()
    while len(times) < least or (len(times) < most and time.perf_counter() - start < seconds):
        began = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - began)
    return 1000.0 * statistics.median(times) / batch


def weight_bytes(module: nn.Module) -> int:
    return sum(t.numel() * 4 for t in module.state_dict().values() if t.is_floating_point())
