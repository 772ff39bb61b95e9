"""The host side of one layer of a cell on a CUDA device, the same for every cell (the mirror of
charrnn.cells.layers): its device buffers, with per-step views made once (numba-cuda spends tens
of microseconds on each), and the time loops that launch the cell's two step kernels, one launch
per step. A cell's cuda.py declares its buffers and the arguments of its two kernels.

Shapes: T steps at most (t: the current window's), B streams, H hidden, G*H gate rows, S states.
A buffer is (T + extra, B, width*H), as on the CPU. A state (state0, out, dstate0) is an (S, B, H)
device array or a sequence of its S (B, H) views. Importing this module imports numba.cuda.
"""

from types import SimpleNamespace

import numba

from charrnn.kernels.cuda import fill, flat, tiled, zeros


class DeviceLayer:
    """One layer's device buffers for windows of up to T steps over B streams, and its time loops.

    A cell's subclass says:
        buffers, states      as charrnn.cells.layers.WindowLayer's
        grads                the two buffers backward returns (dpx, dph), (T, B, G*H) each
        forward_step, backward_step   its kernels, launched tiled(B, H)
        forward_args(at, s, pre, Whh, bhh, state, new)    forward_step's arguments for step s:
                             from state to new (S views (B, H) each), pre (B, G*H), saving what
                             backward needs in step s of the other buffers (at.<name>[s], (B, width*H))
        backward_args(at, s, dhs, Whh, dnext, dprev)      backward_step's arguments for step s:
                             dhs (B, H) = dLoss/dh_s from above, dnext (S views) = dLoss/d the state
                             after step s through step s+1; writes dprev (S views), the gradient
                             of the state before step s, and step s of the grads
    """

    buffers = {}
    states = ("hs",)
    grads = ()

    def __init__(self, T, B, H):
        self.at = SimpleNamespace()  # at.<name>[s]: step s of a buffer
        for name, (extra, width) in self.buffers.items():
            whole = zeros((T + extra, B, width * H))
            setattr(self, name, whole)
            setattr(self.at, name, [whole[s] for s in range(T + extra)])
        self.state_at = [[getattr(self.at, name)[s] for name in self.states] for s in range(T + 1)]
        S = len(self.states)
        self.dstate = ([zeros((B, H)) for _ in range(S)], [zeros((B, H)) for _ in range(S)])  # ping-pong: of step s+1 in, of step s out
        self.dstate_flat = [d.reshape(B * H) for d in self.dstate[0]]
        self.launch = tiled(B, H)
        self.t = 0

    def forward(self, pre, Whh, bhh, state0):
        """pre: t device arrays (B, G*H), one per step; Whh (G*H, H); bhh (G*H,) (zeros for a cell
        that keeps none); state0 (S, B, H). Returns hs (t+1, B, H)."""
        self.t = t = len(pre)
        for s, view in enumerate(self.state_at[0]):
            view.copy_to_device(state0[s])
        step = self.forward_step[self.launch]
        for s in range(t):
            step(*self.forward_args(self.at, s, pre[s], Whh, bhh, self.state_at[s], self.state_at[s + 1]))
        return self.hs[: t + 1]

    def step(self, pre, Whh, bhh, state, out):
        """One sampling step: out (S, B, H) = the state after `state` (S, B, H) and pre (B, G*H);
        step 0 of the buffers is its scratch."""
        self.forward_step[self.launch](*self.forward_args(self.at, 0, pre, Whh, bhh, state, out))

    def final(self, out):
        """out (S, B, H) <- the state after the window's last step."""
        for s, view in enumerate(self.state_at[self.t]):
            out[s].copy_to_device(view)

    def backward(self, dhs, Whh, dstate0):
        """dhs: t device arrays (B, H) = dLoss/dh_t from above. Returns (dpx, dph) (t, B, G*H), as
        charrnn.cells.layers.WindowLayer.backward; writes dstate0 (S, B, H)."""
        t = self.t
        dnext, dout = self.dstate
        for d in self.dstate_flat:
            fill[flat(d.size)](d, numba.float32(0.0))
        back = self.backward_step[self.launch]
        for s in range(t - 1, -1, -1):
            dprev = dstate0 if s == 0 else dout  # the last step writes dLoss/dstate0 in place
            back(*self.backward_args(self.at, s, dhs[s], Whh, dnext, dprev))
            dnext, dout = dprev, dnext
        return tuple(getattr(self, name)[:t] for name in self.grads)
