"""Plain-numpy reference of the model: slow, obvious, float64. The test oracle for every kernel.

Written straight from the equations of the model contract (L stacked layers of one cell, inverted
dropout on every layer's output), one time step and one stream at a time, with explicit one-hot
vectors for layer 0's input, so that it shares no code (and no cleverness) with the kernels it
checks. Each cell's own step, forward and backward, is its charrnn/cells/<name>/reference.py,
found through the registry (charrnn.cells.CELLS); this module is the rest: the layers, dropout,
the head, the loss and the weight gradients. Imports only numpy and the registry.

Letters: T time steps, B streams, H hidden, V vocabulary, L layers, I the layer's input size (V
for layer 0, H above); G gate blocks and S state arrays per layer (h first), as the cell's
reference.py declares them (GATES, STATES), its gate rows in PyTorch's order.
"""

import numpy as np

from charrnn.cells import CELLS, module

CELL_STEPS = {cell: module(cell, "reference") for cell in CELLS}  # each cell's forward / backward step
GATES = {cell: ref.GATES for cell, ref in CELL_STEPS.items()}
STATES = {cell: ref.STATES for cell, ref in CELL_STEPS.items()}


def param_shapes(cell, layers, hidden, vocab_size):
    """Logical parameter shapes, name -> shape, in order: per layer k weight_ih_l{k} (G*H, I_k),
    weight_hh_l{k} (G*H, H), bias_ih_l{k} (G*H,), [bias_hh_l{k} (G*H,) for a cell that keeps it
    (HIDDEN_BIAS)], then weight_out (V, H), bias_out (V,)."""
    G, H, V = GATES[cell], hidden, vocab_size
    shapes = {}
    for k in range(layers):
        shapes[f"weight_ih_l{k}"] = (G * H, V if k == 0 else H)
        shapes[f"weight_hh_l{k}"] = (G * H, H)
        shapes[f"bias_ih_l{k}"] = (G * H,)
        if CELL_STEPS[cell].HIDDEN_BIAS:  # where b_ih cannot stand in for it (the gru's: r*(W_hn h + b_hn))
            shapes[f"bias_hh_l{k}"] = (G * H,)
    shapes["weight_out"] = (V, H)
    shapes["bias_out"] = (V,)
    return shapes


def random_params(cell, layers, hidden, vocab_size, rng, scale=0.5):
    """float64 arrays of param_shapes, every entry (biases too) uniform in [-scale, scale)."""
    return {name: rng.uniform(-scale, scale, size=shape)
            for name, shape in param_shapes(cell, layers, hidden, vocab_size).items()}


def _one_hot(i, V):
    x = np.zeros(V)
    x[i] = 1.0
    return x


def _weights(cell, params, layer):
    """(W_ih (G*H, I), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)); b_hh is zero for a cell without it."""
    Wih, Whh, bih = (params[f"{n}_l{layer}"] for n in ("weight_ih", "weight_hh", "bias_ih"))
    bhh = params[f"bias_hh_l{layer}"] if CELL_STEPS[cell].HIDDEN_BIAS else np.zeros_like(bih)
    return Wih, Whh, bih, bhh


def _cell_forward(cell, W, x, state_l):
    """One step of one layer for one stream. x (I,), state_l (S, H).
    Returns (new state (S, H), saved: what _cell_backward needs)."""
    state_l = np.array(state_l, float)  # a copy: the caller overwrites its state in place
    new, saved = CELL_STEPS[cell].forward(W, x, state_l)
    return new, (x, state_l[0], saved)


def _cell_backward(cell, W, dW, s, dstate):
    """Backward of one _cell_forward step. dstate (S, H): the gradient w.r.t. the new state.
    Accumulates into dW = [dW_ih, dW_hh, db_ih, db_hh] in place. Returns (dx (I,), dstate_prev (S, H))."""
    x, h, saved = s
    dgx, dgh, dprev = CELL_STEPS[cell].backward(W, saved, dstate)  # dLoss/d(W_ih x + b_ih), d(W_hh h + b_hh)
    dW[0] += np.outer(dgx, x)
    dW[1] += np.outer(dgh, h)
    dW[2] += dgx
    dW[3] += dgh  # b_hh's: read only for a cell that keeps it (else it equals b_ih's)
    return W[0].T @ dgx, dprev


def step(cell, params, layer, x_vec, state_l):
    """One time step of one layer for one stream: x_vec (I,), state_l (S, H) -> new state (S, H)."""
    return _cell_forward(cell, _weights(cell, params, layer), np.asarray(x_vec, float), state_l)[0]


def logits(params, y_vec):
    """Output-layer logits (V,) of y_vec (H,), the last layer's (dropped-out) output."""
    return params["weight_out"] @ y_vec + params["bias_out"]


def forward(cell, params, xs, ys, state0, masks=None):
    """Mean cross-entropy over a window.

    xs, ys (T, B) int ids; state0 (L, S, B, H); masks None or (L, T, B, H), multiplied onto each
    layer's output (before the next layer and before the output layer, not on the recurrence).
    Returns (loss, cache) with cache["state"] (L, S, B, H) the state after the last step,
    cache["probs"] (T, B, V), cache["outputs"] a list per layer of h_t before dropout (T, B, H),
    and cache["saved"][l][t][b] the per-step values for backward.
    """
    state0 = np.asarray(state0, float)
    L, S, B, H = state0.shape
    T = xs.shape[0]
    V = params["weight_out"].shape[0]
    W = [_weights(cell, params, l) for l in range(L)]
    state = state0.copy()
    outputs = [np.zeros((T, B, H)) for _ in range(L)]
    probs = np.zeros((T, B, V))
    saved = [[[None] * B for _ in range(T)] for _ in range(L)]
    loss = 0.0
    for t in range(T):
        for b in range(B):
            x = _one_hot(xs[t, b], V)
            for l in range(L):
                state[l, :, b], saved[l][t][b] = _cell_forward(cell, W[l], x, state[l, :, b])
                outputs[l][t, b] = state[l, 0, b]
                # dropout only on what flows upward; the carried state keeps the undropped h
                x = state[l, 0, b] * masks[l, t, b] if masks is not None else state[l, 0, b].copy()
            z = logits(params, x)
            p = np.exp(z - z.max())  # shifted for stability; softmax is shift-invariant
            p /= p.sum()
            probs[t, b] = p
            loss -= np.log(p[ys[t, b]])
    cache = dict(state=state, probs=probs, outputs=outputs, saved=saved)
    return loss / (T * B), cache


def backward(cell, params, xs, ys, state0, cache, masks=None):
    """Gradients of forward's mean loss by backpropagation through time.

    Same xs, ys, state0, masks as forward, and its cache. Returns (grads, dstate0): grads a dict
    like params, dstate0 (L, S, B, H) the gradient w.r.t. state0.
    """
    state0 = np.asarray(state0, float)
    L, S, B, H = state0.shape
    T = xs.shape[0]
    Wout = params["weight_out"]
    W = [_weights(cell, params, l) for l in range(L)]
    dW = [[np.zeros_like(w) for w in W[l]] for l in range(L)]
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    dstate0 = np.zeros_like(state0)
    for b in range(B):  # streams never interact: each has its own chain through time
        dcarry = np.zeros((L, S, H))  # gradient w.r.t. the state each layer passes to step t+1
        for t in reversed(range(T)):
            dz = cache["probs"][t, b].copy()
            dz[ys[t, b]] -= 1.0  # softmax + cross-entropy: p - onehot(target)
            dz /= T * B  # the loss is a mean
            top = cache["outputs"][L - 1][t, b]
            y = top * masks[L - 1, t, b] if masks is not None else top
            grads["weight_out"] += np.outer(dz, y)
            grads["bias_out"] += dz
            dy = Wout.T @ dz  # gradient w.r.t. the dropped-out output of the layer being walked
            for l in reversed(range(L)):
                dstate = dcarry[l].copy()  # h and c from step t+1, and h from above too
                dstate[0] += dy * masks[l, t, b] if masks is not None else dy
                dy, dcarry[l] = _cell_backward(cell, W[l], dW[l], cache["saved"][l][t][b], dstate)
        dstate0[:, :, b] = dcarry
    for l in range(L):
        grads[f"weight_ih_l{l}"] += dW[l][0]
        grads[f"weight_hh_l{l}"] += dW[l][1]
        grads[f"bias_ih_l{l}"] += dW[l][2]
        if CELL_STEPS[cell].HIDDEN_BIAS:
            grads[f"bias_hh_l{l}"] += dW[l][3]
    return grads, dstate0


def numeric_grad(cell, params, xs, ys, state0, masks, name, index, eps=1e-6):
    """Central difference of the mean loss w.r.t. params[name][index], or w.r.t. state0[index]
    when name == "state0". Works on copies; the arguments are left untouched."""
    def loss_at(delta):
        p = dict(params)
        s0 = np.array(state0, float)
        if name == "state0":
            s0[index] += delta
        else:
            p[name] = np.array(params[name], float)
            p[name][index] += delta
        return forward(cell, p, xs, ys, s0, masks)[0]
    return (loss_at(eps) - loss_at(-eps)) / (2 * eps)
