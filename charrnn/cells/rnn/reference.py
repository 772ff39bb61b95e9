"""The vanilla cell's float64 reference step, for charrnn.reference (the test oracle): written from
the equation of __init__.py, one stream at a time, sharing no code with cpu.py or cuda.py. Imports
only numpy.

Shapes: H hidden, I the layer's input size, G = 1 gate block, S = 1 state (h).
"""

import numpy as np

GATES, STATES, HIDDEN_BIAS = 1, 1, False  # the oracle's own account of the cell (tests check it against SPEC)


def forward(W, x, state):
    """h' = tanh(W_ih x + b_ih + W_hh h). W = (W_ih (H, I), W_hh (H, H), b_ih (H,), b_hh (H,) zero);
    x (I,); state (1, H). Returns (the new state (1, H), what backward needs)."""
    Wih, Whh, bih, _ = W
    hn = np.tanh(Wih @ x + bih + Whh @ state[0])
    return hn[None], dict(hn=hn)


def backward(W, saved, dstate):
    """dstate (1, H) = dLoss/d(the new state). Returns (dLoss/d(W_ih x + b_ih), dLoss/d(W_hh h)),
    (H,) each, and dLoss/d(the state before) (1, H)."""
    da = (1.0 - saved["hn"] ** 2) * dstate[0]
    return da, da, (W[1].T @ da)[None]
