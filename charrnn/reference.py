"""Plain-numpy reference of the model: slow, obvious, float64. The test oracle for every kernel.

Written straight from the equations, step by step, with explicit one-hot vectors, so that it
shares no code (and no cleverness) with the kernels it checks.
"""

import numpy as np


def forward(params, xs, ys, h0):
    """Mean cross-entropy over a window and the hidden states.

    params: dict of float64 arrays Wxh (H, V), Whh (H, H), bh (H,), Why (V, H), by (V,).
    xs, ys (T, B) ids; h0 (B, H). Returns (loss, hs (T+1, B, H), probs (T, B, V)).
    """
    Wxh, Whh, bh, Why, by = (params[n] for n in ("Wxh", "Whh", "bh", "Why", "by"))
    T, B = xs.shape
    H, V = Wxh.shape
    hs = np.zeros((T + 1, B, H))
    probs = np.zeros((T, B, V))
    hs[0] = h0
    loss = 0.0
    for t in range(T):
        for b in range(B):
            x = np.zeros(V)
            x[xs[t, b]] = 1.0
            hs[t + 1, b] = np.tanh(Wxh @ x + Whh @ hs[t, b] + bh)
            y = Why @ hs[t + 1, b] + by
            p = np.exp(y - y.max())
            p /= p.sum()
            probs[t, b] = p
            loss -= np.log(p[ys[t, b]])
    return loss / (T * B), hs, probs


def backward(params, xs, ys, hs, probs):
    """Gradients of the mean loss, by backpropagation through time. Returns a dict like params."""
    Wxh, Whh, Why = params["Wxh"], params["Whh"], params["Why"]
    T, B = xs.shape
    H, V = Wxh.shape
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    for b in range(B):
        dh_next = np.zeros(H)
        for t in reversed(range(T)):
            dy = probs[t, b].copy()
            dy[ys[t, b]] -= 1.0
            dy /= T * B
            grads["Why"] += np.outer(dy, hs[t + 1, b])
            grads["by"] += dy
            dh = Why.T @ dy + dh_next
            da = (1.0 - hs[t + 1, b] ** 2) * dh
            x = np.zeros(V)
            x[xs[t, b]] = 1.0
            grads["Wxh"] += np.outer(da, x)
            grads["Whh"] += np.outer(da, hs[t, b])
            grads["bh"] += da
            dh_next = Whh.T @ da
    return grads


def numeric_grad(params, xs, ys, h0, name, index, eps=1e-6):
    """Central difference of the mean loss with respect to params[name][index]."""
    value = params[name][index]
    params[name][index] = value + eps
    plus = forward(params, xs, ys, h0)[0]
    params[name][index] = value - eps
    minus = forward(params, xs, ys, h0)[0]
    params[name][index] = value
    return (plus - minus) / (2 * eps)
