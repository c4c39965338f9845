"""`note` and `tag`: what the user keeps beside a run (core/store/notes.py), and the
`--notify` option of `train` and `follow`."""

from __future__ import annotations

import argparse

from mnist_tui.cli.common import find, say


def add_parsers(sub, parents: dict[str, argparse.ArgumentParser]) -> None:
    """The `note` and `tag` commands."""
    n = sub.add_parser("note", parents=[parents["run"], parents["runs"]], help="set a run's note, or print it (a run still training may be noted)")
    n.add_argument("text", nargs="?", help='the note ("" clears it); without it, the note and tags are printed')
    t = sub.add_parser("tag", parents=[parents["run"], parents["runs"]], help="tag a run (runs --filter tag:NAME finds it), or print its tags")
    t.add_argument("tags", nargs="*", metavar="TAG", help="tags to add, one word each: letters, digits and _ . + - (kept in lower case)")
    t.add_argument("--untag", nargs="+", default=[], metavar="TAG", help="tags to remove")


def notify_option(parser: argparse.ArgumentParser, by_default: bool) -> None:
    """--notify / --no-notify: the bell and a desktop notification when the run ends."""
    default = "on a terminal unless MNIST_TUI_NOTIFY=off" if by_default else "off"
    parser.add_argument(
        "--notify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"ring the terminal's bell and show a desktop notification (OSC 9 / OSC 777) when the run ends (default: {default})",
    )


def _show(notes) -> None:
    from mnist_tui.present.kept import notes_lines

    print("\n".join(notes_lines(notes)))


def cmd_note(args: argparse.Namespace) -> int:
    from mnist_tui.core.store.notes import NotesError, change_notes, read_notes

    run_dir = find(args, "note")
    if args.text is None:
        _show(read_notes(run_dir))
        return 0
    try:
        change_notes(run_dir, note=args.text)
    except NotesError as exc:
        say(str(exc), "note")
        return 1
    from mnist_tui.present.text import printable

    print(f"{'cleared the note of' if not args.text.strip() else 'noted'} {printable(run_dir.name, one_line=True)}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from mnist_tui.core.store.notes import NotesError, change_notes, read_notes

    run_dir = find(args, "tag")
    if not args.tags and not args.untag:
        _show(read_notes(run_dir))
        return 0
    try:
        saved = change_notes(run_dir, add=args.tags, remove=args.untag)
    except NotesError as exc:
        say(str(exc), "tag")
        return 1
    from mnist_tui.present.text import printable

    print(f"{printable(run_dir.name, one_line=True)}: tags {' '.join(saved.tags) if saved.tags else '-'}")
    return 0
