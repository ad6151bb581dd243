"""One exception type for every error a person can fix.

Library code raises :class:`CpnasError` with a message that names the bad value
and the remedy; the CLI prints that message on one line (no traceback) and exits
non-zero. Anything else escaping is a bug and keeps its traceback.
"""


class CpnasError(Exception):
    """An error caused by the user's input (a path, a file, a flag), not by a bug."""
