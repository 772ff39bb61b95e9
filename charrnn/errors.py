"""The library's own error type: a message meant for the user, and an exit code.

The library raises these; only the CLI turns them into one line on stderr.
"""


class CharrnnError(Exception):
    """A mistake the user can fix. `str(err)` is the whole one-line message."""

    exit_code = 1


class UsageError(CharrnnError):
    """A flag value out of range or a combination that makes no sense."""

    exit_code = 2


class CorpusError(CharrnnError):
    """A corpus (or prime/eval text) that cannot be read or used."""


class CheckpointError(CharrnnError):
    """A checkpoint that cannot be read, is not ours, or is damaged."""


class CharrnnWarning(UserWarning):
    """Something the user should know that does not stop the work (characters a model lacks).
    The library issues it through `warnings`; the CLI prints it as one line."""
