"""The test suite. Its registry reads the fixed copy of the measured figures
(tests/data/measured.json), set here, before anything imports mnist_tui, and inherited by
every process a test starts: a new measurement (mnist_tui/core/measured.json, written by the
benchmarks) changes no snapshot and no expected text."""

import os
from pathlib import Path

os.environ["MNIST_TUI_MEASURED"] = str(Path(__file__).with_name("data") / "measured.json")
