"""A run's note and tags: notes.json, the one run file its user writes, never its trainer.

notes.json is `{"format": 1, "note": str, "tags": [str, ...]}`. It is read under the same
rules as every run file (a regular file, capped, schema-checked), but it is the user's
addition, not the run: an unreadable notes.json shows as such (Notes.problem) and costs its
run nothing. Writers read, change and replace it atomically while holding a flock on the
run folder itself, so two writers (the app and `mnist-tui tag` in another terminal) never
lose each other's change; the trainer never opens it, so a live run may be annotated.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_tui.core.store import files
from mnist_tui.core.store.schema import SchemaError

NOTES = "notes.json"
NOTES_FORMAT = 1
NOTES_CAP = 64 << 10  # a 4,000-character note and 32 tags take under 20 KB as JSON
NOTE_CAP = 4000  # characters of a note
MAX_TAGS = 32
TAG_CAP = 32  # characters of a tag
# A tag is one word a filter can name (`tag:best`): letters, digits and _ . + -, lower case.
TAG = re.compile(rf"[a-z0-9][a-z0-9_.+-]{{0,{TAG_CAP - 1}}}")


class NotesError(ValueError):
    """A note or tag that cannot be saved; the message says why, in a user's words."""


@dataclass(frozen=True)
class Notes:
    """What notes.json says; `problem` says why it cannot be read ("" when it can, or when
    the run has none)."""

    note: str = ""
    tags: tuple[str, ...] = ()
    problem: str = ""


def check_tag(tag: str) -> str:
    """A tag as it is kept (lower case), or NotesError naming what is wrong with it."""
    kept = tag.strip().lower()
    if not TAG.fullmatch(kept):
        shown = tag[:40].encode("ascii", "backslashreplace").decode()
        raise NotesError(
            f"tag {shown!r} is not one word of at most {TAG_CAP} letters, digits and _ . + - (starting with a letter or digit), e.g. best or lr-0.01"
        )
    return kept


def check_note(note: str) -> str:
    """A note as it is kept (trailing blanks trimmed), or NotesError: at most NOTE_CAP
    characters, no control characters but newlines and tabs."""
    kept = note.rstrip()
    if len(kept) > NOTE_CAP:
        raise NotesError(f"a note is at most {NOTE_CAP:,} characters (this one has {len(kept):,})")
    if any(not c.isprintable() and c not in "\n\t" for c in kept):
        raise NotesError("a note cannot hold control characters or escape sequences")
    return kept


def check_notes(data: dict[str, Any]) -> Notes:
    """notes.json's object, every field checked (SchemaError names the first bad one)."""
    if data.get("format", NOTES_FORMAT) != NOTES_FORMAT:
        raise SchemaError(f"{NOTES} has an unknown format version (this mnist-tui reads {NOTES_FORMAT})")
    note = data.get("note", "")
    if not isinstance(note, str) or len(note) > NOTE_CAP:
        raise SchemaError(f"{NOTES}'s note is not text of at most {NOTE_CAP:,} characters")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise SchemaError(f"{NOTES}'s tags are not a list of at most {MAX_TAGS}")
    kept: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise SchemaError(f"{NOTES} holds a tag that is not text")
        try:
            tag = check_tag(tag)
        except NotesError:
            raise SchemaError(f"{NOTES} holds a tag that is not one word of letters, digits and _ . + -") from None
        if tag not in kept:
            kept.append(tag)
    return Notes(note, tuple(kept))


def read_notes(run_dir: Path) -> Notes:
    """A run's note and tags; empty when it has none, with `problem` when they cannot be
    read. Never raises."""
    path = Path(run_dir) / NOTES
    if not os.path.lexists(path):
        return Notes()
    try:
        return check_notes(files.read_json_object(path, NOTES_CAP))
    except files.FileProblem as exc:
        return Notes(problem=str(exc))


def _locked(run_dir: Path) -> int:
    """A descriptor of the run folder holding an exclusive flock: the notes writers' lock
    (the trainer's is on the `lock` file, which this never touches)."""
    try:
        fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW)
    except OSError as exc:
        raise NotesError(f"{run_dir.name} cannot be opened ({exc.strerror})") from None
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def change_notes(
    run_dir: Path,
    note: str | None = None,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> Notes:
    """Set the note (None: keep it), add and remove tags, and save; the notes as saved.
    NotesError for a bad note or tag, a notes.json that cannot be read (it is left as it
    is: remove it to start again) or a folder that cannot be written."""
    run_dir = Path(run_dir)
    new_note = None if note is None else check_note(note)
    adding, removing = [check_tag(t) for t in add], {check_tag(t) for t in remove}
    fd = _locked(run_dir)
    try:
        old = read_notes(run_dir)
        if old.problem:
            raise NotesError(f"{old.problem}; it was left as it is (remove it to write new notes)")
        tags = [t for t in old.tags if t not in removing]
        tags += [t for t in dict.fromkeys(adding) if t not in tags and t not in removing]
        if len(tags) > MAX_TAGS:
            raise NotesError(f"a run has at most {MAX_TAGS} tags")
        saved = Notes(old.note if new_note is None else new_note, tuple(tags))
        try:
            files.write_json_atomic(run_dir / NOTES, {"format": NOTES_FORMAT, "note": saved.note, "tags": list(saved.tags)})
        except OSError as exc:
            raise NotesError(f"{NOTES} cannot be written in {run_dir.name} ({exc.strerror or exc})") from None
        return saved
    finally:
        os.close(fd)  # releases the flock
