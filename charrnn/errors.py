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


def unknown_warning(chars, where="not in the model's vocabulary", most=None):
    """The warning for characters read as <unk>: each one's repr, or the first `most` of them and
    how many more."""
    shown = ", ".join(map(repr, chars[:most]))
    if most is not None and len(chars) > most:
        shown += f" and {len(chars) - most:,} more"
    return CharrnnWarning(f"{where}, read as <unk>: {shown}")
