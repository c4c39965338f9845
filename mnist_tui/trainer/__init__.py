"""The trainer: the process that owns a run, how it is launched, and how it ends.

launch.py   start a detached trainer (the app, `--detach`) and tell how it is doing
entry.py    `python -m mnist_tui.trainer`: the one entry point of every trainer process
run.py      train or resume here, or on N processes (what the entry and the CLI share)
start.py    a new run's start, and the one place that records a failed one
world.py    N processes through torchrun's launcher, and settling the run when they end
process.py  signals, the exit-code table, and how the process ends
"""

from mnist_tui.trainer.launch import LOG, Launch, Launcher, LaunchError, ProcessLauncher, hand_over, processes_of, reserve_name
from mnist_tui.trainer.process import EXIT_CODES, REFUSED, end_process, exit_code, handle_stop_signals, run_over

__all__ = [
    "EXIT_CODES",
    "LOG",
    "REFUSED",
    "Launch",
    "LaunchError",
    "Launcher",
    "ProcessLauncher",
    "end_process",
    "exit_code",
    "hand_over",
    "handle_stop_signals",
    "processes_of",
    "reserve_name",
    "run_over",
]
