"""The register-tiled products of charrnn.kernels.packed against numpy, at every edge of the tiling."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charrnn.kernels import packed

TOL = {np.float32: 2e-5, np.float64: 1e-13}  # relative to the size of the sum
GROUPS = [packed.MATRIX_GROUP, packed.VECTOR_GROUP]


def reference(a, W):
    return a.astype(np.float64) @ W.astype(np.float64).T


def group_width(group, dtype):
    return group * packed.REGISTER_BYTES // np.dtype(dtype).itemsize


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("R", [1, packed.ROWS - 1, packed.ROWS, packed.ROWS + 1, 3 * packed.ROWS + 2])
def test_matmul_panels_matches_numpy_at_every_edge(group, dtype, R):
    rng = np.random.default_rng(R)
    width = group_width(group, dtype)
    for M in (1, 5, width - 1, width, width + 1, 2 * width + 3):
        for K in (1, 9, 70):
            a = rng.standard_normal((R, K)).astype(dtype)
            W = rng.standard_normal((M, K)).astype(dtype)
            scale = np.abs(a).astype(np.float64) @ np.abs(W).astype(np.float64).T + 1.0
            big = np.full((R, M + 3), np.nan, dtype)  # rows longer than M: nothing past column M is written
            out = big[:, :M]
            packed.matmul_panels(a, packed.panels_of(W, group), out)
            assert np.all(np.abs(out - reference(a, W)) <= TOL[dtype] * scale), (M, K)
            assert np.isnan(big[:, M:]).all()

            Wt = np.ascontiguousarray(W.T)  # (K, M): out = a @ Wt by packing the view Wt.T
            out2 = np.full((R, M), np.nan, dtype)
            packed.matmul_panels(a, packed.panels_of(Wt.T, group), out2)
            assert np.array_equal(out2, out)  # same panels, same order of additions


@pytest.mark.parametrize("group", GROUPS)
def test_panels_layout(group):
    W = np.arange(3 * 5, dtype=np.float32).reshape(3, 5)  # (M, K) = (3, 5)
    Wp = packed.panels_of(W, group)
    assert Wp.shape == (1, 5, group_width(group, np.float32))
    assert np.array_equal(Wp[0, :, :3], W.T)
    assert not Wp[0, :, 3:].any()  # padding is zero
    assert np.array_equal(packed.panels_of(np.ascontiguousarray(W.T).T, group), Wp)
    W = np.ones((2 * group_width(group, np.float32) + 1, 4), np.float32)
    assert packed.panels_of(W, group).shape == (3, 4, group_width(group, np.float32))


def test_rows_may_be_views_of_a_larger_array():
    rng = np.random.default_rng(0)
    hs = rng.standard_normal((4, 13, 33)).astype(np.float32)  # like the recurrence's (T+1, B, H)
    W = rng.standard_normal((33, 33)).astype(np.float32)
    packed.matmul_panels(hs[1], packed.panels_of(W, packed.MATRIX_GROUP), hs[2])
    np.testing.assert_allclose(hs[2], reference(hs[1], W), rtol=1e-5, atol=1e-5)


def test_register_width_follows_the_environment():
    if os.environ.get("CHARRNN_VECTOR_BYTES"):
        assert packed.REGISTER_BYTES == int(os.environ["CHARRNN_VECTOR_BYTES"])
    assert packed.REGISTER_BYTES in (16, 32, 64)


@pytest.mark.slow  # compiles every kernel afresh, in a new cache folder: half a minute each
@pytest.mark.skipif(os.environ.get("CHARRNN_VECTOR_BYTES") is not None, reason="already the inner run")
@pytest.mark.parametrize("vector_bytes", [16, 32])
def test_narrower_vector_registers(vector_bytes, tmp_path):
    """Machines without AVX-512 get 8- (AVX2) or 4-float vectors and 4-row tiles: the same tests
    and the model's kernel tests pass with them (LLVM runs narrower vectors on any x86 machine)."""
    env = dict(os.environ, CHARRNN_VECTOR_BYTES=str(vector_bytes), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests/test_packed.py",
           "tests/test_network.py", "-k", "not network or float32 or 3-9-37-5"]  # the tiling shapes of every cell
    done = subprocess.run(cmd, env=env, cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
