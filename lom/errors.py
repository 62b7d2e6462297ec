"""The one exception type that reaches the user as a single line instead of a traceback."""


class LOMError(Exception):
    """A problem the user can fix (bad flag, missing or corrupt file, ...).

    The message names the problem and the fix; command-line entry points print it as one line and exit non-zero.
    """
