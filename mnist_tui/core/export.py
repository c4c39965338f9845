"""Export a run's last checkpoint as ONNX, int8 ONNX or a torch.export program, checked on the test set.

Formats (FORMATS): `onnx` through torch.onnx's dynamo exporter, with a dynamic batch axis;
`onnx-int8`, that file quantised by ONNX Runtime's static quantisation (QDQ, int8 weights per
channel, uint8 activations) calibrated on CALIBRATION_IMAGES training images, never test
images; `pt2`, a torch.export program saved with torch.export.save. Every format takes the
network's own input, normalised float32 images (N, 1, 28, 28) (INPUT, in the report), and
gives (N, 10) logits.

Each file is checked before it is kept: run by ONNX Runtime (torch for pt2) on the test images
the run's own test pass used (all 10,000 unless it had --test-limit), its accuracy, its
agreement with the checkpoint (the share of identical predictions, the checkpoint in fp32),
its size and its CPU latency per image at batch 1 and batch 256 go into an ExportReport, saved
beside the file as FILE.json. The file is made in a hidden folder beside the target and moved
into place only when it passed; an existing file is never replaced. The default target is
<runs>/exports/<run id>.<ext> (default_out), the folder where the app keeps what it exports.
ONNX Runtime's calibration uses a scratch folder of the system's own, removed when it ends.

onnx, onnxruntime and onnxscript are an optional extra (`pip install 'mnist-tui[export]'`):
MissingExtra says so when they are absent; pt2 needs torch only.
"""

from __future__ import annotations

import copy
import importlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnist_tui.core import data, insight
from mnist_tui.core.store import CheckpointError
from mnist_tui.core.store.files import write_json_atomic
from mnist_tui.core.store.records import EXPORTS

FORMATS = {"onnx": ".onnx", "onnx-int8": ".int8.onnx", "pt2": ".pt2"}  # format -> file extension
EXTRA = ("onnx", "onnxruntime", "onnxscript")
INSTALL = "pip install 'mnist-tui[export]'"
INPUT_NAME, OUTPUT_NAME = "image", "logits"
INPUT = {
    "name": INPUT_NAME,
    "shape": ["batch", 1, 28, 28],
    "dtype": "float32",
    "pixels": f"(pixel / 255 - {data.MNIST_MEAN}) / {data.MNIST_STD}, white digits on black as in MNIST",
    "output": f"{OUTPUT_NAME}: (batch, 10) float32, one logit per digit",
}
# Training images the int8 ranges are calibrated on, drawn with a fixed seed from all 60,000:
# a few hundred set every range as well as thousands do (benchmarks/results/export.md).
CALIBRATION_IMAGES = 512
CALIBRATION_SEED = 0
CALIBRATION_BATCH = 64
CHECK_BATCH = 500  # test images per call when checking a file
LATENCY_BATCHES = (1, 256)
LATENCY_SECONDS = 0.5  # timing per batch size: repeated calls for about this long, the median kept
LATENCY_CALLS = (5, 300)  # at least, at most


class ExportError(RuntimeError):
    """An export refused or failed; the message is one line for the user."""


class MissingExtra(ExportError):
    """onnx, onnxruntime or onnxscript is not installed."""


@dataclass(frozen=True)
class ExportReport:
    """What the check of an exported file found; saved beside it as FILE.json."""

    format: str
    path: str
    run_id: str
    model: str
    epoch: int
    bytes: int  # the file's size
    weight_bytes: int  # the checkpoint's weights in fp32 (its state dict's tensors), for the ratio
    images: int  # test images checked
    accuracy: float  # %, of the exported file
    checkpoint_accuracy: float  # %, of the checkpoint in fp32 on the same images
    agreement: float  # %, of images where the file and the checkpoint predict the same digit
    latency_ms: dict[str, float]  # per image, by batch size ("1", "256"), on the CPU
    runtime: str  # what ran the check: "onnxruntime 1.x" or "torch 2.x"
    threads: int  # CPU threads it ran on
    cpu: str
    calibration_images: int | None  # int8: the training images its ranges came from
    input: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def smaller(self) -> float:
        """How many times smaller the file is than the checkpoint's fp32 weights."""
        return self.weight_bytes / self.bytes if self.bytes else 0.0


def default_out(run_dir: Path, run_id: str, fmt: str) -> Path:
    """<runs>/exports/<run id><ext>: beside the runs, in the app's exports folder."""
    return Path(run_dir).parent / EXPORTS / f"{run_id}{FORMATS[fmt]}"


def require_extra() -> None:
    """MissingExtra naming the install command unless onnx, onnxruntime and onnxscript import."""
    missing = []
    for name in EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtra(f"exporting to ONNX needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: {INSTALL}")


def export(run_dir: Path, fmt: str, out: Path | None = None, data_dir: str | None = None) -> ExportReport:
    """Export the run's last checkpoint to `out` (default_out if None) as `fmt`, check the
    file on the run's test images, save the report beside it as FILE.json and return it."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {str(fmt)[:20]!r} (choose from {', '.join(FORMATS)})")
    if fmt != "pt2":
        require_extra()
    try:
        net = insight.network(Path(run_dir), "fp32")  # the run's record and checkpoint, checked
        target = _target(Path(run_dir), net.run_id, fmt, out)
        outputs = insight.run_outputs(Path(run_dir), data_dir, "fp32")
    except (CheckpointError, data.DataError) as exc:
        raise ExportError(f"cannot export {Path(run_dir).name[:80]}: {exc}") from None
    with _staging(target) as stage:
        made = stage / target.name
        _write(fmt, net.module, made, stage, data_dir)
        report = _check(fmt, made, target, outputs, _weight_bytes(net.module))
        _publish(made, target, report)
    return report


def _target(run_dir: Path, run_id: str, fmt: str, out: Path | None) -> Path:
    """The file to write: `out`, or the default (its folder made); ExportError if it or its
    report exists or its folder does not."""
    if out is None:
        target = default_out(run_dir, run_id, fmt)
        try:
            target.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot make {target.parent}: {exc.strerror or exc}") from None
    else:
        target = Path(out)
    for path in (target, _report_path(target)):
        if os.path.lexists(path):
            raise ExportError(f"{path} exists; choose another --out or remove it")
    if not target.parent.is_dir():
        raise ExportError(f"{target.parent} is not a folder; --out must name a file in an existing folder")
    return target


def _report_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A hidden folder beside the target for the file and its intermediates, removed after."""
    try:
        stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    except OSError as exc:
        raise ExportError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _publish(made: Path, target: Path, report: ExportReport) -> None:
    """Link the checked file into place (never over a file that appeared meanwhile), then its report."""
    try:
        os.link(made, target)
    except FileExistsError:
        raise ExportError(f"{target} appeared while exporting; it was left as it was") from None
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        write_json_atomic(_report_path(target), report.to_dict())
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise ExportError(f"cannot write {_report_path(target)}: {exc.strerror or exc}") from None


def _write(fmt: str, module: nn.Module, path: Path, stage: Path, data_dir: str | None) -> None:
    """The exported file at `path`; ExportError with the exporter's first line if it fails."""
    model = _exportable(module)
    try:
        if fmt == "pt2":
            torch.export.save(_program(model), path)
        elif fmt == "onnx":
            _write_onnx(model, path)
        else:
            _write_int8(model, path, stage, data_dir)
    except data.DataError:
        raise
    except Exception as exc:  # the exporters raise what they like
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"exporting to {fmt} failed: {first}") from None


def _exportable(module: nn.Module) -> nn.Module:
    """A copy of the evaluated network in the default layout (insight's is channels_last and
    shared with the screens)."""
    return copy.deepcopy(module).to(memory_format=torch.contiguous_format).eval()


def _example() -> tuple[torch.Tensor, ...]:
    return (torch.zeros(2, 1, 28, 28),)  # 2, not 1: the exporters specialise a batch of one


def _dynamic() -> tuple[dict[int, Any], ...]:
    return ({0: torch.export.Dim("batch")},)


def _program(model: nn.Module) -> torch.export.ExportedProgram:
    return torch.export.export(model, _example(), dynamic_shapes=_dynamic())


def _write_onnx(model: nn.Module, path: Path) -> None:
    program = torch.onnx.export(model, _example(), dynamo=True, dynamic_shapes=_dynamic(), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False)
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path))


def _write_int8(model: nn.Module, path: Path, stage: Path, data_dir: str | None) -> None:
    """The fp32 ONNX file, batch norms folded and shapes inferred (ONNX Runtime's
    pre-processing), quantised statically: ranges from calibration images."""
    quantization = importlib.import_module("onnxruntime.quantization")
    preprocess = importlib.import_module("onnxruntime.quantization.shape_inference")
    fp32, prepared = stage / "fp32.onnx", stage / "prepared.onnx"
    _write_onnx(model, fp32)
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
    )


def calibration_images(data_dir: str | None = None, count: int = CALIBRATION_IMAGES) -> torch.Tensor:
    """`count` training images drawn with a fixed seed, normalised (never test images)."""
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


Runner = Callable[[torch.Tensor], torch.Tensor]  # normalised images -> logits


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


def _check(fmt: str, made: Path, target: Path, outputs: insight.Outputs, weight_bytes: int) -> ExportReport:
    """Run the file on the checkpoint's test images and time it."""
    run, runtime, threads = _runner(fmt, made)
    images = data.normalise(outputs.images)
    predicted = torch.cat([run(chunk).argmax(1) for chunk in torch.split(images, CHECK_BATCH)])
    n = len(outputs)

    def share(same: torch.Tensor) -> float:
        return round(100.0 * int(same.sum()) / n, 3) if n else 0.0

    return ExportReport(
        format=fmt,
        path=str(target),
        run_id=outputs.run_id,
        model=outputs.model,
        epoch=outputs.epoch,
        bytes=made.stat().st_size,
        weight_bytes=weight_bytes,
        images=n,
        accuracy=share(predicted == outputs.labels),
        checkpoint_accuracy=share(outputs.predicted == outputs.labels),
        agreement=share(predicted == outputs.predicted),
        latency_ms={str(b): round(latency_ms(run, images, b), 4) for b in LATENCY_BATCHES},
        runtime=runtime,
        threads=threads,
        cpu=cpu_model(),
        calibration_images=CALIBRATION_IMAGES if fmt == "onnx-int8" else None,
        input=INPUT,
    )


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


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()[:100]
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _weight_bytes(module: nn.Module) -> int:
    return sum(t.numel() * 4 for t in module.state_dict().values() if t.is_floating_point())


__all__ = ["FORMATS", "INSTALL", "ExportError", "ExportReport", "MissingExtra", "calibration_images", "default_out", "export", "latency_ms", "require_extra"]
