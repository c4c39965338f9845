"""`export`: a run's last checkpoint as ONNX, int8 ONNX or a torch.export program, checked."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mnist_tui.cli.common import absolute, find, say


def cmd_export(args: argparse.Namespace) -> int:
    from mnist_tui.core.export import ExportError, export
    from mnist_tui.present.exports import report_lines

    run_dir = find(args, "export")
    out = Path(args.out).expanduser() if args.out else None
    try:
        report = export(run_dir, args.format, out, absolute(args.data))
    except (ExportError, OSError) as exc:
        say(str(getattr(exc, "strerror", None) or exc), "export")
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))  # JSON escapes control characters itself
    else:
        print("\n".join(report_lines(report)))
    sys.stdout.flush()
    return 0
