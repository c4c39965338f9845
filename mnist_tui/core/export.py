"""Export a run's last checkpoint as ONNX, int8 ONNX or a torch.export program, checked on the test set.

This module imports no torch (the CLI's parser reads FORMATS); core/exporters.py writes each
format and runs it. Each file is checked before it is kept: run by ONNX Runtime (torch for pt2)
on the test images the run's own test pass used (all 10,000 unless it had --test-limit), its
accuracy, its agreement with the checkpoint (the share of identical predictions, the
checkpoint in fp32), its size and its CPU latency per image at batch 1 and batch 256 go into
an ExportReport, saved beside the file as FILE.json. The file is made in a hidden folder
beside the target and linked into place only once checked; an existing file is never
replaced, and nothing is written elsewhere. The default target is <runs>/exports/<run id><ext>
(default_out), the folder where the app keeps what it exports.

onnx, onnxruntime and onnxscript are an optional extra (`pip install 'mnist-tui[export]'`):
MissingExtra says so when they are absent; pt2 needs torch only.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_tui.core.store import CheckpointError
from mnist_tui.core.store.files import write_json_atomic
from mnist_tui.core.store.records import EXPORTS

FORMATS = {"onnx": ".onnx", "onnx-int8": ".int8.onnx", "pt2": ".pt2"}  # format -> file extension
EXTRA = ("onnx", "onnxruntime", "onnxscript")
INSTALL = "pip install 'mnist-tui[export]'"


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
    from mnist_tui.core import exporters, insight
    from mnist_tui.core.data import DataError

    run_dir = Path(run_dir)
    try:
        net = insight.network(run_dir, "fp32")  # the run's record and checkpoint, checked
        target = _target(run_dir, net.run_id, fmt, out)
        outputs = insight.run_outputs(run_dir, data_dir, "fp32")
    except (CheckpointError, DataError) as exc:
        raise ExportError(f"cannot export {run_dir.name[:80]}: {exc}") from None
    with _staging(target) as stage:
        made = stage / target.name
        try:
            exporters.write(fmt, net.module, made, stage, data_dir)
        except DataError as exc:
            raise ExportError(f"cannot calibrate: {exc}") from None
        except Exception as exc:  # the exporters raise what they like
            raise ExportError(f"exporting to {fmt} failed: {_first_line(exc)}") from None
        try:
            figures = exporters.measure(fmt, made, outputs)
        except Exception as exc:  # a runtime that cannot load or run the file it was given
            raise ExportError(f"checking the {fmt} file failed: {_first_line(exc)}") from None
        report = ExportReport(
            format=fmt,
            path=str(target),
            run_id=outputs.run_id,
            model=outputs.model,
            epoch=outputs.epoch,
            bytes=made.stat().st_size,
            weight_bytes=exporters.weight_bytes(net.module),
            cpu=cpu_model(),
            **figures,
        )
        _publish(made, target, report)
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


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


__all__ = ["EXTRA", "FORMATS", "INSTALL", "ExportError", "ExportReport", "MissingExtra", "cpu_model", "default_out", "export", "require_extra"]
