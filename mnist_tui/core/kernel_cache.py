"""A C file built once into a per-user cache, and loaded only as exactly what was built.

core/fused.py's kernels are compiled with the system's compiler (`cc`, or $CC) and loaded with
ctypes, that is, with dlopen, which runs a library's constructors before anything can check
it. So whatever is at the library's name in the cache is untrusted until proven ours:

- The cache folder must be this user's alone (owned, no one else can write), or nothing is
  built or loaded there. Files are opened through the folder's descriptor without following
  symlinks (and without waiting on a FIFO), and must be regular files this user owns that no
  one else can write.
- Each build's sha256 is kept in a record next to it, written under a temporary name and
  renamed. A library is loaded only if its content has that hash, and it is loaded through
  /proc/self/fd from the descriptor that was hashed, so no other file can take its place
  between the check and dlopen. A library that fails any check (a planted symlink, another
  file at its name) is never opened by dlopen: a new build replaces it.
- Builds are keyed without running the compiler: by the source, $CC, the compiler program's
  real path, size and modification time, the flags and the CPU. Only a build runs it.
- A build is one attempt within BUILD_SECONDS, every flag set included, in a session of its
  own whose whole process group is killed when the time runs out. A failed build is recorded
  with its reason and time, and later starts give that reason at once, without running the
  compiler, for FAILURE_KEPT_SECONDS, or until the key changes, or until asked to rebuild.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# One build's whole budget, every flag set included: a build takes about a second, so a
# compiler still running after a minute is hung (a licence server, a wrapper waiting on a lock).
BUILD_SECONDS = 60.0
# How long a failed build is remembered: later starts say why at once instead of trying again.
FAILURE_KEPT_SECONDS = 24 * 3600.0
RECORD_BYTES = 1 << 16  # a record is about 150 bytes; anything longer is not one of ours

_loaded_names: set[str] = set()  # the /proc/self/fd/N names dlopen has seen in this process


class KernelError(RuntimeError):
    """The fused kernels cannot be built or loaded, or gave wrong results."""


class _BuildFailed(KernelError):
    """The compiler failed or ran out of time: recorded, so that later starts skip it."""


def compiler() -> tuple[str, str]:
    """$CC (else `cc`) and the program it names on PATH; KernelError if there is none."""
    name = os.environ.get("CC") or "cc"
    program = shutil.which(name)
    if program is None:
        raise KernelError(f"no C compiler ({name}) on PATH")
    return name, program


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU's model and flags (Linux), else the platform."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    keep = [line for line in lines if line.startswith(("model name", "flags", "Features", "CPU part"))][:4]
    return "\n".join(keep) or platform.platform()


def cache_key(source: Path, flag_sets: Sequence[Sequence[str]], name: str, program: str) -> str:
    """What a build depends on, found without running the compiler: the source, $CC, the
    program's real path, size and modification time (an upgrade changes them), the flags and
    the CPU."""
    info = os.stat(program)
    parts = [source.read_bytes(), name.encode(), os.path.realpath(program).encode(), f"{info.st_size} {info.st_mtime_ns}".encode()]
    parts += [repr([list(flags) for flags in flag_sets]).encode(), _cpu_signature().encode(), sys.platform.encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def library_path(source: Path, flag_sets: Sequence[Sequence[str]], folder: Path) -> Path:
    """Where the library built from `source` with today's compiler is kept in `folder`."""
    name, program = compiler()
    return folder / f"{source.stem}-{cache_key(source, flag_sets, name, program)[:16]}.so"


def _open_folder(folder: Path) -> int:
    """The cache folder, opened: made if missing, refused unless this user's alone (owned,
    no one else can write), since whoever can write there chooses the code we load."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    info = os.fstat(fd)
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        os.close(fd)
        raise KernelError(f"{folder} is not this user's alone (owner or permissions); delete it to rebuild")
    return fd


def _open_own_file(dir_fd: int, name: str) -> int | None:
    """`name` in the folder, opened for reading, or None unless it is a regular file (a
    symlink is never followed, a FIFO never waited on) that this user owns and no one else
    can write."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022:
        return fd
    os.close(fd)
    return None


def _sha256(fd: int) -> str:
    digest, offset = hashlib.sha256(), 0
    while chunk := os.pread(fd, 1 << 20, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _holds(fd: int, sha256: str) -> bool:
    try:
        return _sha256(fd) == sha256
    except OSError:
        return False


def _read_record(dir_fd: int, name: str, key: str) -> dict[str, Any]:
    """The record of the build for `key`, validated: {"sha256": of the library built} or
    {"failed": why, "at": UNIX time}; {} if missing, unreadable or not for this key."""
    fd = _open_own_file(dir_fd, name)
    if fd is None:
        return {}
    try:
        record = json.loads(os.read(fd, RECORD_BYTES))
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)
    if not isinstance(record, dict) or record.get("key") != key:
        return {}
    built, failed, at = record.get("sha256"), record.get("failed"), record.get("at")
    if isinstance(built, str) and len(built) == 64:
        return {"sha256": built}
    if isinstance(failed, str) and isinstance(at, (int, float)) and not isinstance(at, bool) and math.isfinite(at):
        return {"failed": failed[:300], "at": float(at)}
    return {}


def _write_record(dir_fd: int, name: str, record: dict[str, Any]) -> None:
    """Write a record under a unique temporary name and rename it into place; best effort
    (a record that cannot be written costs the next start a build, nothing more)."""
    tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            os.write(fd, json.dumps(record).encode())
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)


def _run_compiler(cmd: list[str], deadline: float) -> tuple[int, str]:
    """One compile, in a session of its own: (exit status, last line of its errors). Past the
    deadline its whole process group (the driver, cc1, as, ld, a wrapper's children) is
    killed and _BuildFailed raised."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a child that outlives the kill cannot hold us
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
        try:
            code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise _BuildFailed(f"{cmd[0]} did not finish the build within {BUILD_SECONDS:g} s (stopped)") from None
        finally:
            if proc.returncode is None:  # not reaped yet, so its process group is still its own
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        errors.seek(0)
        lines = errors.read()[-4096:].decode(errors="replace").strip().splitlines()
    return code, lines[-1] if lines else f"exit {code}"


def _build(source: Path, flag_sets: Sequence[Sequence[str]], name: str, folder: Path, dir_fd: int, library: str) -> tuple[int, str]:
    """Build `source` into `library` in the folder, replacing whatever is there, trying each
    flag set in turn within one budget of BUILD_SECONDS; the built library, opened, and its
    sha256."""
    deadline, error = time.monotonic() + BUILD_SECONDS, "no attempt"
    for flags in flag_sets:
        tmp = f".{library}.{os.getpid()}.{secrets.token_hex(4)}.so"
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o700, dir_fd=dir_fd))
        try:
            code, error = _run_compiler([name, *flags, "-shared", "-fPIC", "-o", str(folder / tmp), str(source), "-lm"], deadline)
            fd = _open_own_file(dir_fd, tmp) if code == 0 else None
            if code == 0 and fd is None:
                error = "the built library is not this user's alone"
            if fd is not None:
                try:
                    os.fchmod(fd, 0o700)  # whatever the linker left: this user's alone
                    os.replace(tmp, library, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # replaces a planted symlink, never follows it
                    return fd, _sha256(fd)
                except BaseException:
                    os.close(fd)
                    raise
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
    raise _BuildFailed(f"{name} could not build {source.name}: {error}")


def _dlopen(fd: int) -> ctypes.CDLL:
    """Load exactly the opened file, through /proc/self/fd: no path left to swap between the
    checks and dlopen. Each name is new to this process, since dlopen hands back whatever it
    loaded before under a name it has seen."""
    lowest = 3
    while True:
        alias = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
        path = f"/proc/self/fd/{alias}"
        if path not in _loaded_names:
            break
        os.close(alias)
        lowest = alias + 1
    try:
        _loaded_names.add(path)
        return ctypes.CDLL(path)
    finally:
        os.close(alias)


def _remembered(failure: dict[str, Any], rebuild_hint: str) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(failure["at"]))
    return f"{failure['failed']} (at {when}; not tried again for a day or until the compiler or the source changes; {rebuild_hint} tries now)"


def _load_or_build(source: Path, flag_sets: Sequence[Sequence[str]], folder: Path, dir_fd: int, rebuild: bool, rebuild_hint: str) -> ctypes.CDLL:
    name, program = compiler()
    key = cache_key(source, flag_sets, name, program)
    library, record_name = f"{source.stem}-{key[:16]}.so", f"{source.stem}-{key[:16]}.json"
    record = {} if rebuild else _read_record(dir_fd, record_name, key)
    if "failed" in record and 0 <= time.time() - record["at"] < FAILURE_KEPT_SECONDS:
        raise KernelError(_remembered(record, rebuild_hint))
    fd = _open_own_file(dir_fd, library) if "sha256" in record else None
    if fd is not None and not _holds(fd, record["sha256"]):
        os.close(fd)
        fd = None
    if fd is None:
        try:
            fd, digest = _build(source, flag_sets, name, folder, dir_fd, library)
        except _BuildFailed as exc:
            failure = {"key": key, "failed": str(exc), "at": time.time()}
            _write_record(dir_fd, record_name, failure)
            raise KernelError(_remembered(failure, rebuild_hint)) from exc
        _write_record(dir_fd, record_name, {"key": key, "sha256": digest})
    try:
        return _dlopen(fd)
    finally:
        os.close(fd)


def load(source: Path, flag_sets: Sequence[Sequence[str]], folder: Path, *, rebuild: bool = False, rebuild_hint: str = "a rebuild") -> ctypes.CDLL:
    """The library built from `source` and kept in `folder`, built there first if it is
    missing, is not what was built, or `rebuild`; KernelError saying why if it cannot be."""
    try:
        dir_fd = _open_folder(folder)
        try:
            return _load_or_build(source, flag_sets, folder, dir_fd, rebuild, rebuild_hint)
        finally:
            os.close(dir_fd)
    except (OSError, subprocess.SubprocessError) as exc:
        raise KernelError(str(exc)) from exc
