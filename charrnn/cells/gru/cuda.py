"""The GRU's CUDA kernels and time loops, mirroring cpu.py: only the recurrence
(charrnn.network_cuda does the rest). Imported only when CUDA is used (charrnn.cells.modules.cuda_module).

Shapes: T steps, B streams, H hidden, gate blocks r, z, n of H each (3H). pre (T, B, 3H) = gx =
W_ih x_t + b_ih. Each step is one launch: thread (b, j) computes the three rows of
gh = h_{t-1} @ W_hh.T + b_hh of its unit (three accumulators), then the gates. The input and
hidden parts of n's pre-activation differ (r scales the hidden part), so backward returns the two
gradients separately: the network's W_ih and W_hh take one each.
"""

import math

import numba
from numba import cuda

from charrnn.cells.layers_cuda import DeviceLayer
from charrnn.kernels.cuda import TILE, TILE_PAD
from charrnn.kernels.cuda_recurrence import load_back_tiles, load_hidden_tiles, sigmoid, tile_dot, tile_dot_back

f32 = numba.float32


@cuda.jit
def forward_step(pre, Whh, bhh, h, h_next, act, hn):
    """One step for the batch: gh = h (B, H) @ Whh.T + bhh (Whh (3H, H), bhh (3H,)), gx = pre (B, 3H);
    r, z = sig(gx + gh) of their blocks, hn = gh_n, n = tanh(gx_n + r hn), h_next = (1 - z) n + z h.
    Writes act (B, 3H) = r, z, n and hn (B, H) (for backward). Launch: tiled(B, H)."""
    B, H = h.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j0 = cuda.blockIdx.x * TILE
    b, j = cuda.blockIdx.y * TILE + ty, j0 + tx
    sh = cuda.shared.array((TILE, TILE_PAD), numba.float32)
    sw = cuda.shared.array((3, TILE, TILE_PAD), numba.float32)
    ar = az = an = f32(0.0)
    for k0 in range(0, H, TILE):
        load_hidden_tiles(h, Whh, 3, H, b, j0, k0, sh, sw)
        ar += tile_dot(sh, sw, 0, ty, tx)
        az += tile_dot(sh, sw, 1, ty, tx)
        an += tile_dot(sh, sw, 2, ty, tx)
        cuda.syncthreads()
    if b < B and j < H:
        r = sigmoid(ar + (pre[b, j] + bhh[j]))  # the CPU's order of the three terms
        z = sigmoid(az + (pre[b, H + j] + bhh[H + j]))
        hnj = an + bhh[2 * H + j]
        n = math.tanh(pre[b, 2 * H + j] + r * hnj)
        act[b, j], act[b, H + j], act[b, 2 * H + j] = r, z, n
        hn[b, j] = hnj
        h_next[b, j] = n + z * (h[b, j] - n)


@cuda.jit
def backward_step(dhs_t, h_prev, act_t, hn_t, dh, Whh, dpx_t, dph_t, dh_prev):
    """One step back, fused: from dhs_t (B, H) = dLoss/dh_t from above and dh (B, H) from step t+1,
    dpx_t, dph_t (B, 3H) = dLoss/d gx, dLoss/d gh (they differ in n: dph_n = dn r), and
    dh_prev (B, H) = dph_t @ Whh + g z (the direct path through z h_{t-1}).

    h_prev (B, H) = h_{t-1}, act_t (B, 3H) = r, z, n, hn_t (B, H) = gh_n. dh must differ from
    dh_prev. Launch: tiled(B, H); the gate gradients are recomputed per block column, and the
    blocks of the first column write dpx_t and dph_t out.
    """
    B, H = dh.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j = cuda.blockIdx.x * TILE + tx
    b = cuda.blockIdx.y * TILE + ty
    sd = cuda.shared.array((3, TILE, TILE_PAD), numba.float32)
    sw = cuda.shared.array((3, TILE, TILE_PAD), numba.float32)
    one = f32(1.0)
    acc = f32(0.0)
    for u0 in range(0, H, TILE):
        u = u0 + tx
        dr = dz = dnr = f32(0.0)
        if b < B and u < H:
            r, z, n = act_t[b, u], act_t[b, H + u], act_t[b, 2 * H + u]
            g = dhs_t[b, u] + dh[b, u]
            dn = g * (one - z) * (one - n * n)
            dr = dn * hn_t[b, u] * r * (one - r)
            dz = g * (h_prev[b, u] - n) * z * (one - z)
            dnr = dn * r
            if cuda.blockIdx.x == 0:
                dpx_t[b, u], dpx_t[b, H + u], dpx_t[b, 2 * H + u] = dr, dz, dn
                dph_t[b, u], dph_t[b, H + u], dph_t[b, 2 * H + u] = dr, dz, dnr
        sd[0, ty, tx], sd[1, ty, tx], sd[2, ty, tx] = dr, dz, dnr
        load_back_tiles(Whh, 3, H, u0, j, sw)
        cuda.syncthreads()
        for q in range(3):
            acc += tile_dot_back(sd, sw, q, ty, tx)
        cuda.syncthreads()
    if b < B and j < H:
        dh_prev[b, j] = acc + (dhs_t[b, j] + dh[b, j]) * act_t[b, H + j]


class Layer(DeviceLayer):
    """One layer's device buffers and time loops (charrnn.cells.layers_cuda), as cpu.py's Layer."""

    buffers = {"hs": (1, 1), "acts": (0, 3), "hns": (0, 1), "dpx": (0, 3), "dph": (0, 3)}
    states = ("hs",)
    grads = ("dpx", "dph")
    forward_step, backward_step = staticmethod(forward_step), staticmethod(backward_step)

    @staticmethod
    def forward_args(at, s, pre, Whh, bhh, state, new):
        return pre, Whh, bhh, state[0], new[0], at.acts[s], at.hns[s]

    @staticmethod
    def backward_args(at, s, dhs, Whh, dnext, dprev):
        return dhs, at.hs[s], at.acts[s], at.hns[s], dnext[0], Whh, at.dpx[s], at.dph[s], dprev[0]


_M, _V = "float32[:, ::1]", "float32[::1]"
SIGNATURES = {
    "forward_step": f"void({_M}, {_M}, {_V}, {_M}, {_M}, {_M}, {_M})",
    "backward_step": f"void({', '.join([_M] * 9)})",
}
FLOAT32_ONLY = set(SIGNATURES)
