"""`python -m mnist_tui.trainer`: the trainer's entry point (trainer/entry.py)."""

from mnist_tui.trainer.entry import main
from mnist_tui.trainer.process import end_process

end_process(main())
