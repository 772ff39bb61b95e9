"""How the `charrnn` command fails: every error as one line on stderr and an exit code, the
library's warnings as one line each, and a closed stdout (`| head`) as a quiet stop."""

import gc
import os
import sys
import warnings

import typer
from typer.core import TyperGroup

from charrnn.errors import CharrnnWarning


def error_line(message):
    sys.stderr.write(f"charrnn: error: {message}\n")


def warn(message):
    sys.stderr.write(f"charrnn: warning: {message}\n")


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """The library's warnings as one line each; any other warning as Python shows it."""
    if issubclass(category, CharrnnWarning):
        warn(message)
    else:
        _default(message, category, filename, lineno, file, line)


class OneLineErrors(TyperGroup):
    """Every failure ends as one line on stderr and a non-zero exit code, never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from charrnn.errors import CharrnnError

        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                warnings.simplefilter("always", CharrnnWarning)  # each one, not once per place in the code
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except CharrnnError as err:
            error_line(err)
            code = err.exit_code
        except (KeyboardInterrupt, typer.Abort):
            error_line("interrupted")
            code = 130
        except Exception as err:
            if not (hasattr(err, "format_message") and hasattr(err, "exit_code")):
                raise  # a bug: let the traceback through so it gets reported
            if type(err).__name__ == "NoArgsIsHelpError":  # bare `charrnn`: the help, not an error line
                sys.stderr.write(err.format_message().rstrip("\n") + "\n")
            else:
                error_line(err.format_message())  # a usage error found by the parser
            code = err.exit_code
        gc.freeze()  # the interpreter's exit would walk every object once more: 0.2 s after numba
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # any command's stdout piped into `head` and the like
            return quiet_broken_pipe()


def quiet_broken_pipe():
    """The reader of stdout went away (`| head`): stop quietly, and keep Python's exit flush from failing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is not a real file (tests)
    return 0
