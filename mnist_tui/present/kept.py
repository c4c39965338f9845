"""What is kept beside a run's figures, in words: its note and tags (notes.json) and where its
code and machine came from (config.json's stamp), for a run's detail and `mnist-tui note`."""

from __future__ import annotations

from mnist_tui.core.store.notes import Notes
from mnist_tui.core.store.provenance import CODE_DIFF, Stamp
from mnist_tui.present.text import printable


def notes_lines(notes: Notes) -> list[str]:
    """'note: ...' and 'tags: ...' ('-' for none), or why notes.json cannot be read."""
    if notes.problem:
        return [f"notes: unreadable ({printable(notes.problem, one_line=True)})"]
    return [f"note: {printable(notes.note) if notes.note else '-'}", f"tags: {' '.join(notes.tags) if notes.tags else '-'}"]


def code_line(stamp: Stamp) -> str:
    """'code: mnist-tui 0.1.0, commit 36c17795 + uncommitted changes (45,345 bytes, sha256
    da0cdd60…, in code.diff)'."""
    said = f"code: mnist-tui {printable(stamp.mnist_tui, one_line=True) or '?'}"
    git = stamp.git
    if git is None:
        return f"{said}, {printable(stamp.git_problem, one_line=True) or 'no git checkout'}"
    said += f", commit {git.commit[:12]}"
    if not git.dirty:
        return said + " (clean)"
    sha = f", sha256 {git.diff_sha256[:12]}…" if git.diff_sha256 else ""
    kept = f", in {CODE_DIFF}" if git.diff_saved else f", too large to keep in {CODE_DIFF}"
    return said + f" + uncommitted changes ({git.diff_bytes:,} bytes{sha}{kept})"


def machine_line(stamp: Stamp) -> str:
    """'machine: CPython 3.11.7 · torch 2.5.1 · CUDA 12.4 · cuDNN 9.1.0 · AMD EPYC · GPU none'."""
    parts = [stamp.python, f"torch {stamp.torch}" if stamp.torch else ""]
    parts += [f"CUDA {stamp.cuda}" if stamp.cuda else "no CUDA", f"cuDNN {stamp.cudnn}" if stamp.cudnn else ""]
    parts += [stamp.cpu, f"GPU {stamp.gpu}" if stamp.gpu else "no GPU"]
    return "machine: " + printable(" · ".join(p for p in parts if p), one_line=True)


def stamp_lines(stamp: Stamp | None, problem: str) -> list[str]:
    """The stamp in two lines; one saying why when it is missing or unreadable."""
    if problem:
        return [f"stamp: unreadable ({printable(problem, one_line=True)})"]
    if stamp is None:
        return ["stamp: none (the run was made before mnist-tui recorded one)"]
    return [code_line(stamp), machine_line(stamp)]
