"""The vanilla RNN: parameters, and the loss with its gradients over one TBPTT window.

    h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)        x_t one-hot over V tokens
    y_t = Why h_t + by                            softmax cross-entropy against the next token

Parameters live in one flat buffer (P,), with named views shaped as in the checkpoint, so that
clipping and the optimizer are single passes over contiguous memory.
"""

from dataclasses import dataclass

import numpy as np

from charrnn.kernels import cpu

PARAM_NAMES = ("Wxh", "Whh", "bh", "Why", "by")


def param_shapes(hidden, vocab_size):
    """{name: shape} for H = hidden, V = vocab_size, in storage order."""
    H, V = hidden, vocab_size
    return {"Wxh": (H, V), "Whh": (H, H), "bh": (H,), "Why": (V, H), "by": (V,)}


class FlatParams:
    """A flat buffer (P,) with named, shaped views into it (no copies)."""

    def __init__(self, hidden, vocab_size, dtype=np.float32, flat=None):
        self.hidden, self.vocab_size = hidden, vocab_size
        shapes = param_shapes(hidden, vocab_size)
        size = sum(int(np.prod(s)) for s in shapes.values())
        self.flat = np.zeros(size, dtype) if flat is None else flat
        assert self.flat.shape == (size,) and self.flat.flags.c_contiguous
        self.views = {}
        start = 0
        for name, shape in shapes.items():
            n = int(np.prod(shape))
            block = self.flat[start : start + n]
            if name == "Wxh":  # stored (V, H) so that a token's column Wxh[:, x] is contiguous
                self.views[name] = block.reshape(shape[::-1]).T
            else:
                self.views[name] = block.reshape(shape)
            start += n

    def __getitem__(self, name):
        return self.views[name]

    def like(self):
        """A zeroed buffer of the same layout (gradients, optimizer slots)."""
        return FlatParams(self.hidden, self.vocab_size, self.flat.dtype)

    def astype(self, dtype):
        return FlatParams(self.hidden, self.vocab_size, dtype, self.flat.astype(dtype))

    def load(self, arrays):
        """Copy named arrays (e.g. from a checkpoint) into the buffer."""
        for name, view in self.views.items():
            view[...] = arrays[name]
        return self

    def as_dict(self):
        """Independent C-ordered copies of each view, for saving."""
        return {name: view.copy(order="C") for name, view in self.views.items()}


def init_params(hidden, vocab_size, rng, dtype=np.float32):
    """Uniform(-1/sqrt(H), 1/sqrt(H)) weights, zero biases (the usual RNN initialisation)."""
    params = FlatParams(hidden, vocab_size, dtype)
    bound = 1.0 / np.sqrt(hidden)
    for name in ("Wxh", "Whh", "Why"):
        view = params[name]
        view[...] = rng.uniform(-bound, bound, size=view.shape)
    return params


@dataclass
class Workspace:
    """Preallocated buffers for one window of T steps over B streams."""

    hs: np.ndarray  # (T+1, B, H) hidden states, hs[0] = carried state
    logits: np.ndarray  # (N, V) logits
    dlogits: np.ndarray  # (N, V) their gradient (a separate buffer lets the softmax loop vectorise)
    dhs: np.ndarray  # (T, B, H) dLoss/dh_t from the output layer
    das: np.ndarray  # (T, B, H) dLoss/da_t (pre-activation)
    dh0: np.ndarray  # (B, H)

    @classmethod
    def allocate(cls, T, B, H, V, dtype=np.float32):
        return cls(
            hs=np.zeros((T + 1, B, H), dtype),
            logits=np.zeros((T * B, V), dtype),
            dlogits=np.zeros((T * B, V), dtype),
            dhs=np.zeros((T, B, H), dtype),
            das=np.zeros((T, B, H), dtype),
            dh0=np.zeros((B, H), dtype),
        )


def loss_and_grads(params, grads, xs, ys, h0, ws):
    """Mean cross-entropy over a window and its gradients.

    params, grads: FlatParams (grads overwritten). xs, ys (T, B) input and target ids; h0 (B, H).
    Returns the loss; the window's last hidden state is ws.hs[-1] (B, H).
    Only the recurrence steps through time; every other product covers all N = T*B positions.
    """
    T, B = xs.shape
    H, V = params.hidden, params.vocab_size
    N = T * B
    Wxh, Whh, bh, Why, by = (params[n] for n in PARAM_NAMES)

    cpu.rnn_forward(xs, h0, Wxh, Whh, bh, ws.hs)
    h_all = ws.hs[1:].reshape(N, H)  # (N, H)
    np.matmul(h_all, Why.T, out=ws.logits)  # (N, V)
    ws.logits += by
    loss = cpu.softmax_xent(ws.logits, ys.reshape(N), ws.dlogits)
    dlogits = ws.dlogits  # (N, V)

    np.matmul(dlogits.T, h_all, out=grads["Why"])  # (V, H)
    np.sum(dlogits, axis=0, out=grads["by"])
    np.matmul(dlogits, Why, out=ws.dhs.reshape(N, H))  # (N, H)

    cpu.rnn_backward(ws.hs, ws.dhs, Whh, ws.das, ws.dh0)
    das = ws.das.reshape(N, H)
    np.matmul(das.T, ws.hs[:-1].reshape(N, H), out=grads["Whh"])  # (H, H) = sum_t da_t h_{t-1}^T
    np.sum(das, axis=0, out=grads["bh"])
    cpu.embed_backward(xs.reshape(N), das, grads["Wxh"])
    return loss


def forward_loss_sum(params, xs, ys, h0, ws):
    """Sum of cross-entropy over a window (no gradients). Same shapes as loss_and_grads."""
    T, B = xs.shape
    N = T * B
    hs = ws.hs[: T + 1]  # the workspace may hold more steps than this window
    cpu.rnn_forward(xs, h0, params["Wxh"], params["Whh"], params["bh"], hs)
    logits = ws.logits[:N]
    np.matmul(hs[1:].reshape(N, params.hidden), params["Why"].T, out=logits)
    logits += params["by"]
    return cpu.xent_sum(logits, ys.reshape(N))
