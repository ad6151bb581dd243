"""One exception type for every error a person can fix.

Library code raises :class:`CpnasError` with a message that names the bad value
and the remedy; the CLI prints that message on one line (no traceback) and exits
non-zero (:func:`exit_status`). Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

EXIT_USER_ERROR = 2
"""The exit status of a command stopped by a :class:`CpnasError`."""


class CpnasError(Exception):
    """An error caused by the user's input (a path, a file, a flag), not by a bug."""


def exit_status(prog: str, work: Callable[[], int | None]) -> int:
    """Run a command's ``work`` and return its exit status.

    ``work`` returns its status (``None`` means 0). A :class:`CpnasError` becomes one
    line, ``<prog>: error: <message>``, on stderr and :data:`EXIT_USER_ERROR`.
    """
    try:
        return int(work() or 0)
    except CpnasError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
