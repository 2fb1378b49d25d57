"""What every module of the command line shares.

The program name, :class:`CLIError` (a user error: one line on stderr, exit
status 2) and the helpers that make messages one line and print to stdout.
"""

from __future__ import annotations

import sys
from typing import Any

PROG = "skdeepcluster"


class CLIError(Exception):
    """A user error: reported as one line on stderr, exit status 2."""


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _os_error(exc: OSError) -> str:
    """``reason: path`` of an OSError, as one line."""
    reason = exc.strerror or _one_line(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason
