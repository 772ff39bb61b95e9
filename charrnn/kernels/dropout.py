"""Dropout masks from a counter-based hash, so that a mask depends only on where it applies.

Unit j of stream b at time step t of layer l, in the window of step s of a run seeded `seed`, is
dropped when hash(seed, s, l, t, b, j) falls below p. No generator state is carried, so the mask
is the same whichever thread computes which streams, on either device, and after a resume; a
sequential RNG would give each of those a different mask.

The hash is SplitMix64's output function (Steele, Lea and Flood, 2014) applied to a 64-bit key
plus a counter, a well-tested counter-based generator: the key mixes (seed, step, layer), the
counter packs (t, b, j) into 16 + 16 + 14 bits (within the limits of --seq, --batch, --hidden).
The top 24 bits are compared with p as an integer, so the CUDA mirror gives the same mask bit
for bit.
"""

import numpy as np

from charrnn.kernels.jit import kernel

_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)
_T_SHIFT, _B_SHIFT = np.uint64(30), np.uint64(14)
BITS = 24


@kernel(inline="always")
def mix64(z):
    """SplitMix64's finaliser: a bijection of uint64 whose output bits all depend on every input bit."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@kernel
def mask_key(seed, step, layer):
    """The uint64 key of (seed, step, layer): each mixed in turn."""
    z = mix64(np.uint64(seed) + _GOLDEN)
    z = mix64(z ^ (np.uint64(step) + _GOLDEN))
    return mix64(z ^ (np.uint64(layer) + _GOLDEN))


def threshold(p):
    """Units whose top 24 hash bits are below this are dropped: round(p * 2^24)."""
    return int(round(p * (1 << BITS)))


@kernel
def dropout_mask(seed, step, layer, limit, scale, stream0, mask):
    """mask (T, B, H) = 0 where unit j of stream stream0 + b at time t is dropped, else scale.

    limit = threshold(p); scale = 1 / (1 - p) in mask's dtype.
    """
    T, B, H = mask.shape
    zero = mask.dtype.type(0.0)
    lim, k = np.uint64(limit), mask_key(seed, step, layer)
    for t in range(T):
        for b in range(B):
            base = k + ((np.uint64(t) << _T_SHIFT) | (np.uint64(stream0 + b) << _B_SHIFT)) * _GOLDEN
            row = mask[t, b]
            for j in range(H):
                z = mix64(base + np.uint64(j) * _GOLDEN)
                row[j] = zero if (z >> _S40) < lim else scale
