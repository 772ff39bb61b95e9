"""Plain-numpy reference of the model: slow, obvious, float64. The test oracle for every kernel.

Written straight from the equations of the model contract (cells rnn / lstm / gru, L stacked
layers, inverted dropout on every layer's output), one time step and one stream at a time, with
explicit one-hot vectors for layer 0's input, so that it shares no code (and no cleverness) with
the kernels it checks. Imports only numpy.

Letters: T time steps, B streams, H hidden, V vocabulary, G gates (rnn 1, lstm 4, gru 3),
L layers, S state arrays per layer (rnn 1, gru 1, lstm 2: h then c), I the layer's input size
(V for layer 0, H above). Gate row order as PyTorch: lstm [i; f; g; o], gru [r; z; n].
"""

import numpy as np

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
STATES = {"rnn": 1, "lstm": 2, "gru": 1}


def param_shapes(cell, layers, hidden, vocab_size):
    """Logical parameter shapes, name -> shape, in order: per layer k weight_ih_l{k} (G*H, I_k),
    weight_hh_l{k} (G*H, H), bias_ih_l{k} (G*H,), [bias_hh_l{k} (G*H,) gru only], then
    weight_out (V, H), bias_out (V,)."""
    G, H, V = GATES[cell], hidden, vocab_size
    shapes = {}
    for k in range(layers):
        shapes[f"weight_ih_l{k}"] = (G * H, V if k == 0 else H)
        shapes[f"weight_hh_l{k}"] = (G * H, H)
        shapes[f"bias_ih_l{k}"] = (G * H,)
        if cell == "gru":  # gru's b_hh sits inside r*(W_hh h + b_hh), so it is not redundant
            shapes[f"bias_hh_l{k}"] = (G * H,)
    shapes["weight_out"] = (V, H)
    shapes["bias_out"] = (V,)
    return shapes


def random_params(cell, layers, hidden, vocab_size, rng, scale=0.5):
    """float64 arrays of param_shapes, every entry (biases too) uniform in [-scale, scale)."""
    return {name: rng.uniform(-scale, scale, size=shape)
            for name, shape in param_shapes(cell, layers, hidden, vocab_size).items()}


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _one_hot(i, V):
    x = np.zeros(V)
    x[i] = 1.0
    return x


def _weights(cell, params, layer):
    """(W_ih (G*H, I), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)); b_hh is zero for rnn and lstm."""
    Wih, Whh, bih = (params[f"{n}_l{layer}"] for n in ("weight_ih", "weight_hh", "bias_ih"))
    bhh = params[f"bias_hh_l{layer}"] if cell == "gru" else np.zeros_like(bih)
    return Wih, Whh, bih, bhh


def _cell_forward(cell, W, x, state_l):
    """One step of one layer for one stream. x (I,), state_l (S, H).
    Returns (new state (S, H), saved: what _cell_backward needs)."""
    Wih, Whh, bih, bhh = W
    H = Whh.shape[1]
    state_l = np.array(state_l, float)  # a copy: the caller overwrites its state in place
    h = state_l[0]
    if cell == "rnn":
        hn = np.tanh(Wih @ x + bih + Whh @ h)
        return hn[None].copy(), dict(x=x, h=h, hn=hn)
    if cell == "lstm":
        c = state_l[1]
        a = Wih @ x + bih + Whh @ h
        i, f = _sig(a[:H]), _sig(a[H:2 * H])
        g, o = np.tanh(a[2 * H:3 * H]), _sig(a[3 * H:])
        cn = f * c + i * g
        tc = np.tanh(cn)
        hn = o * tc
        return np.stack([hn, cn]), dict(x=x, h=h, c=c, i=i, f=f, g=g, o=o, tc=tc)
    # gru
    gx = Wih @ x + bih
    gh = Whh @ h + bhh
    r = _sig(gx[:H] + gh[:H])
    z = _sig(gx[H:2 * H] + gh[H:2 * H])
    n = np.tanh(gx[2 * H:] + r * gh[2 * H:])
    hn = (1.0 - z) * n + z * h
    return hn[None].copy(), dict(x=x, h=h, r=r, z=z, n=n, ghn=gh[2 * H:])


def _cell_backward(cell, W, dW, s, dh, dc):
    """Backward of one _cell_forward step. dh, dc (H,): gradients w.r.t. the new h and c (dc only
    for lstm). Accumulates into dW = [dW_ih, dW_hh, db_ih, db_hh] in place.
    Returns (dx (I,), dstate_prev (S, H))."""
    Wih, Whh = W[0], W[1]
    if cell == "rnn":
        da = (1.0 - s["hn"] ** 2) * dh
        dgx = dgh = da
        dprev = [Whh.T @ da]
    elif cell == "lstm":
        i, f, g, o, tc = s["i"], s["f"], s["g"], s["o"], s["tc"]
        do = dh * tc
        dcn = dc + dh * o * (1.0 - tc ** 2)  # c' reaches the loss both carried and through h'
        di, df, dg = dcn * g, dcn * s["c"], dcn * i
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)])
        dgx = dgh = da
        dprev = [Whh.T @ da, dcn * f]
    else:  # gru
        r, z, n, h = s["r"], s["z"], s["n"], s["h"]
        dn = dh * (1.0 - z)
        dz = dh * (h - n)
        dan = dn * (1.0 - n ** 2)
        dr = dan * s["ghn"]  # r multiplies the hidden part of n's pre-activation
        dar, daz = dr * r * (1 - r), dz * z * (1 - z)
        dgx = np.concatenate([dar, daz, dan])
        dgh = np.concatenate([dar, daz, dan * r])
        dprev = [Whh.T @ dgh + dh * z]  # h reaches h' through W_hh and directly through z*h
    dW[0] += np.outer(dgx, s["x"])
    dW[1] += np.outer(dgh, s["h"])
    dW[2] += dgx
    dW[3] += dgh  # b_hh: only kept for gru (for rnn/lstm it is b_ih's gradient again)
    return Wih.T @ dgx, np.stack(dprev)


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
                dh = (dy * masks[l, t, b] if masks is not None else dy) + dcarry[l, 0]
                dc = dcarry[l, 1] if S == 2 else None
                dy, dcarry[l] = _cell_backward(cell, W[l], dW[l], cache["saved"][l][t][b], dh, dc)
        dstate0[:, :, b] = dcarry
    for l in range(L):
        grads[f"weight_ih_l{l}"] += dW[l][0]
        grads[f"weight_hh_l{l}"] += dW[l][1]
        grads[f"bias_ih_l{l}"] += dW[l][2]
        if cell == "gru":
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
