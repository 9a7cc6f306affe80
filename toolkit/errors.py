"""The one exception type that reaches the user as a plain message instead of a traceback."""


class P2Error(Exception):
    """Bad input or a mismatched file: the message names the file or value and what to do."""
