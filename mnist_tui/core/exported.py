"""An exported model file (`mnist-tui export`'s .onnx, .int8.onnx or .pt2) behind one
interface, for `mnist-tui eval FILE` and `mnist-tui predict FILE IMAGE`.

The file and its report are untrusted input. The file is read once, a regular file of at
most MAX_FILE_BYTES, and parsed from memory: ONNX by ONNX Runtime, refused when it points at
external data (a model naming other files of this machine); pt2 by torch.export.load, which
unpickles with weights_only=False, so every torch.load it makes is forced to weights only
(torch's TORCH_FORCE_WEIGHTS_ONLY_LOAD) and an archive holding pickled objects of any other
kind is refused before it is opened. The report FILE.json, when it lies beside the file, is
read under the store's JSON checks: the run, model and epoch the file came from, the test
images it was checked on (the run's --test-limit subset) and the input's normalisation.
Without a report the file is fed MNIST's normalisation and evaluated on all test images.
"""

from __future__ import annotations

import importlib
import io
import logging
import math
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mnist_tui.core import data
from mnist_tui.core.export import FORMATS, INSTALL
from mnist_tui.core.insight import Outputs
from mnist_tui.core.store.files import FileProblem, read_bytes, read_json_object

MAX_FILE_BYTES = 64 << 20  # v1, the largest network, is 1.7 MB as ONNX and as pt2
SUFFIXES = (".onnx", ".pt2")
CHUNK = 500  # test images per call
# What core/exporters.py writes as the report's input.pixels: "(pixel / 255 - MEAN) / STD, ..."
PIXELS = re.compile(r"\(pixel / 255 - (\d+(?:\.\d+)?)\) / (\d+(?:\.\d+)?)(?:,|$)")

Runner = Callable[[torch.Tensor], torch.Tensor]  # normalised (N, 1, 28, 28) -> (N, 10) logits


class ExportedError(ValueError):
    """An exported file that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Exported:
    """An exported model, loaded, and what its report said of it (None where it had none)."""

    path: Path
    format: str  # onnx, onnx-int8 or pt2
    run_id: str | None
    model: str | None
    epoch: int | None
    images: int | None  # the test images it was checked on
    mean: float
    std: float
    run: Runner

    @property
    def precision(self) -> str:
        return "int8" if self.format == "onnx-int8" else "fp32"

    @property
    def described(self) -> str:
        """The model and format in words: 'v2 onnx-int8', or the format alone."""
        return f"{self.model} {self.format}" if self.model else self.format

    def normalise(self, digits: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 28, 28) to the file's input, as its report says it was trained."""
        return digits.unsqueeze(1).float().div_(255.0).sub_(self.mean).div_(self.std)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        try:
            out = self.run(x.contiguous())
        except Exception as exc:  # the runtime raises what it likes for a graph that does not fit
            raise ExportedError(f"{self.path.name} cannot be run on MNIST digits: {_first_line(exc)}") from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), 10):
            raise ExportedError(f"{self.path.name} does not give 10 digits' scores an image")
        return out.float()

    def probabilities(self, digits: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 28, 28) digits to (N, 10) class probabilities."""
        return self.logits(self.normalise(digits)).softmax(1)

    def outputs(self, data_dir: str | None = None) -> Outputs:
        """The file on the test images its report names (all of them without one), as a
        run's evaluation: the same figures and tables follow from it."""
        _, test = data.load(data_dir)
        n = len(test) if self.images is None else min(self.images, len(test))
        logits = torch.cat([self.logits(self.normalise(chunk)) for chunk in torch.split(test.images[:n], CHUNK)])
        epoch = self.epoch if self.epoch is not None else 0
        return Outputs(self.path.name, self.described, epoch, self.precision, logits.softmax(1), logits.argmax(1), test.labels[:n], test.images[:n])


def load(path: Path) -> Exported:
    """The exported file at `path` with its report, ready to run; ExportedError in one line."""
    path = Path(path)
    if not path.name.lower().endswith(SUFFIXES):
        raise ExportedError(f"{path.name} is not an exported model (an .onnx or .pt2 file from mnist-tui export)")
    try:
        blob = read_bytes(path, MAX_FILE_BYTES) if os.path.exists(path) else None
    except FileProblem as exc:
        raise ExportedError(str(exc)) from None
    if blob is None:
        raise ExportedError(f"{path} does not exist")
    report = _report(path)
    fmt = "pt2" if path.name.lower().endswith(".pt2") else "onnx-int8" if path.name.lower().endswith(".int8.onnx") else "onnx"
    if report.get("format") in FORMATS and (report["format"] == "pt2") == (fmt == "pt2"):
        fmt = report["format"]
    run = _pt2_runner(path, blob) if fmt == "pt2" else _onnx_runner(path, blob)
    mean, std = report.get("normalisation", (data.MNIST_MEAN, data.MNIST_STD))
    return Exported(path, fmt, report.get("run_id"), report.get("model"), report.get("epoch"), report.get("images"), mean, std, run)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _report(path: Path) -> dict[str, Any]:
    """What FILE.json says, each field checked; {} without one; ExportedError if it is damaged."""
    beside = path.with_name(path.name + ".json")
    if not os.path.lexists(beside):
        return {}
    try:
        raw = read_json_object(beside)
    except FileProblem as exc:
        raise ExportedError(f"{exc}; it should be the export's report (remove it to use MNIST's normalisation)") from None
    found: dict[str, Any] = {}
    for key in ("run_id", "model", "format"):
        if isinstance(raw.get(key), str):
            found[key] = raw[key][:100]
    for key, most in (("epoch", 1_000_000), ("images", 1_000_000)):
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= most:
            found[key] = value
    pixels = raw.get("input", {}).get("pixels") if isinstance(raw.get("input"), dict) else None
    match = PIXELS.match(pixels) if isinstance(pixels, str) else None
    if match is None:
        raise ExportedError(f"{beside.name} does not say how pixels are normalised (input.pixels); remove it to use MNIST's")
    mean, std = float(match[1]), float(match[2])
    if not (0 <= mean <= 1 and 0 < std <= 1 and math.isfinite(mean + std)):
        raise ExportedError(f"{beside.name} gives a normalisation no MNIST image has (mean {mean}, std {std})")
    found["normalisation"] = (mean, std)
    return found


def _onnx_runner(path: Path, blob: bytes) -> Runner:
    try:
        onnx, ort = importlib.import_module("onnx"), importlib.import_module("onnxruntime")
    except ImportError:
        raise ExportedError(f"running an ONNX file needs onnx and onnxruntime, which are not installed: {INSTALL}") from None
    try:
        model = onnx.load_from_string(blob)
    except Exception:  # protobuf's decode error, or anything else a parser of untrusted bytes raises
        raise ExportedError(f"{path.name} is not an ONNX model") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(model.graph)):
        raise ExportedError(f"{path.name} keeps its weights in other files (external data), which are not read")
    try:
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        [given] = session.get_inputs()
    except Exception as exc:
        raise ExportedError(f"{path.name} cannot be loaded by ONNX Runtime: {_first_line(exc)}") from None
    if len(given.shape) != 4 or list(given.shape[1:]) != [1, 28, 28] or "float" not in str(given.type):
        raise ExportedError(f"{path.name} does not take MNIST images (its input is {given.type} {given.shape})")

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {given.name: x.numpy()})[0])

    return run


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of an ONNX graph: initializers and constants, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            for sub in [*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs]:
                yield from _tensors(sub)


def _pt2_runner(path: Path, blob: bytes) -> Runner:
    _refuse_pickled_objects(path, blob)
    try:
        with _weights_only(), _quiet("torch.export"):
            module = torch.export.load(io.BytesIO(blob)).module()
    except Exception as exc:
        reason = _first_line(exc).replace(" Please check the warnings above for possible errors.", "")  # warnings kept quiet
        raise ExportedError(f"{path.name} cannot be loaded as a torch.export program: {reason}") from None

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out: torch.Tensor = module(x)
        return out

    return run


def _refuse_pickled_objects(path: Path, blob: bytes) -> None:
    """A pt2 archive's constants may be pickled Python objects that torch.export.load
    unpickles freely: refused, as is anything that is not a zip archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise ExportedError(f"{path.name} is not a torch.export program (a .pt2 archive)") from None
    objects = [n for n in names if "/constants/" in n and os.path.basename(n).startswith(("custom_obj", "opaque_obj"))]
    if objects:
        raise ExportedError(f"{path.name} holds pickled Python objects ({os.path.basename(objects[0])}), which are not loaded")


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """A library's logger silent in the block: its failure is said once, in one line."""
    logger = logging.getLogger(name)
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before


@contextmanager
def _weights_only() -> Iterator[None]:
    """Every torch.load in the block unpickles tensors only, whatever its caller asked."""
    before = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = before


__all__ = ["MAX_FILE_BYTES", "SUFFIXES", "Exported", "ExportedError", "load"]
