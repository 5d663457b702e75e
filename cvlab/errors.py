"""Errors that are the user's to fix: the CLI prints them as one line and exits 2."""


class UserError(Exception):
    """A mistake the user can fix (bad value, missing dataset, wrong checkpoint).

    The message is one line: what was wrong, what is allowed, how to fix it.
    """



def error_line(err: BaseException) -> str:
    """`Type: first line of the message` of an exception that is not the user's to fix."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
