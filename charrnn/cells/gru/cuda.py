"""The GRU's CUDA kernels and time loops, mirroring cpu.py: only the recurrence
(charrnn.network_cuda does the rest). Imported only when CUDA is used (charrnn.cells.kernels.cuda_module).

Shapes: T steps, B streams, H hidden, gate blocks r, z, n of H each (3H). pre (T, B, 3H) = gx =
W_ih x_t + b_ih. Each step is one launch: thread (b, j) computes the three rows of
gh = h_{t-1} @ W_hh.T + b_hh of its unit (three accumulators), then the gates. The input and
hidden parts of n's pre-activation differ (r scales the hidden part), so backward returns the two
gradients separately: the network's W_ih and W_hh take one each.
"""

import math

import numba
from numba import cuda

from charrnn.kernels.cuda import TILE, TILE_PAD, fill, flat, tiled, zeros
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


class Layer:
    """One layer's device buffers for windows of up to T steps over B streams, and its time loops
    (the host side: one launch per step), with per-step views made once. A state (state0, out,
    dstate0) is a (1, B, H) device array or a sequence of its one (B, H) view."""

    def __init__(self, T, B, H):
        self.hs = zeros((T + 1, B, H))
        self.acts = zeros((T, B, 3 * H))  # r, z, n
        self.hns = zeros((T, B, H))  # W_hn h + b_hn
        self.dpx, self.dph = zeros((T, B, 3 * H)), zeros((T, B, 3 * H))
        self.dh = (zeros((B, H)), zeros((B, H)))  # ping-pong: of step t+1 in, of step t out
        self.hs_t = [self.hs[t] for t in range(T + 1)]
        self.acts_t, self.hns_t = [self.acts[t] for t in range(T)], [self.hns[t] for t in range(T)]
        self.dpx_t, self.dph_t = [self.dpx[t] for t in range(T)], [self.dph[t] for t in range(T)]
        self.launch = tiled(B, H)
        self.t = 0

    def forward(self, pre, Whh, bhh, state0):
        """pre: t device arrays (B, 3H), one per step; bhh (3H,); state0 (1, B, H). Returns hs (t+1, B, H)."""
        self.t = t = len(pre)
        self.hs_t[0].copy_to_device(state0[0])
        step = forward_step[self.launch]
        for s in range(t):
            step(pre[s], Whh, bhh, self.hs_t[s], self.hs_t[s + 1], self.acts_t[s], self.hns_t[s])
        return self.hs[: t + 1]

    def step(self, pre, Whh, bhh, state, out):
        """One sampling step: out (1, B, H) = the state after `state` (1, B, H) and pre (B, 3H)."""
        forward_step[self.launch](pre, Whh, bhh, state[0], out[0], self.acts_t[0], self.hns_t[0])

    def final(self, out):
        out[0].copy_to_device(self.hs_t[self.t])

    def backward(self, dhs, Whh, dstate0):
        """dhs: t device arrays (B, H). Returns (dpx, dph) (t, B, 3H); writes dstate0 (1, B, H)."""
        t = self.t
        dh_in, dh_out = self.dh
        B, H = dh_in.shape
        fill[flat(B * H)](dh_in.reshape(B * H), f32(0.0))
        back = backward_step[self.launch]
        for s in range(t - 1, -1, -1):
            out = dstate0[0] if s == 0 else dh_out  # the last step writes dLoss/dh0 in place
            back(dhs[s], self.hs_t[s], self.acts_t[s], self.hns_t[s], dh_in, Whh, self.dpx_t[s], self.dph_t[s], out)
            dh_in, dh_out = out, dh_in
        return self.dpx[:t], self.dph[:t]


_M, _V = "float32[:, ::1]", "float32[::1]"
SIGNATURES = {
    "forward_step": f"void({_M}, {_M}, {_V}, {_M}, {_M}, {_M}, {_M})",
    "backward_step": f"void({', '.join([_M] * 9)})",
}
FLOAT32_ONLY = set(SIGNATURES)
