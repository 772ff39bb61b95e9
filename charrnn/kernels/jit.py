"""One decorator for every CPU kernel: numba's njit with an on-disk cache that never breaks import.

numba caches next to the package when it can, else in the user cache folder (or NUMBA_CACHE_DIR).
When no folder is writable, `cache=True` raises RuntimeError at decoration time; we then compile
in memory instead, which only costs start-up time.
"""

import numba

# Floating-point freedoms that speed up reductions but keep NaN/inf semantics (no 'nnan'/'ninf'),
# so non-finite losses and gradients are still detected.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# numba's default ("python") error model checks every float division for a zero divisor so that it
# can raise ZeroDivisionError; that branch stops LLVM from vectorising any loop that divides. With
# "numpy", x / 0 is inf or nan, which the training loop already detects.
ERROR_MODEL = "numpy"


def kernel(fn=None, *, fastmath=False, inline="never"):
    """`@kernel` / `@kernel(fastmath=True)`: njit(cache=True) falling back to an in-memory compile."""

    def wrap(f):
        options = dict(nogil=True, fastmath=FASTMATH if fastmath else False, inline=inline, error_model=ERROR_MODEL)
        try:
            return numba.njit(cache=True, **options)(f)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(cache=False, **options)(f)

    return wrap(fn) if fn is not None else wrap
