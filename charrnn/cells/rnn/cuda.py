"""The vanilla cell's CUDA kernels and time loops, mirroring cpu.py: only the recurrence
(charrnn.network_cuda does the rest). Imported only when CUDA is used (charrnn.cells.modules.cuda_module).

Shapes: T steps, B streams, H hidden. pre (T, B, H) = W_ih x_t + b_ih for every step, computed by
the network as one gather or one product; each step adds W_hh h_{t-1} in one launch that fuses the
tiled product with the tanh (charrnn.kernels.cuda_recurrence).
"""

import math

import numba
from numba import cuda

from charrnn.cells.layers_cuda import DeviceLayer
from charrnn.kernels.cuda import TILE, TILE_PAD
from charrnn.kernels.cuda_recurrence import load_back_tiles, load_hidden_tiles, tile_dot, tile_dot_back

f32 = numba.float32


@cuda.jit
def forward_step(pre, Whh, h, h_next):
    """One step for the batch: h_next (B, H) = tanh(pre (B, H) + h (B, H) @ Whh.T), Whh (H, H).
    Launch: tiled(B, H)."""
    B, H = h.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j0 = cuda.blockIdx.x * TILE
    b, j = cuda.blockIdx.y * TILE + ty, j0 + tx
    sh = cuda.shared.array((TILE, TILE_PAD), numba.float32)
    sw = cuda.shared.array((1, TILE, TILE_PAD), numba.float32)
    acc = f32(0.0)
    for k0 in range(0, H, TILE):
        load_hidden_tiles(h, Whh, 1, H, b, j0, k0, sh, sw)
        acc += tile_dot(sh, sw, 0, ty, tx)
        cuda.syncthreads()
    if b < B and j < H:
        h_next[b, j] = math.tanh(acc + pre[b, j])


@cuda.jit
def backward_step(dhs_t, h_t, dh, Whh, da_t, dh_prev):
    """One step back, fused: da_t (B, H) = (dhs_t + dh) * (1 - h_t^2), dh_prev (B, H) = da_t @ Whh.

    All (B, H) except Whh (H, H); dh and dh_prev must be different buffers (blocks read all of dh).
    Launch: tiled(B, H). da is recomputed per tile from its inputs instead of being stored and
    re-read (one launch per step, not two); the blocks of the first column write it out.
    """
    B, H = h_t.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j = cuda.blockIdx.x * TILE + tx
    b = cuda.blockIdx.y * TILE + ty
    sd = cuda.shared.array((1, TILE, TILE_PAD), numba.float32)
    sw = cuda.shared.array((1, TILE, TILE_PAD), numba.float32)
    acc = f32(0.0)
    for u0 in range(0, H, TILE):
        u = u0 + tx
        d = f32(0.0)
        if b < B and u < H:
            hv = h_t[b, u]
            g = dhs_t[b, u] + dh[b, u]
            d = g - g * hv * hv  # g * (1 - h^2), as cpu.py
            if cuda.blockIdx.x == 0:
                da_t[b, u] = d
        sd[0, ty, tx] = d
        load_back_tiles(Whh, 1, H, u0, j, sw)
        cuda.syncthreads()
        acc += tile_dot_back(sd, sw, 0, ty, tx)
        cuda.syncthreads()
    if b < B and j < H:
        dh_prev[b, j] = acc


class Layer(DeviceLayer):
    """One layer's device buffers and time loops (charrnn.cells.layers_cuda), as cpu.py's Layer."""

    buffers = {"hs": (1, 1), "dpre": (0, 1)}
    states = ("hs",)
    grads = ("dpre", "dpre")
    forward_step, backward_step = staticmethod(forward_step), staticmethod(backward_step)

    @staticmethod
    def forward_args(at, s, pre, Whh, bhh, state, new):
        return pre, Whh, state[0], new[0]

    @staticmethod
    def backward_args(at, s, dhs, Whh, dnext, dprev):
        return dhs, at.hs[s + 1], dnext[0], Whh, at.dpre[s], dprev[0]


_M = "float32[:, ::1]"
SIGNATURES = {
    "forward_step": f"void({_M}, {_M}, {_M}, {_M})",
    "backward_step": f"void({_M}, {_M}, {_M}, {_M}, {_M}, {_M})",
}
FLOAT32_ONLY = set(SIGNATURES)
