"""A remote run's heartbeat, judged by this reader's clocks, never by the writer's.

A trainer rewrites status.json every HEARTBEAT_S (writer.py). A run whose status.json names
another host holds a lock this host cannot see, so it counts as alive until its status.json
has not changed for STALE_AFTER_S. The `updated` time inside the file is the other host's
clock, which may be wrong by any amount (a file saying 2999 would be fresh forever), so it
is not used: what counts is when this process saw the file change (a monotonic clock,
remembered for the process's life) and, for a file it has not yet seen change, the file's
modification time (set by the disk the hosts share, and the same for every reader).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

STALE_AFTER_S = 600.0  # a remote run silent this long (20 missed heartbeats) may be forced
# A modification time this far in the future is no clock skew but a wrong clock or a touched
# file: how long the file has been silent is then unknown, and the run may be forced.
FUTURE_TOLERANCE_S = STALE_AFTER_S
MEMORY = 4096  # status files remembered (remote runs only: a few in practice)

Signature = tuple[int, int, int]  # inode, size, mtime_ns: a rewrite (a rename over it) changes it
_seen: dict[str, tuple[Signature, float, float | None]] = {}  # path -> (signature, monotonic then, silence then)
_guard = threading.Lock()  # the app's watcher and its screens read runs from several threads


def silent_for(status_path: Path) -> float | None:
    """Seconds status_path has gone without a change as far as this process can tell, or
    None when it cannot tell (no file, or a modification time far in the future)."""
    try:
        st = os.stat(status_path)
    except OSError:
        return None
    signature = (st.st_ino, st.st_size, st.st_mtime_ns)
    now = time.monotonic()
    key = str(status_path)
    with _guard:
        seen = _seen.get(key)
        if seen is None or seen[0] != signature:
            # Seen changing: it was written since the last look. Seen for the first time: as
            # old as its modification time says, unless that is far in the future.
            since_write = time.time() - st.st_mtime
            silence = 0.0 if seen is not None else (max(0.0, since_write) if since_write > -FUTURE_TOLERANCE_S else None)
            seen = (signature, now, silence)
            _seen.pop(key, None)
            _seen[key] = seen
            while len(_seen) > MEMORY:
                del _seen[next(iter(_seen))]
    _, first_seen, silence = seen
    return None if silence is None else silence + (now - first_seen)


def is_stale(silence: float | None) -> bool:
    """Whether a remote run silent this long (None: for an unknown time) may be taken over."""
    return silence is None or silence > STALE_AFTER_S


def forget() -> None:
    """Drop what this process has seen (tests that play several processes)."""
    with _guard:
        _seen.clear()
