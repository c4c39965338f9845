"""Training: train(config, stop) and resume(run_dir, stop) yield events and keep the run store
up to date.

A run goes through named phases, each in its own module: session.py builds what it trains
with (raising only setup errors), folder.py opens its run folder under its lock (resume.py
reopens one and restores its checkpoint), loop.py trains epoch after epoch (steps, then the
test pass) into a sink.RunSink, and ranks.py holds what differs under torch.distributed.
"""

from mnist_tui.core.train.loop import train
from mnist_tui.core.train.resume import resume

__all__ = ["resume", "train"]
