"""The GRU's CPU kernels: only the recurrence through time (charrnn.network does the rest).

Shapes: T steps, B streams, H hidden, gate blocks r, z, n of H each (3H). pre (T, B, 3H) = gx =
W_ih x_t + b_ih; each step computes gh = h_{t-1} @ W_hh.T + b_hh (one (B, H) x (H, 3H) product),
then the gates. The input and hidden parts of n's pre-activation differ (r scales the hidden
part), so backward returns the two gradients separately: the network's W_ih and W_hh take one each.
"""

import numpy as np

from charrnn.cells.layers import WindowLayer
from charrnn.kernels.elementwise import sigmoid_into, tanh_into
from charrnn.kernels.jit import kernel
from charrnn.kernels.packed import MATRIX_GROUP, matmul_panels, panels_of


@kernel(inline="always")
def _gates(a, px, bhh, H, h_prev, hn, h):
    """a (3H,) = W_hh h_prev (no bias yet), px (3H,) = gx. Leaves r, z, n in a, hn (H,) = the
    hidden part of n's pre-activation (W_hn h + b_hn), and h = (1 - z) n + z h_prev."""
    for k in range(2 * H):
        a[k] += px[k] + bhh[k]
    sigmoid_into(a[: 2 * H], a[: 2 * H])
    for j in range(H):
        hn[j] = a[2 * H + j] + bhh[2 * H + j]
        a[2 * H + j] = px[2 * H + j] + a[j] * hn[j]
    tanh_into(a[2 * H :], a[2 * H :])
    for j in range(H):
        n = a[2 * H + j]
        h[j] = n + a[H + j] * (h_prev[j] - n)


@kernel
def forward(pre, Whh, bhh, h0, hs, acts, hns):
    """hs (T+1, B, H) with hs[0] = h0; acts (T, B, 3H) = r, z, n; hns (T, B, H) = W_hn h + b_hn."""
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    for b in range(B):
        for j in range(H):
            hs[0, b, j] = h0[b, j]
    panels = panels_of(Whh, MATRIX_GROUP)
    for t in range(T):
        a = acts[t]
        matmul_panels(hs[t], panels, a)  # (B, 3H) = h_{t-1} @ Whh.T
        for b in range(B):
            _gates(a[b], pre[t, b], bhh, H, hs[t, b], hns[t, b], hs[t + 1, b])


@kernel(fastmath=True)
def backward(hs, acts, hns, dhs, Whh, dpx, dph, dh):
    """dhs (T, B, H) = dLoss/dh_t from above. Writes dpx, dph (T, B, 3H) = dLoss/d gx and
    dLoss/d gh, and dh (B, H) = dLoss/dh0."""
    T, B, H = dhs.shape
    dh[:] = 0.0
    direct = np.zeros((B, H), dh.dtype)  # dLoss/dh_{t-1} through z*h_{t-1}
    one = dh.dtype.type(1.0)
    panels = panels_of(Whh.T, MATRIX_GROUP)  # for dgh @ Whh
    for t in range(T - 1, -1, -1):
        for b in range(B):
            a, x, y, hp, hn = acts[t, b], dpx[t, b], dph[t, b], hs[t, b], hns[t, b]
            for j in range(H):
                r, z, n = a[j], a[H + j], a[2 * H + j]
                g = dhs[t, b, j] + dh[b, j]
                dn = g * (one - z) * (one - n * n)
                dr = dn * hn[j] * r * (one - r)
                dz = g * (hp[j] - n) * z * (one - z)
                x[j], x[H + j], x[2 * H + j] = dr, dz, dn
                y[j], y[H + j], y[2 * H + j] = dr, dz, dn * r
                direct[b, j] = g * z
        matmul_panels(dph[t], panels, dh)  # (B, H) = dgh @ Whh
        for b in range(B):
            for j in range(H):
                dh[b, j] += direct[b, j]


@kernel(inline="always")
def step(ux, bx, uh, bh, a, state):
    """One sampling step: state (1, H) advanced from gx = ux + bx and gh = uh + bh (3H,): the
    input and hidden products and their biases; a (3H,) scratch."""
    H = state.shape[1]
    h = state[0]
    for k in range(2 * H):
        a[k] = ux[k] + bx[k] + uh[k] + bh[k]
    sigmoid_into(a[: 2 * H], a[: 2 * H])
    for j in range(H):
        a[2 * H + j] = ux[2 * H + j] + bx[2 * H + j] + a[j] * (uh[2 * H + j] + bh[2 * H + j])
    tanh_into(a[2 * H : 3 * H], a[2 * H : 3 * H])
    for j in range(H):
        n = a[2 * H + j]
        h[j] = n + a[H + j] * (h[j] - n)


class Layer(WindowLayer):
    """One layer's buffers and kernels (charrnn.cells.layers): the states hs (T+1, B, H), acts
    (T, B, 3H) = r, z, n, hns (T, B, H) = W_hn h + b_hn, and the two parts' gradients dpx, dph
    (T, B, 3H)."""

    buffers = {"hs": (1, 1), "acts": (0, 3), "hns": (0, 1), "dpx": (0, 3), "dph": (0, 3)}
    states = ("hs",)

    @staticmethod
    def run_forward(w, pre, Whh, bhh, state0):
        forward(pre, Whh, bhh, state0[0], w.hs, w.acts, w.hns)

    @staticmethod
    def run_backward(w, dhs, Whh, dstate0):
        backward(w.hs, w.acts, w.hns, dhs, Whh, w.dpx, w.dph, dstate0[0])
        return w.dpx, w.dph
