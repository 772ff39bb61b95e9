"""Vectorisable tanh and exp for the kernels.

numba turns math.tanh / math.exp into scalar libm calls that stop LLVM from vectorising a loop
(about 40x slower than numpy's vector code). In float32 these helpers use formulas made of
+ - * / min max and integer bit operations, which vectorise; in float64 (gradient checks) they
use libm, so the float64 model stays exact. Accuracy is checked in tests/test_elementwise.py.
"""

import math

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

from charrnn.kernels.jit import ERROR_MODEL, FASTMATH


def like(a, x):
    """x as a scalar of a's dtype: keeps float32 loops in float32 (a float64 constant would widen them)."""
    return a.dtype.type(x)


@overload(like)
def _like(a, x):
    dtype = a.dtype

    def cast(a, x):
        return dtype(x)

    return cast


@register_jitable(inline="always")
def same_memory(a, out):
    """Whether two 1-d arrays are the same memory (in-place call)."""
    return a.ctypes.data == out.ctypes.data and a.strides[0] == out.strides[0]


def tanh_into(a, out):
    """out[j] = tanh(a[j]) for 1-d arrays (may be the same array). Compiled per dtype, see below."""
    np.tanh(a, out)


# tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= 7.9, +-(1 - 6e-8) beyond: a rational least-squares fit
# (linearised, refined toward minimax) made for charrnn. In float32 its error is below 3.5e-7
# absolute, |result| <= 1, and, unlike libm's scalar tanh, the loop vectorises (tests/test_elementwise.py).
TANH_CLAMP = 7.9
TANH_P = (1.0, 0.13444645702838898, 0.003571929642930627, 2.190742816310376e-05, 1.526571935528409e-08)
TANH_Q = (1.0, 0.4677796959877014, 0.026165293529629707, 0.00034121316275559366, 8.532906576874666e-07)


_C = np.float32(TANH_CLAMP)
_P = tuple(np.float32(v) for v in TANH_P)
_Q = tuple(np.float32(v) for v in TANH_Q)
_HALF = np.float32(0.5)


@register_jitable(inline="always")
def tanh32(x):
    """The float32 rational tanh above, for one value (vectorises inside a loop)."""
    p0, p1, p2, p3, p4 = _P
    q0, q1, q2, q3, q4 = _Q
    x = min(max(x, -_C), _C)
    s = x * x
    return x * (p0 + s * (p1 + s * (p2 + s * (p3 + s * p4)))) / (q0 + s * (q1 + s * (q2 + s * (q3 + s * q4))))


@register_jitable(inline="always")
def sigmoid32(x):
    """sigmoid(x) = (1 + tanh(x/2)) / 2: float32, vectorisable, error below 1.8e-7 absolute."""
    return _HALF + _HALF * tanh32(_HALF * x)


@overload(tanh_into, jit_options=dict(fastmath=FASTMATH, error_model=ERROR_MODEL))
def _tanh_into(a, out):
    if a.dtype != types.float32:  # float64 (gradient checks): libm's exact tanh
        def exact(a, out):
            for j in range(a.shape[0]):
                out[j] = math.tanh(a[j])

        return exact

    def rational(a, out):
        if same_memory(a, out):  # one array in the loop: LLVM vectorises it without an overlap check
            for j in range(out.shape[0]):
                out[j] = tanh32(out[j])
        else:
            for j in range(a.shape[0]):
                out[j] = tanh32(a[j])

    return rational


def sigmoid_into(a, out):
    """out[j] = 1 / (1 + exp(-a[j])) for 1-d arrays (may be the same array). Compiled per dtype."""
    out[...] = 1.0 / (1.0 + np.exp(-a))


@overload(sigmoid_into, jit_options=dict(fastmath=FASTMATH, error_model=ERROR_MODEL))
def _sigmoid_into(a, out):
    if a.dtype != types.float32:  # float64: exact, from libm's tanh (no overflow for large |x|)
        def exact(a, out):
            for j in range(a.shape[0]):
                out[j] = 0.5 + 0.5 * math.tanh(0.5 * a[j])

        return exact

    def rational(a, out):
        if same_memory(a, out):
            for j in range(out.shape[0]):
                out[j] = sigmoid32(out[j])
        else:
            for j in range(a.shape[0]):
                out[j] = sigmoid32(a[j])

    return rational


def exp_shifted_into(z, shift, out, bits):
    """out[k] = exp(z[k] - shift) for 1-d arrays, where shift >= max(z) (so every result is <= 1).
    bits (same length, int32) is scratch. Compiled per dtype, see below."""
    np.exp(z - shift, out)


# exp(x) = 2^n * exp(r), n = round(x / ln 2), |r| <= ln(2)/2; exp(r) by its Taylor series to r^6
# (truncation error below 1.2e-7 relative); 2^n is built from its IEEE bits. x is clamped to
# -87 so that 2^n stays a normal float32; anything smaller is below 1.7e-38 and counts as 0.
LOG2E = 1.4426950408889634
LN2_HI = 0.693145751953125  # ln 2 split so that n * LN2_HI is exact in float32
LN2_LO = 1.4286068203094173e-06


@overload(exp_shifted_into, jit_options=dict(fastmath=FASTMATH, error_model=ERROR_MODEL))
def _exp_shifted_into(z, shift, out, bits):
    if z.dtype != types.float32:

        def exact(z, shift, out, bits):
            for k in range(z.shape[0]):
                out[k] = math.exp(z[k] - shift)

        return exact

    log2e, hi, lo = np.float32(LOG2E), np.float32(LN2_HI), np.float32(LN2_LO)
    lowest, half = np.float32(-87.0), np.float32(0.5)
    c2, c3, c4, c5, c6 = (np.float32(1.0 / math.factorial(k)) for k in range(2, 7))
    one = np.float32(1.0)

    @register_jitable
    def exp_reduced(x, k, out, bits):  # out[k] = exp(x) / 2^n, bits[k] = the float32 bits of 2^n
        x = max(x, lowest)
        n = math.floor(x * log2e + half)
        r = (x - n * hi) - n * lo
        out[k] = one + r * (one + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * c6)))))
        bits[k] = (np.int32(n) + np.int32(127)) << np.int32(23)

    def series(z, shift, out, bits):
        s = np.float32(shift)
        if same_memory(z, out):  # one array in the loop: LLVM vectorises it without an overlap check
            for k in range(out.shape[0]):
                exp_reduced(out[k] - s, k, out, bits)
        else:
            for k in range(z.shape[0]):
                exp_reduced(z[k] - s, k, out, bits)
        scale = bits.view(np.float32)
        for k in range(z.shape[0]):
            out[k] *= scale[k]

    return series
