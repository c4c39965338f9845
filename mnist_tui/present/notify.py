"""Telling the user a followed run ended, through the terminal: its bell, and a desktop
notification in the terminal's own escape sequences, so that it works over SSH as well.

OSC 9 (`ESC ] 9 ; text BEL`: iTerm2, kitty, WezTerm, Ghostty, Windows Terminal, ConEmu) and
OSC 777 (`ESC ] 777 ; notify ; title ; body BEL`: foot, urxvt, WezTerm, Ghostty, VTE with
its notify patch) show a desktop notification; a terminal that knows neither ignores them.
Where the terminal is known (TERM, TERM_PROGRAM) one of them is sent, so that a terminal
knowing both shows one notification; elsewhere both. Inside tmux each is wrapped in tmux's
passthrough (`ESC P tmux; ... ESC \\`, with every ESC inside doubled), which tmux 3.3 and
later forward only with `set -g allow-passthrough on`; the bell needs no wrapping.

The setting: MNIST_TUI_NOTIFY=off (nothing), bell (the bell only), osc9, osc777, both, or
auto (the default: the bell and the sequence the terminal is known to show).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mnist_tui.core.events import RunFailed, RunFinished
from mnist_tui.present.text import printable

NOTIFY_ENV = "MNIST_TUI_NOTIFY"
SETTINGS = ("auto", "off", "bell", "osc9", "osc777", "both")
OFF_WORDS = ("off", "0", "no", "false", "none")
BELL = "\a"
TEXT_CAP = 200  # characters of a notification: a desktop notification shows a line or two
TITLE = "mnist-tui"


def setting(environ: Mapping[str, str] | None = None) -> str:
    """MNIST_TUI_NOTIFY as one of SETTINGS (unset or unknown: auto; 0, no, false: off)."""
    value = (os.environ if environ is None else environ).get(NOTIFY_ENV, "").strip().lower()
    if value in OFF_WORDS:
        return "off"
    return value if value in SETTINGS else "auto"


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    return setting(environ) != "off"


def _known_terminal(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The sequences auto sends: the one the terminal is known to show, else both."""
    program, term = environ.get("TERM_PROGRAM", ""), environ.get("TERM", "")
    if program in ("iTerm.app", "ghostty") or term in ("xterm-kitty", "xterm-ghostty") or environ.get("WT_SESSION") or environ.get("KITTY_WINDOW_ID"):
        return ("osc9",)
    if program == "WezTerm" or term.startswith(("foot", "rxvt", "wezterm")) or environ.get("VTE_VERSION"):
        return ("osc777",)
    return ("osc9", "osc777")


def _field(text: str, cap: int = TEXT_CAP) -> str:
    """Text safe inside an OSC: no escapes or control characters (an ESC or BEL would end the
    sequence early, a newline start a new line), no `;` (OSC 777's separator)."""
    return printable(text, one_line=True).replace(";", ",")[:cap]


def _passthrough(sequence: str) -> str:
    """A sequence wrapped for tmux to hand to the terminal it runs in."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def sequences(title: str, body: str, environ: Mapping[str, str] | None = None) -> str:
    """What to write to the terminal for a notification ("" when the setting is off)."""
    environ = os.environ if environ is None else environ
    chosen = setting(environ)
    if chosen == "off":
        return ""
    kinds = {"auto": _known_terminal(environ), "bell": (), "both": ("osc9", "osc777")}.get(chosen, (chosen,))
    title, body = _field(title, 60), _field(body)
    osc = {"osc9": f"\x1b]9;{title}: {body}\a", "osc777": f"\x1b]777;notify;{title};{body}\a"}
    out = [_passthrough(osc[k]) if environ.get("TMUX") else osc[k] for k in kinds]
    return BELL + "".join(out)


def end_words(run_id: str, status: str, epochs: int | None = None, final_acc: float | None = None, reason: str = "") -> str:
    """'20260102T...-v2-1a2b3c finished: 99.12% after 10 epochs' (or why it failed)."""
    said = f"{run_id} {status}"
    if final_acc is not None:
        said += f": {final_acc:.2f}%"
    if epochs is not None:
        said += f" after {epochs} epoch{'s' if epochs != 1 else ''}"
    if reason and status not in ("finished", "stopped"):
        said += f" ({reason})"
    return said


def event_words(ev: RunFinished | RunFailed, run_id: str) -> str:
    """The notification's text for the event that ended a followed run."""
    if isinstance(ev, RunFinished):
        return end_words(run_id, ev.status, ev.epochs_done, ev.final_test_acc)
    return end_words(run_id, ev.status, reason=ev.reason)
