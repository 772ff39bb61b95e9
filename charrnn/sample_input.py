"""What `charrnn sample` reads from the user besides numbers: the prime (given, from a file or from
standard input) and the stop strings (with backslash escapes). Mistakes are UsageErrors naming the flag.
"""

import codecs
import warnings

from charrnn.corpus import _BOM, open_sources
from charrnn.errors import CorpusError, UsageError


def read_prime(prime="", prime_file=None, stdin=None):
    """The prime text: `prime` itself, or read from standard input when it is "-", or from the file
    `prime_file` ("-": standard input). Text read is UTF-8; a leading BOM and one final line end
    (\\n or \\r\\n) are dropped, as the shell's $(...) drops it, so `echo ROMEO: | charrnn sample --prime -`
    primes with "ROMEO:". stdin: a binary file (default sys.stdin.buffer)."""
    if prime_file is not None and prime:
        raise UsageError("give --prime or --prime-file, not both")
    if prime_file is None and prime != "-":
        return prime
    flag, name = ("--prime-file", prime_file) if prime_file is not None else ("--prime", "-")
    label = f"{flag} - (standard input)" if name == "-" else f"{flag} {name}"
    try:
        (source,) = open_sources([name], stdin=stdin)
        data = source.data
        if data is None:
            with open(source.path, "rb") as f:
                data = f.read()
        text = data.decode("utf-8")
    except CorpusError as err:  # missing, a folder, unreadable, a closed stdin
        raise UsageError(f"{label}: {str(err).removeprefix(f'{name}: ').removeprefix('<stdin>: ')}") from None
    except OSError as err:
        raise UsageError(f"{label}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"{label}: invalid UTF-8 at byte offset {err.start}") from None
    text = text.removeprefix(_BOM)
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def stop_strings(values):
    """The --stop values with their escapes (\\n, \\t, \\\\, \\xHH, \\uHHHH, ... as in Python) turned into
    the characters they stand for. A broken escape is a UsageError (an empty value is refused by
    charrnn.sample.StopScan)."""
    stops = []
    for value in values or ():
        try:
            with warnings.catch_warnings():  # an unknown escape such as \q stays as written, without a warning
                warnings.simplefilter("ignore")
                # Characters beyond Latin-1 travel as \\uXXXX escapes, so the codec gets them back intact.
                stops.append(codecs.decode(value.encode("latin-1", "backslashreplace"), "unicode_escape"))
        except UnicodeDecodeError as err:
            raise UsageError(f"--stop '{value}': {err.reason}") from None
    return tuple(stops)
