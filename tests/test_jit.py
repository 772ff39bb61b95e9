"""The kernel decorator: numba's on-disk cache when possible, an in-memory compile otherwise."""

import os
import subprocess
import sys

import numba
import numpy as np
from numba.core.caching import FunctionCache

from charrnn.kernels import jit


def test_kernel_falls_back_when_no_cache_folder_is_usable(monkeypatch):
    def no_locator(py_func):
        raise RuntimeError(f"cannot cache function {py_func.__name__!r}: no locator available for file '<x>'")

    monkeypatch.setattr(jit, "KernelCache", no_locator)

    @jit.kernel
    def double(a):
        return 2 * a

    assert double(np.arange(3)).tolist() == [0, 2, 4]  # compiled in memory
    assert not isinstance(double._cache, FunctionCache)


def test_kernels_cache_on_every_kernel_source():
    """A kernel's cache entry depends on all of charrnn/kernels/*.py, not just its own file."""
    from charrnn.kernels import cpu, packed

    for kernel in (cpu.rnn_forward, cpu.sample_tokens, packed.matmul_groups):
        assert isinstance(kernel._cache, jit.KernelCache)
    key = cpu.clip_by_global_norm._cache._index_key("sig", numba.core.registry.cpu_target.target_context.codegen())
    assert key[-1] == jit.SOURCES_DIGEST
    assert len(jit.SOURCES_DIGEST) == 64


def test_cli_kernels_run_with_an_unusable_cache_folder(tmp_path):
    """NUMBA_CACHE_DIR under a regular file can never be created: charrnn must still compute."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(blocker / "cache"))
    code = (
        "import numpy as np; from charrnn.kernels import cpu; "
        "g = np.ones(4, np.float32); print(cpu.clip_by_global_norm(g, 1.0))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == 2.0
