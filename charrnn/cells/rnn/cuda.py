"""The vanilla cell's CUDA kernels and time loops, mirroring cpu.py: only the recurrence
(charrnn.network_cuda does the rest). Imported only when CUDA is used (charrnn.cells.kernels.cuda_module).

Shapes: T steps, B streams, H hidden. pre (T, B, H) = W_ih x_t + b_ih for every step, computed by
the network as one gather or one product; each step adds W_hh h_{t-1} in one launch that fuses the
tiled product with the tanh (charrnn.kernels.cuda_recurrence).
"""

import math

import numba
from numba import cuda

from charrnn.kernels.cuda import TILE, TILE_PAD, fill, flat, tiled, zeros
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


class Layer:
    """One layer's device buffers for windows of up to T steps over B streams, and its time loops
    (the host side: one launch per step), with per-step views made once. A state (state0, out,
    dstate0) is an (S, B, H) device array or a sequence of its S (B, H) views (S = 1 here)."""

    def __init__(self, T, B, H):
        self.hs = zeros((T + 1, B, H))  # (T+1, B, H) its outputs, hs[0] the initial h
        self.dpre = zeros((T, B, H))
        self.dh = (zeros((B, H)), zeros((B, H)))  # ping-pong: dh of step t+1 in, of step t out
        self.hs_t = [self.hs[t] for t in range(T + 1)]
        self.dpre_t = [self.dpre[t] for t in range(T)]
        self.launch = tiled(B, H)
        self.t = 0

    def forward(self, pre, Whh, bhh, state0):
        """pre: t device arrays (B, H), one per step; state0 (1, B, H). Returns hs (t+1, B, H)."""
        self.t = t = len(pre)
        self.hs_t[0].copy_to_device(state0[0])
        step = forward_step[self.launch]
        for s in range(t):
            step(pre[s], Whh, self.hs_t[s], self.hs_t[s + 1])
        return self.hs[: t + 1]

    def step(self, pre, Whh, bhh, state, out):
        """One sampling step: out (1, B, H) = the state after `state` (1, B, H) and pre (B, H)."""
        forward_step[self.launch](pre, Whh, state[0], out[0])

    def final(self, out):
        """out (1, B, H) <- the state after the last step."""
        out[0].copy_to_device(self.hs_t[self.t])

    def backward(self, dhs, Whh, dstate0):
        """dhs: t device arrays (B, H) = dLoss/dh_t from above. Returns (dLoss/d input part,
        dLoss/d hidden part), both (t, B, H) (one array here); writes dstate0 (1, B, H)."""
        t = self.t
        dh_in, dh_out = self.dh
        B, H = dh_in.shape
        fill[flat(B * H)](dh_in.reshape(B * H), f32(0.0))
        back = backward_step[self.launch]
        for s in range(t - 1, -1, -1):
            out = dstate0[0] if s == 0 else dh_out  # the last step writes dLoss/dh0 in place
            back(dhs[s], self.hs_t[s + 1], dh_in, Whh, self.dpre_t[s], out)
            dh_in, dh_out = out, dh_in
        return self.dpre[:t], self.dpre[:t]


_M = "float32[:, ::1]"
SIGNATURES = {
    "forward_step": f"void({_M}, {_M}, {_M}, {_M})",
    "backward_step": f"void({_M}, {_M}, {_M}, {_M}, {_M}, {_M})",
}
FLOAT32_ONLY = set(SIGNATURES)
