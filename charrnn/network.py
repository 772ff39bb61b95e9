"""The network on the CPU, for one TBPTT window: embed -> layers -> dropout -> head -> loss, and
back, written once for every cell (each cell's recurrence is its own kernel, charrnn.cells).

    pre_0 = rows of weight_ih_l0 picked by the ids + bias_ih_l0      (N, G*H)   one gather
    pre_k = y_{k-1} @ weight_ih_lk.T + bias_ih_lk                    (N, G*H)   one product
    h_k   = the cell's recurrence over pre_k from state0[k]          (T, B, H)  the only loop in time
    y_k   = h_k * mask_k (dropout, training only)                    (T, B, H)
    loss  = mean softmax cross-entropy of y_{L-1} @ weight_out.T + bias_out

Backward runs the same list upwards: the head's gradients and dy, then per layer the cell's
backward (dLoss/dpre), the weight gradients as single products over all N = T*B positions, and
dy for the layer below.
"""

from dataclasses import dataclass

import numpy as np

from charrnn.cells.modules import cpu_module
from charrnn.kernels import cpu
from charrnn.kernels.dropout import dropout_mask, threshold


@dataclass(frozen=True)
class Dropout:
    """Where a window's dropout masks come from: (seed, step) and the first stream's index."""

    p: float
    seed: int
    step: int
    stream0: int = 0

    def at(self, stream0):
        return Dropout(self.p, self.seed, self.step, stream0)


class Workspace:
    """Preallocated buffers for windows of up to T steps over B streams."""

    def __init__(self, arch, T, B, dtype=np.float32):
        G, H, V, L = arch.gates, arch.hidden, arch.vocab_size, arch.layers
        self.arch, self.T, self.B = arch, T, B
        module = cpu_module(arch.cell)
        self.layers = [module.Layer(T, B, H, dtype) for _ in range(L)]
        self.pre = np.zeros((T, B, G * H), dtype)  # (T, B, G*H) one layer's input projection at a time
        self.masks = None  # (L, T, B, H), made at the first window with dropout
        self.ys = None  # (L, T, B, H) the layers' outputs after dropout
        self.logits = np.zeros((T * B, V), dtype)  # (N, V)
        self.dlogits = np.zeros((T * B, V), dtype)  # (N, V) a separate buffer lets the softmax loop vectorise
        self.dy = np.zeros((T, B, H), dtype)  # dLoss/d(a layer's output after dropout)
        self.dh = np.zeros((T, B, H), dtype)  # ... before dropout
        self.zero_bias = np.zeros(G * H, dtype)  # bias_hh of cells that keep none
        self.state = np.zeros(arch.state_shape(B), dtype)  # (L, S, B, H) after the window
        self.dstate0 = np.zeros(arch.state_shape(B), dtype)  # (L, S, B, H) dLoss/dstate0

    def outputs(self, k, t, dropout):
        """Layer k's output y_k (t, B, H) as the next layer (or the head) sees it."""
        return self.ys[k, :t] if dropout else self.layers[k].hs[1 : t + 1]


def _bias_hh(params, ws, k):
    name = f"bias_hh_l{k}"
    return params[name] if name in params.views else ws.zero_bias


def forward(params, xs, state0, ws, dropout=None):
    """Run the layers over a window: xs (t, B) ids, state0 (L, S, B, H). Fills ws.state with the
    state after it and returns the last layer's output y (t*B, H) that the head reads."""
    t, B = xs.shape
    N, H = t * B, params.hidden
    drop = dropout is not None and dropout.p > 0
    if drop and ws.masks is None:
        ws.masks = np.zeros((params.layers, ws.T, B, H), params.flat.dtype)
        ws.ys = np.zeros((params.layers, ws.T, B, H), params.flat.dtype)
    pre = ws.pre[:t]
    for k, layer in enumerate(ws.layers):
        P = pre.reshape(N, -1)  # (N, G*H)
        if k == 0:
            cpu.gather_rows(xs.reshape(N), params.stored("weight_ih_l0"), params["bias_ih_l0"], P)
        else:
            np.matmul(ws.outputs(k - 1, t, drop).reshape(N, H), params[f"weight_ih_l{k}"].T, out=P)
            P += params[f"bias_ih_l{k}"]
        hs = layer.forward(pre, params[f"weight_hh_l{k}"], _bias_hh(params, ws, k), state0[k])
        layer.final(ws.state[k])
        if drop:
            mask = ws.masks[k, :t]
            dropout_mask(dropout.seed, dropout.step, k, threshold(dropout.p), mask.dtype.type(1.0 / (1.0 - dropout.p)), dropout.stream0, mask)
            np.multiply(hs[1:], mask, out=ws.ys[k, :t])
    return ws.outputs(params.layers - 1, t, drop).reshape(N, H)


def loss_and_grads(params, grads, xs, ys, state0, ws, dropout=None):
    """Mean cross-entropy over a window and its gradients.

    params, grads: charrnn.params.FlatParams (grads overwritten). xs, ys (T, B) input and target
    ids; state0 (L, S, B, H). Returns the loss; the state after the window is ws.state and
    dLoss/dstate0 is ws.dstate0. dropout: a Dropout (training), or None.
    """
    T, B = xs.shape
    N, H, L = T * B, params.hidden, params.layers
    drop = dropout is not None and dropout.p > 0
    y = forward(params, xs, state0, ws, dropout)  # (N, H)
    np.matmul(y, params["weight_out"].T, out=ws.logits)  # (N, V)
    ws.logits += params["bias_out"]
    loss = cpu.softmax_xent(ws.logits, ys.reshape(N), ws.dlogits)
    dlogits = ws.dlogits  # (N, V)

    np.matmul(dlogits.T, y, out=grads["weight_out"])  # (V, H)
    np.sum(dlogits, axis=0, out=grads["bias_out"])
    dy = ws.dy.reshape(N, H)
    np.matmul(dlogits, params["weight_out"], out=dy)  # (N, H)
    for k in range(L - 1, -1, -1):
        layer = ws.layers[k]
        if drop:
            np.multiply(ws.dy, ws.masks[k], out=ws.dh)
            dh = ws.dh
        else:
            dh = ws.dy
        dpx, dph = layer.backward(dh, params[f"weight_hh_l{k}"], ws.dstate0[k])  # (T, B, G*H) each
        dpx, dph = dpx.reshape(N, -1), dph.reshape(N, -1)
        np.matmul(dph.T, layer.hs[:T].reshape(N, H), out=grads[f"weight_hh_l{k}"])  # (G*H, H)
        if f"bias_hh_l{k}" in grads.views:
            np.sum(dph, axis=0, out=grads[f"bias_hh_l{k}"])
        np.sum(dpx, axis=0, out=grads[f"bias_ih_l{k}"])
        if k == 0:
            cpu.scatter_rows(xs.reshape(N), dpx, grads.stored("weight_ih_l0"))
        else:
            np.matmul(dpx.T, ws.outputs(k - 1, T, drop).reshape(N, H), out=grads[f"weight_ih_l{k}"])  # (G*H, H)
            np.matmul(dpx, params[f"weight_ih_l{k}"], out=dy)  # (N, H) for the layer below
    return loss


def forward_loss_sum(params, xs, ys, state0, ws):
    """Sum of cross-entropy over a window (no gradients, no dropout); xs, ys (t, B) with t <= ws.T.
    The state after it is ws.state."""
    t, B = xs.shape
    N = t * B
    y = forward(params, xs, state0, ws)
    logits = ws.logits[:N]
    np.matmul(y, params["weight_out"].T, out=logits)
    logits += params["bias_out"]
    return cpu.xent_sum(logits, ys.reshape(N))
