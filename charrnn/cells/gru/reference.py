"""The GRU's float64 reference step, for charrnn.reference (the test oracle): written from the
equations of __init__.py, one stream at a time, sharing no code with cpu.py or cuda.py. Imports
only numpy.

Shapes: H hidden, I the layer's input size, G = 3 gate blocks (rows r, z, n), S = 1 state (h).
"""

import numpy as np

GATES, STATES, HIDDEN_BIAS = 3, 1, True  # the oracle's own account of the cell (tests check it against SPEC)


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def forward(W, x, state):
    """W = (W_ih (3H, I), W_hh (3H, H), b_ih (3H,), b_hh (3H,)); x (I,); state (1, H).
    Returns (the new state (1, H), what backward needs)."""
    Wih, Whh, bih, bhh = W
    H = Whh.shape[1]
    h = state[0]
    gx = Wih @ x + bih
    gh = Whh @ h + bhh
    r = _sig(gx[:H] + gh[:H])
    z = _sig(gx[H:2 * H] + gh[H:2 * H])
    n = np.tanh(gx[2 * H:] + r * gh[2 * H:])
    hn = (1.0 - z) * n + z * h
    return hn[None], dict(h=h, r=r, z=z, n=n, ghn=gh[2 * H:])


def backward(W, saved, dstate):
    """dstate (1, H) = dLoss/d(the new h). Returns (dLoss/d gx, dLoss/d gh) (3H,) each, gx = W_ih x
    + b_ih and gh = W_hh h + b_hh (they differ in n's block: r scales gh_n), and dLoss/d(the state
    before) (1, H)."""
    r, z, n, h = (saved[k] for k in ("r", "z", "n", "h"))
    dh = dstate[0]
    dn = dh * (1.0 - z)
    dz = dh * (h - n)
    dan = dn * (1.0 - n ** 2)
    dr = dan * saved["ghn"]  # r multiplies the hidden part of n's pre-activation
    dar, daz = dr * r * (1 - r), dz * z * (1 - z)
    dgx = np.concatenate([dar, daz, dan])
    dgh = np.concatenate([dar, daz, dan * r])
    return dgx, dgh, (W[1].T @ dgh + dh * z)[None]  # h reaches h' through W_hh and directly through z*h
