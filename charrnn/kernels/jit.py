"""One decorator for every CPU kernel: numba's njit with an on-disk cache that never breaks import.

Compiled kernels are cached in NUMBA_CACHE_DIR when it is set, else in charrnn's own folder of the
user cache (charrnn.paths.kernel_folder(): ~/.cache/charrnn/kernels on Linux), never next to the
package (numba's own first choice):
files there that pip does not know of outlive `pip uninstall`, and the charrnn/ folder they keep
would then shadow a later install as an empty namespace package. When no folder is writable,
making the cache raises RuntimeError; we then compile in memory instead, which only costs start-up.

numba keys a cached kernel on its own bytecode only, so a change to a kernel it calls in another
file (packed.py, elementwise.py, a cell's cpu.py, ...) would reuse stale machine code. KernelCache
adds a digest of the source of every file in KERNEL_FOLDERS (charrnn/kernels and charrnn/cells,
with their subfolders) to the key.

A kernel may be a closure over other kernels (charrnn.kernels.sampling builds its loop around a
cell's step that way). numba keys a closure on the pickle of what it closes over, and a dispatcher
pickles with a fresh uuid in every process, so such a kernel would never load from the cache (it
compiled again in every process, about 2 s for a small one); KernelCache keys it on the names of
the kernels it closes over instead, recursively (their source is in the digest).
"""

import hashlib
import os
from pathlib import Path

import numba
from numba.core import caching

from charrnn.paths import kernel_folder

# Floating-point freedoms that speed up reductions but keep NaN/inf semantics (no 'nnan'/'ninf'),
# so non-finite losses and gradients are still detected.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# numba's default ("python") error model checks every float division for a zero divisor so that it
# can raise ZeroDivisionError; that branch stops LLVM from vectorising any loop that divides. With
# "numpy", x / 0 is inf or nan, which the training loop already detects.
ERROR_MODEL = "numpy"


PACKAGE = Path(__file__).resolve().parent.parent
KERNEL_FOLDERS = (PACKAGE / "kernels", PACKAGE / "cells")  # every folder that holds kernels


def kernel_sources():
    """The files whose source the cache key covers."""
    return sorted(path for folder in KERNEL_FOLDERS for path in folder.rglob("*.py"))


def _sources_digest():
    digest = hashlib.sha256(os.environ.get("CHARRNN_VECTOR_BYTES", "").encode())  # see packed.py
    for path in kernel_sources():
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


SOURCES_DIGEST = _sources_digest()


def _numba_locator(name):
    return getattr(caching, name, None) or getattr(caching, "_" + name)  # older numba: a leading underscore


_UserProvided = _numba_locator("UserProvidedCacheLocator")


class _CharrnnFolderLocator(_UserProvided):
    """numba's locator for a given folder, pointed at charrnn's kernel folder instead of NUMBA_CACHE_DIR."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._cache_path = os.path.join(kernel_folder(), self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        # skip _UserProvided's "only when NUMBA_CACHE_DIR is set"; keep its "only when the folder can be made"
        return super(_UserProvided, cls).from_function(py_func, py_file)


class _KernelCacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_UserProvided, _CharrnnFolderLocator]


def closure_key(fn):
    """A stable description of what the function fn closes over: a kernel (or plain function) as
    its module, qualified name and own closure_key, a number or string as its repr. None when it
    holds anything else (no key would be stable: such a kernel is not cached)."""
    parts = []
    for cell in fn.__closure__ or ():
        value = cell.cell_contents
        inner = getattr(value, "py_func", value)
        if hasattr(inner, "__code__"):
            below = closure_key(inner)
            if below is None:
                return None
            parts.append((inner.__module__, inner.__qualname__, below))
        elif isinstance(value, (bool, int, float, str)):
            parts.append(repr(value))
        else:
            return None
    return tuple(parts)


class KernelCache(caching.FunctionCache):
    """numba's on-disk function cache, in the folders above, keyed also on SOURCES_DIGEST and, for
    a closure, on closure_key instead of numba's pickle of its cells."""

    _impl_class = _KernelCacheImpl

    def __init__(self, py_func):
        self._closure = closure_key(py_func)
        if self._closure is None:
            raise RuntimeError(f"cannot cache function {py_func.__qualname__!r}: it closes over values with no stable key")
        super().__init__(py_func)

    def _index_key(self, sig, codegen):
        if self._py_func.__closure__ is None:
            return super()._index_key(sig, codegen) + (SOURCES_DIGEST,)
        code = hashlib.sha256(self._py_func.__code__.co_code).hexdigest()
        return (sig, codegen.magic_tuple(), (code, repr(self._closure)), SOURCES_DIGEST)


def kernel(fn=None, *, fastmath=False, inline="never"):
    """`@kernel` / `@kernel(fastmath=True)`: njit with KernelCache, falling back to an in-memory compile."""

    def wrap(f):
        options = dict(nogil=True, fastmath=FASTMATH if fastmath else False, inline=inline, error_model=ERROR_MODEL)
        dispatcher = numba.njit(**options)(f)
        try:
            dispatcher._cache = KernelCache(dispatcher.py_func)  # what njit(cache=True) does, with our key
        except RuntimeError:  # "cannot cache function ...": no locator available, or an unstable closure
            pass
        return dispatcher

    return wrap(fn) if fn is not None else wrap
