"""The vanilla cell's CPU kernels: only the recurrence through time (charrnn.network does the rest).

Shapes: T steps, B streams, H hidden. pre (T, B, H) = W_ih x_t + b_ih for every step, computed
by the network as one gather or one product; the kernels add W_hh h_{t-1} step by step, with the
weights packed once per window (charrnn.kernels.packed).
"""

import numpy as np

from charrnn.kernels.elementwise import tanh_into
from charrnn.kernels.jit import kernel
from charrnn.kernels.packed import MATRIX_GROUP, matmul_panels, panels_of


@kernel
def forward(pre, Whh, h0, hs):
    """hs (T+1, B, H): hs[0] = h0 (B, H), hs[t+1] = tanh(pre[t] + hs[t] @ Whh.T)."""
    T, B, H = pre.shape
    for b in range(B):  # an explicit loop compiles much faster than slice assignment
        for j in range(H):
            hs[0, b, j] = h0[b, j]
    panels = panels_of(Whh, MATRIX_GROUP)
    for t in range(T):
        h = hs[t + 1]
        matmul_panels(hs[t], panels, h)  # (B, H) = hs[t] @ Whh.T
        for b in range(B):
            row, p = h[b], pre[t, b]
            for j in range(H):
                row[j] += p[j]
            tanh_into(row, row)


@kernel(fastmath=True)
def backward(hs, dhs, Whh, dpre, dh):
    """dhs (T, B, H) = dLoss/dh_t from above. Writes dpre (T, B, H) = dLoss/d(pre-activation) and
    dh (B, H) = dLoss/dh0."""
    T, B, H = dhs.shape
    dh[:] = 0.0
    panels = panels_of(Whh.T, MATRIX_GROUP)  # for da @ Whh
    for t in range(T - 1, -1, -1):
        h, da = hs[t + 1], dpre[t]
        for b in range(B):
            for j in range(H):
                g = dhs[t, b, j] + dh[b, j]
                da[b, j] = g - g * h[b, j] * h[b, j]  # g * (1 - h²), no float64 constant
        matmul_panels(da, panels, dh)  # (B, H) = da @ Whh


@kernel(inline="always")
def step(ux, bx, uh, bh, a, state):
    """One sampling step: state (1, H) <- tanh(ux + bx + uh). ux, uh (H,): the input and hidden
    products, bx their bias (bh, the bias this cell does not keep, and the scratch a are unused)."""
    h = state[0]
    for j in range(h.shape[0]):
        h[j] = ux[j] + bx[j] + uh[j]
    tanh_into(h, h)


class Layer:
    """One layer's buffers for windows of up to T steps over B streams, and its kernels."""

    def __init__(self, T, B, H, dtype):
        self.hs = np.zeros((T + 1, B, H), dtype)  # (T+1, B, H) its outputs, hs[0] the initial h
        self.dpre = np.zeros((T, B, H), dtype)
        self.t = 0

    def forward(self, pre, Whh, bhh, state0):
        """pre (t, B, H); state0 (1, B, H). Returns hs (t+1, B, H)."""
        self.t = t = pre.shape[0]
        forward(pre, Whh, state0[0], self.hs[: t + 1])
        return self.hs[: t + 1]

    def final(self, out):
        """out (1, B, H) <- the state after the last step."""
        out[0] = self.hs[self.t]

    def backward(self, dhs, Whh, dstate0):
        """dhs (t, B, H). Returns (dLoss/d input part, dLoss/d hidden part), both (t, B, H) (one
        array here); writes dstate0 (1, B, H)."""
        t = self.t
        backward(self.hs[: t + 1], dhs, Whh, self.dpre[:t], dstate0[0])
        return self.dpre[:t], self.dpre[:t]
