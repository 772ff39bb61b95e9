"""The kernel decorator: numba's on-disk cache when possible, an in-memory compile otherwise."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba.core.caching import FunctionCache

from charrnn.kernels import cpu, jit

CLIP = "import numpy as np; from charrnn.kernels import cpu; print(cpu.clip_by_global_norm(np.ones(4, np.float32), 1.0))"


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
    """A kernel's cache entry depends on every file of charrnn/kernels and charrnn/cells, not just its own."""
    from charrnn.cells.modules import MODULES
    from charrnn.kernels import packed, sampling

    loops = [sampling.loops(m.step) for m in MODULES]
    for kernel in (*(m.forward for m in MODULES), *(m.backward for m in MODULES), *(k.sample_tokens for k in loops), packed.matmul_groups):
        assert isinstance(kernel._cache, jit.KernelCache)
    package = Path(jit.__file__).parents[1]
    sources = {str(p.relative_to(package)) for p in jit.kernel_sources()}
    assert {"kernels/cpu.py", "kernels/dropout.py", "cells/lstm/cpu.py", "cells/gru/cpu.py", "cells/rnn/cpu.py"} <= sources
    assert {str(p.relative_to(package)) for p in package.rglob("*.py") if "@kernel" in p.read_text()} <= sources
    key = cpu.clip_by_global_norm._cache._index_key("sig", numba.core.registry.cpu_target.target_context.codegen())
    assert key[-1] == jit.SOURCES_DIGEST
    assert len(jit.SOURCES_DIGEST) == 64


def test_cli_kernels_run_with_an_unusable_cache_folder(tmp_path):
    """NUMBA_CACHE_DIR and the user cache folder under a regular file can never be created:
    charrnn must still compute."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(blocker / "cache"), XDG_CACHE_HOME=str(blocker / "user"))
    done = subprocess.run([sys.executable, "-c", CLIP], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == 2.0


def test_kernels_are_cached_in_the_user_cache_folder_not_in_the_package(tmp_path):
    """Cache files next to the package would outlive `pip uninstall` (and leave charrnn/ behind as
    a namespace package that hides a later install)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    package_cache = Path(cpu.__file__).parent / "__pycache__"
    started = time.time() - 1
    done = subprocess.run([sys.executable, "-c", CLIP], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "charrnn" / "kernels").glob("*/cpu.clip_by_global_norm-*.nbi"))
    assert not [f for f in package_cache.glob("*.nb[ic]") if f.stat().st_mtime >= started]


SAMPLE = """import sys, numpy as np
from charrnn.params import Arch, init_params
from charrnn.sample import CpuSampler
sampler = CpuSampler(init_params(Arch(sys.argv[1], 1, 8, 6), np.random.default_rng(0)), np.array([2, 3]), threads=1)
print(sampler.loops.advance.stats.cache_hits and 'hit' or 'miss')"""


def test_the_samplers_loops_load_from_the_cache_in_a_new_process(tmp_path):
    """The loops are closures over a cell's step: numba's own key for them (a pickle of the
    dispatcher, with a fresh uuid) would miss in every process and recompile (~2 s)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    seen = [subprocess.run([sys.executable, "-c", SAMPLE, cell], env=env, capture_output=True, text=True, timeout=300)
            for cell in ("gru", "gru", "rnn")]  # fmt: skip
    assert [s.stdout.strip() for s in seen] == ["miss", "hit", "miss"], [s.stderr[-500:] for s in seen]
    names = {p.name.split("-")[0] for p in tmp_path.rglob("sampling.loops.advance.*.nbi")}
    assert names == {"sampling.loops.advance.charrnn.cells.gru.cpu.step", "sampling.loops.advance.charrnn.cells.rnn.cpu.step"}


def test_a_closure_over_an_array_is_compiled_in_memory():
    """No stable key exists for an array's contents: such a kernel must not be cached at all."""
    weights = np.arange(3.0)

    def scaled(a):
        return a * weights

    assert jit.closure_key(scaled) is None
    assert jit.closure_key(lambda a: a + 1) == ()
    kernel = jit.kernel(scaled)
    assert not isinstance(kernel._cache, jit.KernelCache)
