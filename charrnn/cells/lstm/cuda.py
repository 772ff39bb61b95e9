"""The LSTM's CUDA kernels and time loops, mirroring cpu.py: only the recurrence
(charrnn.network_cuda does the rest). Imported only when CUDA is used (charrnn.cells.modules.cuda_module).

Shapes: T steps, B streams, H hidden, gate blocks i, f, g, o of H each (4H). pre (T, B, 4H) =
W_ih x_t + b_ih. Each step is one launch: thread (b, j) computes the four gate rows of its unit
(the tiled product h_{t-1} @ W_hh.T, four accumulators), then the pointwise gate math, so no
(B, 4H) pre-activation ever goes through global memory between them.
"""

import math

import numba
from numba import cuda

from charrnn.cells.layers_cuda import DeviceLayer
from charrnn.kernels.cuda import TILE, TILE_PAD
from charrnn.kernels.cuda_recurrence import load_back_tiles, load_hidden_tiles, sigmoid, tile_dot, tile_dot_back

f32 = numba.float32


@cuda.jit
def forward_step(pre, Whh, h, c, h_next, c_next, tc, act):
    """One step for the batch: a = pre (B, 4H) + h (B, H) @ Whh.T (Whh (4H, H)); i, f, o = sig,
    g = tanh of their blocks; c_next = f c + i g, tc = tanh(c_next), h_next = o tc (all (B, H));
    act (B, 4H) = i, f, g, o (for backward). c and c_next must differ. Launch: tiled(B, H)."""
    B, H = h.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j0 = cuda.blockIdx.x * TILE
    b, j = cuda.blockIdx.y * TILE + ty, j0 + tx
    sh = cuda.shared.array((TILE, TILE_PAD), numba.float32)
    sw = cuda.shared.array((4, TILE, TILE_PAD), numba.float32)
    ai = af = ag = ao = f32(0.0)
    for k0 in range(0, H, TILE):
        load_hidden_tiles(h, Whh, 4, H, b, j0, k0, sh, sw)
        ai += tile_dot(sh, sw, 0, ty, tx)
        af += tile_dot(sh, sw, 1, ty, tx)
        ag += tile_dot(sh, sw, 2, ty, tx)
        ao += tile_dot(sh, sw, 3, ty, tx)
        cuda.syncthreads()
    if b < B and j < H:
        i = sigmoid(ai + pre[b, j])
        f = sigmoid(af + pre[b, H + j])
        g = math.tanh(ag + pre[b, 2 * H + j])
        o = sigmoid(ao + pre[b, 3 * H + j])
        cn = f * c[b, j] + i * g
        t = math.tanh(cn)
        act[b, j], act[b, H + j], act[b, 2 * H + j], act[b, 3 * H + j] = i, f, g, o
        c_next[b, j] = cn
        tc[b, j] = t
        h_next[b, j] = o * t


@cuda.jit(device=True, inline="always")
def _dct(act, tc, dhs, dh, dc, b, u, H):
    """(dLoss/dh_t, dLoss/dc_t) of unit u of stream b: gh from above and from step t+1, dct = dc
    from step t+1 plus gh's path through h = o tanh(c)."""
    o, t = act[b, 3 * H + u], tc[b, u]
    gh = dhs[b, u] + dh[b, u]
    return gh, dc[b, u] + gh * o * (f32(1.0) - t * t)


@cuda.jit
def backward_step(dhs_t, c_prev, tc_t, act_t, dh, dc, Whh, da_t, dh_prev, dc_prev):
    """One step back, fused: da_t (B, 4H) = dLoss/d(pre-activations) from dhs_t (B, H) = dLoss/dh_t
    from above and dh, dc (B, H) from step t+1; dh_prev (B, H) = da_t @ Whh, dc_prev = dct * f.

    c_prev (B, H) = c_{t-1}, tc_t = tanh(c_t), act_t (B, 4H) = i, f, g, o. dh, dc must differ
    from dh_prev, dc_prev (blocks read all of them). Launch: tiled(B, H). Thread (b, tx) computes
    the four gate gradients of unit u0 + tx per tile of the reduction (recomputed per block column
    instead of a second launch); the blocks of the first column write da_t out.
    """
    B, H = dh.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j = cuda.blockIdx.x * TILE + tx
    b = cuda.blockIdx.y * TILE + ty
    sd = cuda.shared.array((4, TILE, TILE_PAD), numba.float32)
    sw = cuda.shared.array((4, TILE, TILE_PAD), numba.float32)
    one = f32(1.0)
    acc = f32(0.0)
    for u0 in range(0, H, TILE):
        u = u0 + tx
        di = df = dg = do = f32(0.0)
        if b < B and u < H:
            i, f, g, o = act_t[b, u], act_t[b, H + u], act_t[b, 2 * H + u], act_t[b, 3 * H + u]
            gh, dct = _dct(act_t, tc_t, dhs_t, dh, dc, b, u, H)
            di = dct * g * i * (one - i)
            df = dct * c_prev[b, u] * f * (one - f)
            dg = dct * i * (one - g * g)
            do = gh * tc_t[b, u] * o * (one - o)
            if cuda.blockIdx.x == 0:
                da_t[b, u], da_t[b, H + u], da_t[b, 2 * H + u], da_t[b, 3 * H + u] = di, df, dg, do
        sd[0, ty, tx], sd[1, ty, tx], sd[2, ty, tx], sd[3, ty, tx] = di, df, dg, do
        load_back_tiles(Whh, 4, H, u0, j, sw)
        cuda.syncthreads()
        for q in range(4):
            acc += tile_dot_back(sd, sw, q, ty, tx)
        cuda.syncthreads()
    if b < B and j < H:
        _, dct = _dct(act_t, tc_t, dhs_t, dh, dc, b, j, H)
        dc_prev[b, j] = dct * act_t[b, H + j]
        dh_prev[b, j] = acc


class Layer(DeviceLayer):
    """One layer's device buffers and time loops (charrnn.cells.layers_cuda), as cpu.py's Layer."""

    buffers = {"hs": (1, 1), "cs": (1, 1), "tcs": (0, 1), "acts": (0, 4), "dpre": (0, 4)}
    states = ("hs", "cs")
    grads = ("dpre", "dpre")
    forward_step, backward_step = staticmethod(forward_step), staticmethod(backward_step)

    @staticmethod
    def forward_args(at, s, pre, Whh, bhh, state, new):
        return pre, Whh, state[0], state[1], new[0], new[1], at.tcs[s], at.acts[s]

    @staticmethod
    def backward_args(at, s, dhs, Whh, dnext, dprev):
        return dhs, at.cs[s], at.tcs[s], at.acts[s], dnext[0], dnext[1], Whh, at.dpre[s], dprev[0], dprev[1]


_M = "float32[:, ::1]"
SIGNATURES = {
    "forward_step": f"void({', '.join([_M] * 8)})",
    "backward_step": f"void({', '.join([_M] * 10)})",
}
FLOAT32_ONLY = set(SIGNATURES)
