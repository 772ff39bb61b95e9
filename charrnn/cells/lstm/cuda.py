"""The LSTM's CUDA kernels and time loops, mirroring cpu.py: only the recurrence
(charrnn.network_cuda does the rest). Imported only when CUDA is used (charrnn.cells.kernels.cuda_module).

Shapes: T steps, B streams, H hidden, gate blocks i, f, g, o of H each (4H). pre (T, B, 4H) =
W_ih x_t + b_ih. Each step is one launch: thread (b, j) computes the four gate rows of its unit
(the tiled product h_{t-1} @ W_hh.T, four accumulators), then the pointwise gate math, so no
(B, 4H) pre-activation ever goes through global memory between them.
"""

import math

import numba
from numba import cuda

from charrnn.kernels.cuda import TILE, TILE_PAD, fill, flat, tiled, zeros
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


class Layer:
    """One layer's device buffers for windows of up to T steps over B streams, and its time loops
    (the host side: one launch per step), with per-step views made once. A state (state0, out,
    dstate0) is a (2, B, H) device array (h, c) or a sequence of its 2 (B, H) views."""

    def __init__(self, T, B, H):
        self.hs, self.cs = zeros((T + 1, B, H)), zeros((T + 1, B, H))
        self.tcs = zeros((T, B, H))  # tanh(c_t)
        self.acts = zeros((T, B, 4 * H))  # i, f, g, o after their nonlinearities
        self.dpre = zeros((T, B, 4 * H))
        self.dh = (zeros((B, H)), zeros((B, H)))  # ping-pong: of step t+1 in, of step t out
        self.dc = (zeros((B, H)), zeros((B, H)))
        self.hs_t, self.cs_t = [self.hs[t] for t in range(T + 1)], [self.cs[t] for t in range(T + 1)]
        self.tcs_t, self.acts_t = [self.tcs[t] for t in range(T)], [self.acts[t] for t in range(T)]
        self.dpre_t = [self.dpre[t] for t in range(T)]
        self.launch = tiled(B, H)
        self.t = 0

    def forward(self, pre, Whh, bhh, state0):
        """pre: t device arrays (B, 4H), one per step; state0 (2, B, H). Returns hs (t+1, B, H)."""
        self.t = t = len(pre)
        self.hs_t[0].copy_to_device(state0[0])
        self.cs_t[0].copy_to_device(state0[1])
        step = forward_step[self.launch]
        for s in range(t):
            step(pre[s], Whh, self.hs_t[s], self.cs_t[s], self.hs_t[s + 1], self.cs_t[s + 1], self.tcs_t[s], self.acts_t[s])
        return self.hs[: t + 1]

    def step(self, pre, Whh, bhh, state, out):
        """One sampling step: out (2, B, H) = the state after `state` (2, B, H) and pre (B, 4H)."""
        forward_step[self.launch](pre, Whh, state[0], state[1], out[0], out[1], self.tcs_t[0], self.acts_t[0])

    def final(self, out):
        out[0].copy_to_device(self.hs_t[self.t])
        out[1].copy_to_device(self.cs_t[self.t])

    def backward(self, dhs, Whh, dstate0):
        """dhs: t device arrays (B, H). Returns (dpre, dpre) (t, B, 4H); writes dstate0 (2, B, H)."""
        t = self.t
        (dh_in, dh_out), (dc_in, dc_out) = self.dh, self.dc
        B, H = dh_in.shape
        for buf in (dh_in, dc_in):
            fill[flat(B * H)](buf.reshape(B * H), f32(0.0))
        back = backward_step[self.launch]
        for s in range(t - 1, -1, -1):
            dh_next, dc_next = (dstate0[0], dstate0[1]) if s == 0 else (dh_out, dc_out)  # the last step: dLoss/dstate0
            back(dhs[s], self.cs_t[s], self.tcs_t[s], self.acts_t[s], dh_in, dc_in, Whh, self.dpre_t[s], dh_next, dc_next)
            dh_in, dh_out, dc_in, dc_out = dh_next, dh_in, dc_next, dc_in
        return self.dpre[:t], self.dpre[:t]


_M = "float32[:, ::1]"
SIGNATURES = {
    "forward_step": f"void({', '.join([_M] * 8)})",
    "backward_step": f"void({', '.join([_M] * 10)})",
}
FLOAT32_ONLY = set(SIGNATURES)
