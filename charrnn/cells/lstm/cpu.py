"""The LSTM's CPU kernels: only the recurrence through time (charrnn.network does the rest).

Shapes: T steps, B streams, H hidden, gate blocks i, f, g, o of H each (4H). pre (T, B, 4H) =
W_ih x_t + b_ih; each step adds h_{t-1} @ W_hh.T (one (B, H) x (H, 4H) product for all gates),
then the pointwise gate math in float32 with the vectorisable tanh and sigmoid.
"""

from charrnn.cells.layers import WindowLayer
from charrnn.kernels.elementwise import sigmoid_into, tanh_into
from charrnn.kernels.jit import kernel
from charrnn.kernels.packed import MATRIX_GROUP, matmul_panels, panels_of


@kernel(inline="always")
def _gates(a, H, c_prev, c, tc, h):
    """a (4H,) pre-activations -> activations in place; c = f c_prev + i g, tc = tanh(c), h = o tc."""
    sigmoid_into(a[: 2 * H], a[: 2 * H])
    tanh_into(a[2 * H : 3 * H], a[2 * H : 3 * H])
    sigmoid_into(a[3 * H :], a[3 * H :])
    for j in range(H):
        c[j] = a[H + j] * c_prev[j] + a[j] * a[2 * H + j]
    tanh_into(c, tc)
    for j in range(H):
        h[j] = a[3 * H + j] * tc[j]


@kernel
def forward(pre, Whh, h0, c0, hs, cs, tcs, acts):
    """hs, cs (T+1, B, H) with hs[0] = h0, cs[0] = c0; tcs (T, B, H) = tanh(c_t);
    acts (T, B, 4H) = the gates i, f, g, o after their nonlinearities."""
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    for b in range(B):
        for j in range(H):
            hs[0, b, j] = h0[b, j]
            cs[0, b, j] = c0[b, j]
    panels = panels_of(Whh, MATRIX_GROUP)
    for t in range(T):
        a = acts[t]
        matmul_panels(hs[t], panels, a)  # (B, 4H) = h_{t-1} @ Whh.T
        for b in range(B):
            row, p = a[b], pre[t, b]
            for k in range(4 * H):
                row[k] += p[k]
            _gates(row, H, cs[t, b], cs[t + 1, b], tcs[t, b], hs[t + 1, b])


@kernel(fastmath=True)
def backward(hs, cs, tcs, acts, dhs, Whh, dpre, dh, dc):
    """dhs (T, B, H) = dLoss/dh_t from above. Writes dpre (T, B, 4H) = dLoss/d(pre-activations),
    dh, dc (B, H) = dLoss/dh0, dLoss/dc0."""
    T, B, H = dhs.shape
    dh[:] = 0.0
    dc[:] = 0.0
    one = dh.dtype.type(1.0)
    panels = panels_of(Whh.T, MATRIX_GROUP)  # for da @ Whh
    for t in range(T - 1, -1, -1):
        for b in range(B):
            a, d, tc, cp = acts[t, b], dpre[t, b], tcs[t, b], cs[t, b]
            for j in range(H):
                i, f, g, o = a[j], a[H + j], a[2 * H + j], a[3 * H + j]
                gh = dhs[t, b, j] + dh[b, j]
                dct = dc[b, j] + gh * o * (one - tc[j] * tc[j])
                d[j] = dct * g * i * (one - i)
                d[H + j] = dct * cp[j] * f * (one - f)
                d[2 * H + j] = dct * i * (one - g * g)
                d[3 * H + j] = gh * tc[j] * o * (one - o)
                dc[b, j] = dct * f
        matmul_panels(dpre[t], panels, dh)  # (B, H) = da @ Whh


@kernel(inline="always")
def step(ux, bx, uh, bh, a, state):
    """One sampling step: state (2, H) = (h, c) advanced from ux + bx + uh (4H,), the input
    product, its bias and the hidden product (bh unused: no second bias); a (5H,) scratch."""
    H = state.shape[1]
    for k in range(4 * H):
        a[k] = ux[k] + bx[k] + uh[k]
    _gates(a[: 4 * H], H, state[1], state[1], a[4 * H :], state[0])  # c in place (c_prev[j] is read before c[j] is written)


class Layer(WindowLayer):
    """One layer's buffers and kernels (charrnn.cells.layers): the states hs, cs (T+1, B, H),
    tcs (T, B, H) = tanh(c_t), acts (T, B, 4H) the gates, dpre (T, B, 4H) both parts' gradient."""

    buffers = {"hs": (1, 1), "cs": (1, 1), "tcs": (0, 1), "acts": (0, 4), "dpre": (0, 4)}
    states = ("hs", "cs")

    @staticmethod
    def run_forward(w, pre, Whh, bhh, state0):
        forward(pre, Whh, state0[0], state0[1], w.hs, w.cs, w.tcs, w.acts)

    @staticmethod
    def run_backward(w, dhs, Whh, dstate0):
        backward(w.hs, w.cs, w.tcs, w.acts, dhs, Whh, w.dpre, dstate0[0], dstate0[1])
        return w.dpre, w.dpre
