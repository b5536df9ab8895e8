"""The errors keras_elmo raises about what a user gave it.

`ElmoError` marks an expected problem with the user's input (a file, a
line, an option value), not a bug: the command line prints such an error
as one line and exits with status 2, and lets every other exception keep
its traceback. The concrete classes also derive from the built-in type a
Python caller would catch (`ValueError`, `FileNotFoundError`).
"""


class ElmoError(Exception):
    """Base class: an expected error about the user's input."""


class InputError(ElmoError, ValueError):
    """A file, line, token or option value that cannot be used as given."""


class MissingFileError(ElmoError, FileNotFoundError):
    """A file or directory the user named does not exist."""
