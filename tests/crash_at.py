"""Run the mnist-tui CLI, killing this process with SIGKILL at a chosen point (a crash test).

Usage: python tests/crash_at.py POINT ARGS... where POINT is one of
  training          during epoch 1's training, before any metrics line or checkpoint
  after-metrics     after epoch 1's metrics line, before its checkpoint is written
  checkpoint-rename after epoch 1's checkpoint is written to its temporary file, before the rename
"""

from __future__ import annotations

import os
import signal
import sys

from mnist_tui.core.store import files, writer


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    point, args = sys.argv[1], sys.argv[2:]
    if point == "training":
        real_progress = writer.RunWriter.progress

        def progress(self, fields):
            real_progress(self, fields)
            if fields.get("phase") == "training" and fields.get("batch", 0) >= 2:
                die()

        writer.RunWriter.progress = progress
    elif point == "after-metrics":
        writer.RunWriter.save_checkpoint = lambda self, ckpt: die()
    elif point == "checkpoint-rename":
        real_replace = os.replace

        def replace(src, dst):
            if str(dst).endswith("checkpoint.pt"):
                die()
            real_replace(src, dst)

        files.os.replace = replace  # type: ignore[attr-defined]
    else:
        raise SystemExit(f"unknown point {point}")
    from mnist_tui import cli

    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
