"""What the inner `sim` / `device` suites of tests/test_cuda_sim.py share (see its header):
the mode, the tolerance, the test cases, and, in those suites, the simulator's set-up and dev().

Imported by test_cuda_sim.py, test_cuda_network.py and test_cuda_wiring.py; light unless MODE is
"sim" or "device", so the outer tests import no numba."""

import os
import sys

import numpy as np
import pytest

from charrnn.cells import CELLS

MODE = os.environ.get("CHARRNN_CUDA_TESTS")
TOL = 1e-5  # absolute, on quantities scaled to about 1 (see close())
# The dropout hash wraps uint64 sums and products on purpose (as a GPU and numba's CPU code do,
# silently); the simulator computes them with numpy scalars, which warn. Every inner file sets it.
UINT64_WRAPS = pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning")


def close(actual, expected, what="", tol=TOL):
    """|actual - expected| <= tol * max(1, max|expected|), elementwise."""
    expected = np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=0, atol=tol * scale, err_msg=what)


def make_case(cell, layers, T, B, H, V, seed=0):
    """float32 FlatParams with non-zero biases and larger weights (every path exercised), ids, state0 (L, S, B, H)."""
    from charrnn.params import Arch, init_params

    rng = np.random.default_rng(seed)
    arch = Arch(cell, layers, H, V)
    params = init_params(arch, rng)
    params.flat[...] = rng.normal(0.0, 0.5, params.flat.shape)
    xs = rng.integers(0, V, (T, B)).astype(np.uint8)
    ys = rng.integers(0, V, (T, B)).astype(np.uint8)
    state0 = rng.uniform(-0.9, 0.9, arch.state_shape(B)).astype(np.float32)
    return params, xs, ys, state0


CASES = [(cell, layers) for cell in CELLS for layers in (1, 2)]
SHAPES = [(3, 2, 5, 6), (2, 3, 9, 7)]  # (T, B, H, V): ragged tiles (TILE = 4 in the simulator)

if MODE in ("sim", "device"):
    sys.setswitchinterval(1e-4)  # simulated threads wait on each other: hand the GIL over quickly

    from numba import config, cuda

    from charrnn.kernels import cuda as K

    if MODE == "sim":
        assert config.ENABLE_CUDASIM and K.TILE == 4  # really simulated, with the small blocks
    else:
        assert not config.ENABLE_CUDASIM and cuda.is_available(), "CHARRNN_CUDA_TESTS=device needs a CUDA GPU"

    def _locked_shared_array():
        """The simulator makes a block's shared array when its first thread reaches cuda.shared.array,
        with an unlocked check-then-insert: two threads arriving together can get different arrays,
        and a reduction then silently misses partials (seen here about once per full run; made
        near-certain by a delay in that window). Same lookup (the caller's file and line), locked."""
        import threading

        from numba.core import types
        from numba.cuda.simulator import kernelapi
        from numba.np import numpy_support

        original, lock = kernelapi.FakeCUDAShared.array, threading.Lock()

        def array(self, shape, dtype, alignment=None):
            if shape == 0 or alignment is not None:  # dynamic shared memory, alignment: as before
                return original(self, shape, dtype, alignment)
            dtype = numpy_support.as_dtype(dtype) if isinstance(dtype, types.Type) else dtype
            frame = sys._getframe(1)
            caller = (frame.f_code.co_filename, frame.f_lineno)
            with lock:
                if caller not in self._allocations:
                    self._allocations[caller] = np.empty(shape, dtype)
                return self._allocations[caller]

        kernelapi.FakeCUDAShared.array = array

    if MODE == "sim":
        _locked_shared_array()

    def dev(a, dtype=np.float32):
        return cuda.to_device(np.ascontiguousarray(a, dtype))

