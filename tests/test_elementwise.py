"""Accuracy of the vectorisable float32 tanh and exp against numpy (float64)."""

import numpy as np
from numba import njit

from charrnn.kernels.elementwise import exp_shifted_into, tanh_into


@njit
def _tanh(a):
    out = np.empty_like(a)
    tanh_into(a, out)
    return out


@njit
def _tanh_in_place(a):
    out = a.copy()
    tanh_into(out, out)
    return out


@njit
def _exp_in_place(z, shift):
    out = z.copy()
    exp_shifted_into(out, shift, out, np.empty(z.shape[0], np.int32))
    return out


@njit
def _exp(z, shift):
    out = np.empty_like(z)
    exp_shifted_into(z, shift, out, np.empty(z.shape[0], np.int32))
    return out


def test_tanh_float32_error_and_range():
    x = np.concatenate([np.linspace(-20, 20, 2_000_001), [0.0, 1e-30, -1e-30, 7.9, -7.9, np.float32(1e-4)]]).astype(np.float32)
    y = _tanh(x)
    exact = np.tanh(x.astype(np.float64))
    assert np.abs(y - exact).max() < 3.6e-7
    assert np.abs(y).max() <= 1.0
    np.testing.assert_array_equal(_tanh(-x), -y)  # odd
    small = np.logspace(-8, -1, 1000).astype(np.float32)
    assert (np.abs(_tanh(small) - np.tanh(small.astype(np.float64))) / small).max() < 3e-7  # relative, near 0


def test_exp_float32_relative_error():
    z = np.linspace(-87, 0, 1_000_001).astype(np.float32)
    y = _exp(z, np.float32(0.0))
    exact = np.exp(z.astype(np.float64))
    assert (np.abs(y - exact) / exact).max() < 3e-7
    assert _exp(np.array([-200.0, 0.0], np.float32), np.float32(0.0))[0] < 1e-37  # tiny, never inf/nan
    shifted = _exp(np.array([3.0, 5.0], np.float32), np.float32(5.0))
    np.testing.assert_allclose(shifted, [np.exp(-2.0), 1.0], rtol=3e-7)


def test_float64_uses_exact_libm():
    x = np.linspace(-10, 10, 1001)
    np.testing.assert_allclose(_tanh(x), np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(_exp(-np.abs(x), 0.0), np.exp(-np.abs(x)), rtol=1e-15)


def test_in_place_calls_give_the_same_results():
    # In place, the kernels take a separate loop (one array, so that LLVM vectorises it).
    x = np.linspace(-9, 9, 100_003).astype(np.float32)
    np.testing.assert_array_equal(_tanh_in_place(x), _tanh(x))
    z = np.linspace(-90, 0, 100_003).astype(np.float32)
    np.testing.assert_array_equal(_exp_in_place(z, np.float32(0.5)), _exp(z, np.float32(0.5)))
    np.testing.assert_array_equal(_tanh_in_place(x.astype(np.float64)), _tanh(x.astype(np.float64)))
