"""The sweep's job logs ($LOG_PATH/logs/<dataset>__<agent>__seed<S>.log) and the shell-quoted command lines it
prints and writes.

Each start of train.py is marked in its log by a line "=== <date time>: <command>", each end by
"=== <date time>: exit <status>": the lines `lom.report --status` reads (their format: lom/run_folder.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

from lom.run_folder import RECORD_PREFIX, RECORD_TIME_FORMAT

# Dataset names may hold characters that do not belong in a file name (minari:<id>/...).
UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")
# Characters bash's `printf %q` escapes with a backslash anywhere in a word.
SHELL_SPECIAL = frozenset(" \t'\"\\|&;()<>!{}*[?]^$`,")
# The failure line of a failed run shows at most this much of its log's last line.
LAST_LINE_WIDTH = 200
# Exit status of a process ended by a signal, as a shell reports it: 128 + the signal's number.
SIGNAL_STATUS_BASE = 128


def log_name(dataset: str, agent: str, seed: int) -> str:
    return f"{UNSAFE_IN_NAME.sub('_', dataset)}__{agent}__seed{seed}.log"


def bash_quote(word: str) -> str:
    """`word` as bash's `printf %q` writes it: runnable as it is, and unchanged when nothing in it is special."""
    if not word:
        return "''"
    if not word.isprintable():
        return "$'" + "".join(_ansi_c(ch) for ch in word) + "'"
    out = []
    for i, ch in enumerate(word):
        tilde = ch == "~" and (i == 0 or word[i - 1] in "=:")
        if ch in SHELL_SPECIAL or (ch == "#" and i == 0) or tilde:
            out.append("\\")
        out.append(ch)
    return "".join(out)


def _ansi_c(ch: str) -> str:
    """One character inside bash's $'...' quotes."""
    escapes = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", "'": "\\'"}
    if ch in escapes:
        return escapes[ch]
    return ch if ch.isprintable() else "".join(f"\\x{byte:02x}" for byte in ch.encode())


def shell_line(argv: Sequence[str]) -> str:
    """A command as one line that a shell runs as it is."""
    return " ".join(bash_quote(word) for word in argv)


def now() -> str:
    return time.strftime(RECORD_TIME_FORMAT)


def start_record(argv: Sequence[str]) -> str:
    return f"{RECORD_PREFIX}{now()}: {shell_line(argv)}\n"


def exit_record(status: int) -> str:
    return f"{RECORD_PREFIX}{now()}: exit {status}\n"


def shell_status(returncode: int) -> int:
    """A subprocess's return code as a shell reports it (killed by signal n: 128 + n), as lom.report reads it."""
    return SIGNAL_STATUS_BASE - returncode if returncode < 0 else returncode


def append(logs: Sequence[Path], text: str) -> None:
    for log in logs:
        with open(log, "a") as out:
            out.write(text)


def last_line(log: Path) -> str:
    """The last non-blank line of a log that the sweep did not write itself (tqdm bars end in \\r, not \\n)."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    lines = [line for line in text.replace("\r", "\n").split("\n")
             if line.strip() and not line.startswith(RECORD_PREFIX)]
    return lines[-1][:LAST_LINE_WIDTH] if lines else ""

