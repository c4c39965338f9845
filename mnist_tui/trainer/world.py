"""A run on N processes of this machine: torchrun's launcher starts N trainers, each
`python -m mnist_tui.trainer CONFIG.json RUN_DIR` (or `--resume RUN_DIR`), and this process
settles the run once they have all ended."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from mnist_tui.trainer.process import exit_code
from mnist_tui.trainer.start import Start


def run_world(nproc: int, rank_args: list[str], run_dir: Path, start: Start | None = None) -> int:
    """Run `python -m mnist_tui.trainer <rank_args>` on `nproc` processes of this machine
    through torchrun's launcher (standalone rendezvous), and settle the run once they have
    all ended: a process that died marks the run failed, naming its rank (the run resumes from
    its last checkpoint); one that died before a new run (`start`) began fails its start.
    Returns the exit status of the run, as a one-process trainer would."""
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # The cores split between the processes, said before torchrun would pick 1 per process:
    # this run's share of them where it shares the CPU (schedule.admit set OMP_NUM_THREADS).
    cores = os.cpu_count() or 1
    given = os.environ.get("OMP_NUM_THREADS", "")
    share = min(int(given), cores) if given.isdigit() and int(given) > 0 else cores
    os.environ["OMP_NUM_THREADS"] = str(max(1, share // nproc))
    if nproc > cores:
        print(f"mnist-tui: note: {nproc} processes share {cores} cores: each waits for the others (slower, same result)", file=sys.stderr)
    args = torchrun.get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "mnist_tui.trainer", *rank_args])
    died = None
    try:
        torchrun.run(args)
    except ChildFailedError as exc:
        died = _who_died(exc.failures)
    except SignalException:
        pass  # Ctrl+C or SIGTERM: the processes got it too, and stop after their batch
    return _settle(run_dir, died, start)


def _who_died(failures: dict) -> str:
    """The process that ended the run: one killed by a signal other than the launcher's
    SIGTERM, else one that exited with an error, else the first."""

    def how(code: int) -> str:
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"

    ranked = sorted(
        failures.items(), key=lambda item: (not (item[1].exitcode < 0 and item[1].exitcode != -signal.SIGTERM), item[1].exitcode in (0, 1, 130), item[0])
    )
    rank, failure = ranked[0]
    return f"rank {rank} {how(failure.exitcode)}"


def _settle(run_dir: Path, died: str | None, start: Start | None) -> int:
    from mnist_tui.core.store import CONFIG, mark_failed, read_run

    if not (run_dir / CONFIG).exists():
        if start is not None:
            start.done_with_handed()
        if not died:
            return 130  # stopped before the run began, or the ranks said why themselves
        return start.failed(f"{died} before the run began") if start is not None else 1
    if start is not None:
        start.began(run_dir)
    record = read_run(run_dir)
    if record.status in ("finished", "stopped"):
        return exit_code(record.status)
    if died and record.status in ("interrupted", "failed") and mark_failed(run_dir, f"{died}; its other processes were stopped"):
        from mnist_tui.present.text import command_name

        print(f"mnist-tui: failed: {died}; {command_name()} resume {record.run_id[-6:]} continues from epoch {record.epochs_done}", file=sys.stderr)
    return 1
