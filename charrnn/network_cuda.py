"""The network on a CUDA device, for one TBPTT window: the line-for-line mirror of charrnn.network,
written once for every cell (each cell's recurrence is its own module, charrnn/cells/<name>/cuda.py,
found through charrnn.cells.modules.cuda_module).

    pre_0 = rows of weight_ih_l0 picked by the ids + bias_ih_l0      (N, G*H)   gather_rows
    pre_k = y_{k-1} @ weight_ih_lk.T + bias_ih_lk                    (N, G*H)   linear
    h_k   = the cell's recurrence over pre_k from state0[k]          (T, B, H)  one launch per step
    y_k   = h_k * mask_k (dropout, training only)                    (T, B, H)  dropout_forward
    loss  = mean softmax cross-entropy of y_{L-1} @ weight_out.T + bias_out

Backward runs the same list upwards, as on the CPU. Everything here only launches (no transfer,
no synchronisation): the loss lands in ws.stats[LOSS] on the device. Importing this module imports
numba.cuda: only the CUDA path does (cuda_backend, evaluate, train_steps and sample_cuda, lazily).

Parameters are a charrnn.cuda_backend.DeviceParams: dp[name] is the device view of a parameter in
FlatParams' storage (weight_ih_l0 as stored, (V, G*H)). A state (state0, ws.state, ws.dstate0) is
(L, S, B, H); state0 may be ws.state itself (each layer reads its initial state before it writes
its final one), which is how the training loop carries it without a copy.
"""

import numpy as np
from numba import cuda

from charrnn.cells.modules import cuda_module
from charrnn.kernels import cuda as K
from charrnn.kernels.cuda_dropout import dropout_forward
from charrnn.kernels.dropout import threshold

f32 = np.float32


class DeviceWorkspace:
    """Device buffers for windows of up to T steps over B streams (charrnn.network.Workspace's),
    with the views the launches take made once (numba-cuda spends tens of microseconds on each)."""

    def __init__(self, arch, T, B):
        G, H, V, L = arch.gates, arch.hidden, arch.vocab_size, arch.layers
        N = T * B
        if K.blocks(N, K.TILE) > 65535:  # the products over positions put N on the grid's y axis
            raise ValueError(f"a window of T*B = {N} positions is more than {65535 * K.TILE}; lower --seq or --batch")
        self.arch, self.T, self.B = arch, T, B
        module = cuda_module(arch.cell)
        self.layers = [module.Layer(T, B, H) for _ in range(L)]
        self.xy = K.zeros((2, T, B), np.int32)  # input and target ids of the window
        self.xy_host = cuda.pinned_array((2, T, B), np.int32)  # staging buffer for the copy in
        self.pre = K.zeros((T, B, G * H))  # one layer's input projection at a time
        self.pre_t = [self.pre[t] for t in range(T)]
        self.masks = self.ys = None  # (L, T, B, H), made at the first window with dropout
        self.logits = K.zeros((N, V))  # logits, then (in place) their gradient
        self.row_loss = K.zeros(N, np.float64)
        self.dy = K.zeros((T, B, H))  # dLoss/d(a layer's output after dropout)
        self.dh = K.zeros((T, B, H))  # ... before dropout
        self.dy_t, self.dh_t = [self.dy[t] for t in range(T)], [self.dh[t] for t in range(T)]
        self.zero_bias = K.zeros(G * H)  # bias_hh of cells that keep none
        self.state = K.zeros(arch.state_shape(B))  # (L, S, B, H) after the window
        self.dstate0 = K.zeros(arch.state_shape(B))  # (L, S, B, H) dLoss/dstate0
        self.state_v, self.dstate0_v = state_views(self.state), state_views(self.dstate0)
        self.stats = K.zeros(2, np.float64)  # [loss, gradient norm]
        self.stats_host = cuda.pinned_array(2, np.float64)
        self._views = {}

    def view(self, key, make):
        """make() the first time `key` is asked for, the same view after that."""
        v = self._views.get(key)
        if v is None:
            v = self._views[key] = make()
        return v

    def ids(self, which, t):
        """The window's input (which = 0) or target (1) ids of t steps, flat (t*B,)."""
        return self.view(("ids", which, t), lambda: self.xy[which, :t].reshape(t * self.B))

    def load(self, xs, ys):
        """Copy a window's ids xs, ys (t, B), t <= T, from the host (one transfer)."""
        t = xs.shape[0]
        self.xy_host[0, :t] = xs
        self.xy_host[1, :t] = ys
        self.xy.copy_to_device(self.xy_host)

    def use_dropout(self):
        if self.masks is None:
            shape = (self.arch.layers, self.T, self.B, self.arch.hidden)
            self.masks, self.ys = K.zeros(shape), K.zeros(shape)

    def outputs(self, k, t, dropout):
        """Layer k's output y_k (t*B, H) as the next layer (or the head) sees it."""
        N, H = t * self.B, self.arch.hidden
        if dropout:
            return self.view(("ys", k, t), lambda: self.ys[k, :t].reshape(N, H))
        return self.view(("hs", k, t), lambda: self.layers[k].hs[1 : t + 1].reshape(N, H))

    def inputs_h(self, k, t):
        """Layer k's h_{t-1} for every step, (t*B, H): what weight_hh multiplies."""
        return self.view(("hprev", k, t), lambda: self.layers[k].hs[:t].reshape(t * self.B, self.arch.hidden))


def state_views(state):
    """[[state[k, s] for s < S] for k < L]: the (B, H) views of an (L, S, B, H) device state."""
    return [[state[k, s] for s in range(state.shape[1])] for k in range(state.shape[0])]


def _bias_hh(dp, ws, k):
    name = f"bias_hh_l{k}"
    return dp[name] if name in dp.views else ws.zero_bias


def forward(dp, ws, t, state0, dropout=None):
    """Run the layers over the window's first t steps (ids in ws.xy) from state0 (L, S, B, H) (or
    state_views of one). Leaves the state after it in ws.state and returns the last layer's output
    y (t*B, H) that the head reads. dropout: a charrnn.network.Dropout, or None."""
    B, H, L, GH = ws.B, ws.arch.hidden, ws.arch.layers, ws.arch.gates * ws.arch.hidden
    N = t * B
    drop = dropout is not None and dropout.p > 0
    if drop:
        ws.use_dropout()
        limit, scale = threshold(dropout.p), f32(1.0 / (1.0 - dropout.p))
    P = ws.view(("pre", t), lambda: ws.pre[:t].reshape(N, GH))  # (N, G*H)
    for k, layer in enumerate(ws.layers):
        if k == 0:
            K.gather_rows[K.flat(N * GH)](ws.ids(0, t), dp["weight_ih_l0"], dp["bias_ih_l0"], P)
        else:
            K.linear[K.tiled(N, GH)](ws.outputs(k - 1, t, drop), dp[f"weight_ih_l{k}"], dp[f"bias_ih_l{k}"], P)
        hs = layer.forward(ws.pre_t[:t], dp[f"weight_hh_l{k}"], _bias_hh(dp, ws, k), state0[k])
        layer.final(ws.state_v[k])
        if drop:
            h, mask, y = ws.view(("drop", k, t), lambda: (hs[1 : t + 1], ws.masks[k, :t], ws.ys[k, :t]))
            dropout_forward[K.flat(N * H)](dropout.seed, dropout.step, k, limit, scale, dropout.stream0, h, mask, y)
    return ws.outputs(L - 1, t, drop)


def loss_and_grads(dp, dg, ws, state0, dropout=None):
    """Mean cross-entropy over the whole window (T, B) of ids in ws.xy and its gradients.

    dp, dg: DeviceParams (dg overwritten); state0 (L, S, B, H) (or its state_views; may be
    ws.state). The loss lands in ws.stats[LOSS], the state after the window in ws.state and
    dLoss/dstate0 in ws.dstate0. dropout: a charrnn.network.Dropout (training), or None.
    """
    T, B, H, L, V = ws.T, ws.B, ws.arch.hidden, ws.arch.layers, ws.arch.vocab_size
    N, GH = T * B, ws.arch.gates * ws.arch.hidden
    drop = dropout is not None and dropout.p > 0
    y = forward(dp, ws, T, state0, dropout)  # (N, H)
    logits = ws.logits  # (N, V), then in place dlogits
    K.product(y, dp["weight_out"], logits, tb=True)
    K.softmax_xent[N, K.pow2_threads(V)](logits, dp["bias_out"], ws.ids(1, T), logits, ws.row_loss, f32(1.0 / N), True)
    K.finish_sum[1, K.REDUCE_THREADS](ws.row_loss, ws.stats, K.LOSS, 1.0 / N, False)
    dlogits = logits

    K.product(dlogits, y, dg["weight_out"], ta=True)  # (V, H)
    K.sums_of_columns(dlogits, dg["bias_out"])
    dy = ws.view("dy", lambda: ws.dy.reshape(N, H))
    K.product(dlogits, dp["weight_out"], dy)  # (N, H)
    for k in range(L - 1, -1, -1):
        layer = ws.layers[k]
        if drop:
            dy_mask_dh = ws.view(("flat", k), lambda: (ws.dy.reshape(N * H), ws.masks[k].reshape(N * H), ws.dh.reshape(N * H)))
            K.multiply[K.flat(N * H)](*dy_mask_dh)  # dh = dy * mask
            dh = ws.dh_t
        else:
            dh = ws.dy_t
        dpx, dph = layer.backward(dh, dp[f"weight_hh_l{k}"], ws.dstate0_v[k])  # (T, B, G*H) each
        dpx, dph = ws.view(("dpre", k), lambda: (dpx.reshape(N, GH), dph.reshape(N, GH)))
        K.product(dph, ws.inputs_h(k, T), dg[f"weight_hh_l{k}"], ta=True)  # (G*H, H)
        if f"bias_hh_l{k}" in dg.views:
            K.sums_of_columns(dph, dg[f"bias_hh_l{k}"])
        K.sums_of_columns(dpx, dg[f"bias_ih_l{k}"])
        if k == 0:
            dW = dg["weight_ih_l0"]  # (V, G*H) as stored
            K.fill[K.flat(dW.size)](dg.blocks["weight_ih_l0"], f32(0.0))
            K.scatter_rows[K.flat(N * GH)](ws.ids(0, T), dpx, dW)
        else:
            K.product(dpx, ws.outputs(k - 1, T, drop), dg[f"weight_ih_l{k}"], ta=True)  # (G*H, H)
            K.product(dpx, dp[f"weight_ih_l{k}"], dy)  # (N, H) for the layer below


def forward_loss_sum(dp, ws, t, state0):
    """The summed cross-entropy of the window's first t steps (no gradients, no dropout), into
    ws.stats[LOSS]; the state after it is ws.state. state0 as in forward (may be ws.state)."""
    N, V = t * ws.B, ws.arch.vocab_size
    y = forward(dp, ws, t, state0)
    logits, rows = ws.view(("logits", t), lambda: (ws.logits[:N], ws.row_loss[:N]))
    K.product(y, dp["weight_out"], logits, tb=True)
    K.softmax_xent[N, K.pow2_threads(V)](logits, dp["bias_out"], ws.ids(1, t), logits, rows, f32(0.0), False)
    K.finish_sum[1, K.REDUCE_THREADS](rows, ws.stats, K.LOSS, 1.0, False)
