"""The one exception type the command line turns into a one-line message."""


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it.

    The CLI prints ``error: <message>`` and exits with status 2, without a traceback.
    Raise it for anything a user can correct (paths, config keys, mismatched files);
    let genuine bugs raise their own exceptions.
    """
