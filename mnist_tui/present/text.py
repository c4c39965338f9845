"""Text from files and folder names made safe for a terminal, and the commands to paste."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path

from mnist_tui.core.store import default_runs_dir

# Terminal control sequences: CSI (ESC [ or its C1 form, parameters, a final byte); a string
# (OSC ESC ], DCS ESC P, SOS ESC X, PM ESC ^, APC ESC _, or their C1 forms) up to BEL or ST;
# any other ESC with its intermediate and final bytes. Then any control character left over:
# C0 but tab and newline, DEL, and C1 (which some terminals read as ESC and a letter).
_SEQUENCES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b[\]PX^_]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)|\x1b[ -/]*[0-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


_SURROGATES = re.compile("[\ud800-\udfff]")


def printable(text: str, one_line: bool = False) -> str:
    """Text from a file or a folder's name, safe to print to a terminal: escape sequences and
    control characters taken out (an `ESC[2J` in a model name would clear the screen, an
    `ESC]0;` retitle the window), everything else kept as it was. `one_line`: newlines and
    tabs become spaces too, for a line or a table cell."""
    if text.isprintable():  # the usual case, at C speed: nothing to take out
        return text
    # A lone surrogate (a JSON \ud800 escape, a folder name that is not UTF-8) cannot be
    # encoded for any terminal: print() would raise. It shows as the replacement character.
    text = _SURROGATES.sub("\ufffd", _CONTROLS.sub("", _SEQUENCES.sub("", text)))
    return text.replace("\n", " ").replace("\t", " ") if one_line else text


def command_name() -> str:
    """The mnist-tui command as the user can type it, for hints to paste: `mnist-tui` where
    that name on PATH is this install; else this install's script (`.venv/bin/mnist-tui`
    after `make run`: relative to the current folder when inside it); else
    `python -m mnist_tui` with this Python."""
    scripts = [Path(sysconfig.get_path("scripts")), Path(sysconfig.get_path("scripts", f"{os.name}_user"))]
    ours = [folder / ("mnist-tui.exe" if os.name == "nt" else "mnist-tui") for folder in scripts]
    if sys.argv and Path(sys.argv[0]).name in ("mnist-tui", "mnist-tui.exe"):
        ours.insert(0, Path(sys.argv[0]))  # the script running now
    ours = [p for p in ours if p.is_file()]
    on_path = shutil.which("mnist-tui")
    if on_path and any(_same_file(on_path, p) for p in ours):
        return "mnist-tui"
    if ours:
        return shlex.quote(_as_typed(ours[0]))
    python = shutil.which("python")
    return f"{'python' if python and _same_file(python, sys.executable) else shlex.quote(sys.executable)} -m mnist_tui"


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _as_typed(path: Path) -> str:
    """A path as short as it can be typed from here: relative inside the current folder."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except (ValueError, OSError):  # outside it, or the current folder was deleted
        return str(absolute)


def with_article(number: int | str) -> str:
    """'a 7', 'an 8', 'an 11', 'an 18,000': the article as the number is read aloud."""
    digits = str(number).replace(",", "")
    vowel = digits.startswith("8") or (len(digits) % 3 == 2 and digits.startswith(("11", "18")))
    return f"{'an' if vowel else 'a'} {number}"


def digit_caption(index: int, label: int) -> str:
    """'test digit #1234 (an 8)': a test image named on the screens that show one."""
    return f"test digit #{index} ({with_article(label)})"


def run_hint(run_dir: Path) -> str:
    """The commands that follow and stop a run, ready to paste (with its runs folder when
    that is not the default one)."""
    short = run_dir.name[-6:]
    where = "" if Path(run_dir).parent.resolve() == default_runs_dir().resolve() else f" --runs {shlex.quote(str(run_dir.parent))}"
    command = command_name()
    return f"follow it: {command} follow {short}{where} · stop it: {command} stop {short}{where}"
