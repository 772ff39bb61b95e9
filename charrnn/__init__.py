"""charrnn: character-level recurrent language models from the command line.

Kept import-free on purpose: `charrnn --help` must not pay for numpy or numba.
"""

__version__ = "0.1.0"
