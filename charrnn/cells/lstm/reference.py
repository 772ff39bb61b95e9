"""The LSTM's float64 reference step, for charrnn.reference (the test oracle): written from the
equations of __init__.py, one stream at a time, sharing no code with cpu.py or cuda.py. Imports
only numpy.

Shapes: H hidden, I the layer's input size, G = 4 gate blocks (rows i, f, g, o), S = 2 states
(h, then c).
"""

import numpy as np

GATES, STATES, HIDDEN_BIAS = 4, 2, False  # the oracle's own account of the cell (tests check it against SPEC)


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def forward(W, x, state):
    """W = (W_ih (4H, I), W_hh (4H, H), b_ih (4H,), b_hh (4H,) zero); x (I,); state (2, H) = (h, c).
    Returns (the new state (2, H), what backward needs)."""
    Wih, Whh, bih, _ = W
    H = Whh.shape[1]
    h, c = state
    a = Wih @ x + bih + Whh @ h
    i, f = _sig(a[:H]), _sig(a[H:2 * H])
    g, o = np.tanh(a[2 * H:3 * H]), _sig(a[3 * H:])
    cn = f * c + i * g
    tc = np.tanh(cn)
    return np.stack([o * tc, cn]), dict(c=c, i=i, f=f, g=g, o=o, tc=tc)


def backward(W, saved, dstate):
    """dstate (2, H) = dLoss/d(the new h, c). Returns (dLoss/d(W_ih x + b_ih), dLoss/d(W_hh h)),
    (4H,) each and equal, and dLoss/d(the state before) (2, H)."""
    i, f, g, o, tc = (saved[k] for k in ("i", "f", "g", "o", "tc"))
    dh, dc = dstate
    do = dh * tc
    dcn = dc + dh * o * (1.0 - tc ** 2)  # c' reaches the loss both carried and through h'
    di, df, dg = dcn * g, dcn * saved["c"], dcn * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)])
    return da, da, np.stack([W[1].T @ da, dcn * f])
