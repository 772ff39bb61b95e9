"""The host side of one layer of a cell on the CPU, the same for every cell: its buffers for a
window and the calls around the cell's two kernels. A cell's cpu.py declares its buffers and
writes the two calls; its kernels (forward and backward over the window) do the rest.

Shapes: T steps at most (t: the current window's), B streams, H hidden, G*H gate rows, S states.
A buffer is (T + extra, B, width*H): extra 1 for a state (step 0 holds the state before the
window, step t the state after step t), 0 for what a step saves or differentiates.
"""

from types import SimpleNamespace

import numpy as np


class WindowLayer:
    """One layer's buffers for windows of up to T steps over B streams, and its kernels.

    A cell's subclass says:
        buffers       {name: (extra, width)}: a (T + extra, B, width*H) array each, among them hs,
                      the layer's outputs h_t (T+1, B, H), with hs[0] the state before the window
        states        the S buffers that hold the state (h first)
        run_forward(w, pre, Whh, bhh, state0)     the cell's forward kernel over the window
        run_backward(w, dhs, Whh, dstate0)        its backward kernel; returns (dpx, dph)
    where w holds the buffers cut to the window's t steps (w.hs (t+1, B, H), ...) and the
    arguments are those of forward and backward below.
    """

    buffers = {}
    states = ("hs",)

    def __init__(self, T, B, H, dtype):
        for name, (extra, width) in self.buffers.items():
            setattr(self, name, np.zeros((T + extra, B, width * H), dtype))
        self.t = 0

    def window(self, t):
        return SimpleNamespace(**{name: getattr(self, name)[: t + extra] for name, (extra, _) in self.buffers.items()})

    def forward(self, pre, Whh, bhh, state0):
        """pre (t, B, G*H) = W_ih x + b_ih of every step; Whh (G*H, H); bhh (G*H,) (zeros for a
        cell that keeps none); state0 (S, B, H). Returns hs (t+1, B, H)."""
        self.t = t = pre.shape[0]
        self.run_forward(self.window(t), pre, Whh, bhh, state0)
        return self.hs[: t + 1]

    def final(self, out):
        """out (S, B, H) <- the state after the window's last step."""
        for s, name in enumerate(self.states):
            out[s] = getattr(self, name)[self.t]

    def backward(self, dhs, Whh, dstate0):
        """dhs (t, B, H) = dLoss/dh_t from above. Returns (dpx, dph), (t, B, G*H) each: dLoss/d
        the input part (W_ih x + b_ih) and the hidden part (W_hh h + b_hh) of the pre-activations,
        one array where they are one sum; writes dstate0 (S, B, H) = dLoss/dstate0."""
        return self.run_backward(self.window(self.t), dhs, Whh, dstate0)
