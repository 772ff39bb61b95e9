"""The vanilla cell's CPU kernels: only the recurrence through time (charrnn.network does the rest).

Shapes: T steps, B streams, H hidden. pre (T, B, H) = W_ih x_t + b_ih for every step, computed
by the network as one gather or one product; the kernels add W_hh h_{t-1} step by step, with the
weights packed once per window (charrnn.kernels.packed).
"""

from charrnn.cells.layers import WindowLayer
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


class Layer(WindowLayer):
    """One layer's buffers and kernels (charrnn.cells.layers): hs (T+1, B, H) the states, dpre
    (T, B, H) dLoss/d(pre-activation), which is both parts' gradient."""

    buffers = {"hs": (1, 1), "dpre": (0, 1)}
    states = ("hs",)

    @staticmethod
    def run_forward(w, pre, Whh, bhh, state0):
        forward(pre, Whh, state0[0], w.hs)

    @staticmethod
    def run_backward(w, dhs, Whh, dstate0):
        backward(w.hs, dhs, Whh, w.dpre, dstate0[0])
        return w.dpre, w.dpre
