"""The kernel decorator: numba's on-disk cache when possible, an in-memory compile otherwise."""

import os
import subprocess
import sys

import numba
import numpy as np

from charrnn.kernels import jit


def test_kernel_falls_back_when_no_cache_folder_is_usable(monkeypatch):
    real = numba.njit
    asked = []

    def njit_without_locator(*args, cache=False, **options):
        asked.append(cache)
        if cache:
            raise RuntimeError("cannot cache function 'double': no locator available for file '<x>'")
        return real(*args, **options)

    monkeypatch.setattr(jit.numba, "njit", njit_without_locator)

    @jit.kernel
    def double(a):
        return 2 * a

    assert double(np.arange(3)).tolist() == [0, 2, 4]
    assert asked[:2] == [True, False]  # tried the cache, then compiled in memory


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
