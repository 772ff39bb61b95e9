"""One decorator for every CPU kernel: numba's njit with an on-disk cache that never breaks import.

numba caches next to the package when it can, else in the user cache folder (or NUMBA_CACHE_DIR).
When no folder is writable, `cache=True` raises RuntimeError at decoration time; we then compile
in memory instead, which only costs start-up time.
"""

import numba

# Floating-point freedoms that speed up reductions but keep NaN/inf semantics (no 'nnan'/'ninf'),
# so non-finite losses and gradients are still detected.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def kernel(fn=None, *, fastmath=False, inline="never"):
    """`@kernel` / `@kernel(fastmath=True)`: njit(cache=True) falling back to an in-memory compile."""

    def wrap(f):
        options = dict(nogil=True, fastmath=FASTMATH if fastmath else False, inline=inline)
        try:
            return numba.njit(cache=True, **options)(f)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(cache=False, **options)(f)

    return wrap(fn) if fn is not None else wrap
