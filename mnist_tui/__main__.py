"""Allow `python -m mnist_tui`."""

from mnist_tui.cli import run

run()
