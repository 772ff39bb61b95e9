"""The CUDA mirror of charrnn.kernels.dropout: the same counter-based hash (SplitMix64's finaliser
on uint64, wrapping multiplies), the same key and counter packing and the same integer threshold
compare, so a mask is bit for bit the CPU's for the same (seed, step, layer, t, global stream, unit).

The constants are the CPU module's own objects (imported, not copied), so the two cannot drift.
Shapes: T steps, B streams, H hidden; a layer's mask and output are (T, B, H).
"""

import numba
from numba import cuda

from charrnn.kernels.dropout import _B_SHIFT, _GOLDEN, _M1, _M2, _S27, _S30, _S31, _S40, _T_SHIFT

f32 = numba.float32
u64 = numba.uint64


@cuda.jit(device=True, inline="always")
def mix64(z):
    """SplitMix64's finaliser (dropout.mix64): every operand uint64, so nothing widens to float."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@cuda.jit(device=True, inline="always")
def mask_key(seed, step, layer):
    """dropout.mask_key: the uint64 key of (seed, step, layer), each mixed in turn."""
    z = mix64(u64(seed) + _GOLDEN)
    z = mix64(z ^ (u64(step) + _GOLDEN))
    return mix64(z ^ (u64(layer) + _GOLDEN))


@cuda.jit
def dropout_forward(seed, step, layer, limit, scale, stream0, h, mask, y):
    """mask (T, B, H) = dropout.dropout_mask(seed, step, layer, limit, scale, stream0) and
    y (T, B, H) = h * mask, h (T, B, H) the layer's outputs before dropout.

    limit = dropout.threshold(p) (int64); scale = 1 / (1 - p) (float32); stream0: the global index
    of stream 0. Launch: 1-d grid over T*B*H. Each thread recomputes the key (three mixes): cheaper
    than a launch or a transfer to pass it in.
    """
    T, B, H = mask.shape
    i = cuda.grid(1)
    if i < T * B * H:
        t = i // (B * H)
        r = i - t * (B * H)
        b = r // H
        j = r - b * H
        k = mask_key(seed, step, layer)
        base = k + ((u64(t) << _T_SHIFT) | (u64(stream0 + b) << _B_SHIFT)) * _GOLDEN
        z = mix64(base + u64(j) * _GOLDEN)
        m = f32(0.0) if (z >> _S40) < u64(limit) else scale
        mask[t, b, j] = m
        y[t, b, j] = h[t, b, j] * m


_A3 = "float32[:, :, ::1]"
SIGNATURES = {"dropout_forward": f"void(int64, int64, int64, int64, float32, int64, {_A3}, {_A3}, {_A3})"}
FLOAT32_ONLY = {"dropout_forward"}
