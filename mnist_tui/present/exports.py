"""An export's check in words (`mnist-tui export`, and the app when it shows one)."""

from __future__ import annotations

from mnist_tui.core.export import ExportReport
from mnist_tui.present.text import printable


def size(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.2f} MiB"


def report_lines(report: ExportReport) -> list[str]:
    """The headline and one line per figure; names from files made terminal-safe."""
    run_id, model, path = (printable(text, one_line=True) for text in (report.run_id, report.model, report.path))
    ms = report.latency_ms
    lines = [
        f"exported {run_id} ({model}, epoch {report.epoch}) as {report.format}: {path}",
        f"  size       {size(report.bytes)}, {report.smaller:.2f}x smaller than its fp32 weights ({size(report.weight_bytes)})",
        f"  accuracy   {report.accuracy:.2f}% on {report.images:,} test images (the checkpoint: {report.checkpoint_accuracy:.2f}%)",
        f"  agreement  {report.agreement:.2f}% of predictions the same as the checkpoint's",
        f"  latency    {ms.get('1', 0.0):.3f} ms an image at batch 1, {ms.get('256', 0.0):.4f} at batch 256"
        f" ({printable(report.runtime, one_line=True)}, {report.threads} threads, {printable(report.cpu, one_line=True)})",
    ]
    if report.calibration_images:
        lines.append(f"  int8       ranges calibrated on {report.calibration_images} training images")
    lines.append(f"  report     {path}.json")
    return lines
