"""Allow `python -m mnist_tui`."""

from mnist_tui.cli import main

raise SystemExit(main())
