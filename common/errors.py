"""The one exception type for bad input, shared by every package.

It lives in the lowest package so that every layer can raise it without importing upward. The
command line turns it into a one-line message and a non-zero exit instead of a traceback.
"""


class D2MError(Exception):
    """Bad input or bad configuration: the message names the file, key or value and what is wrong."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that temporary files are cleaned up on the way out.

    A KeyboardInterrupt subclass: code that stops cleanly on Ctrl-C stops the same way on SIGTERM.
    """
