"""CPU kernels, compiled by numba. Pure functions over explicit arrays; outputs are preallocated.

Shape letters: T time steps, B streams (batch), H hidden units, V vocabulary, N = T*B positions.
Token ids are any unsigned integer array. Float arrays are all float32 (training) or all float64
(gradient checks); numba compiles one version per dtype.

The CUDA module mirrors these signatures; `charrnn.reference` holds the plain-numpy oracle.
"""

import math

import numpy as np

from charrnn.kernels.draw import draw_token
from charrnn.kernels.elementwise import exp_shifted_into, like, tanh_into
from charrnn.kernels.jit import kernel
from charrnn.kernels.packed import MATRIX_GROUP, VECTOR_GROUP, matmul_groups, matmul_panels, panels_of
from charrnn.kernels.spin import claim_flag, store_flag, wait_for, wait_while


# --------------------------------------------------------------------------- recurrence


@kernel
def rnn_forward(xs, h0, Wxh, Whh, bh, hs):
    """Run the recurrence over a window.

    xs (T, B) ids, h0 (B, H), Wxh (H, V), Whh (H, H), bh (H,).
    Writes hs (T+1, B, H): hs[0] = h0, hs[t+1] = tanh(Wxh[:, xs[t]] + Whh @ hs[t] + bh).
    """
    T, B = xs.shape
    H = h0.shape[1]
    for b in range(B):  # hs[0] = h0 (an explicit loop compiles much faster than slice assignment)
        for j in range(H):
            hs[0, b, j] = h0[b, j]
    Whh_panels = panels_of(Whh, MATRIX_GROUP)  # packed once, used by every step (charrnn.kernels.packed)
    for t in range(T):
        h = hs[t + 1]
        matmul_panels(hs[t], Whh_panels, h)  # (B, H) = (B, H) @ Whh.T
        for b in range(B):
            x = xs[t, b]
            row = h[b]
            for j in range(H):
                row[j] += Wxh[j, x] + bh[j]
            tanh_into(row, row)


@kernel(fastmath=True)
def rnn_backward(hs, dhs, Whh, das, dh):
    """Backpropagate through the recurrence of a window.

    hs (T+1, B, H) from rnn_forward; dhs (T, B, H) = dLoss/dh_t from the output layer.
    Writes das (T, B, H) = dLoss/da_t (pre-activation) and dh (B, H) = dLoss/dh0.
    """
    T, B, H = dhs.shape
    dh[:] = 0.0
    WhhT_panels = panels_of(Whh.T, MATRIX_GROUP)  # for da @ Whh
    for t in range(T - 1, -1, -1):
        h = hs[t + 1]
        da = das[t]
        for b in range(B):
            for j in range(H):
                g = dhs[t, b, j] + dh[b, j]
                da[b, j] = g - g * h[b, j] * h[b, j]  # g * (1 - h²), no float64 constant
        matmul_panels(da, WhhT_panels, dh)  # (B, H) = (B, H) @ Whh


@kernel
def embed_backward(xs, das, dWxh):
    """dWxh (H, V) = sum over positions of das[p] placed in column xs[p] (one-hot input, never built).

    xs (N,) ids, das (N, H).
    """
    N, H = das.shape
    dWxh[:] = 0.0
    for p in range(N):
        x = xs[p]
        for j in range(H):
            dWxh[j, x] += das[p, j]


# --------------------------------------------------------------------------- output layer


@kernel(fastmath=True)
def softmax_xent(logits, ys, dlogits):
    """Fused softmax + cross-entropy, averaged over positions.

    logits (N, V), ys (N,) target ids. Writes dlogits (N, V) = (softmax - onehot) / N
    (may be the same array as logits). Returns the mean loss (float64).
    """
    N, V = logits.shape
    bits = np.empty(V, np.int32)
    total = 0.0
    scale = like(dlogits, 1.0 / N)
    for p in range(N):
        z = logits[p]
        d = dlogits[p]
        y = ys[p]
        zy = z[y]  # read before d (which may alias z) is written
        zmax = np.max(z)
        exp_shifted_into(z, zmax, d, bits)
        s = 0.0
        for k in range(V):
            s += d[k]
        total += math.log(s) + zmax - zy
        inv = like(d, scale / s)
        for k in range(V):
            d[k] *= inv
        d[y] -= scale
    return total / N


@kernel(fastmath=True)
def xent_sum(logits, ys):
    """Sum over positions of -log softmax(logits[p])[ys[p]] (float64). logits (N, V), ys (N,)."""
    N, V = logits.shape
    e = np.empty(V, logits.dtype)
    bits = np.empty(V, np.int32)
    total = 0.0
    for p in range(N):
        z = logits[p]
        zmax = np.max(z)
        exp_shifted_into(z, zmax, e, bits)
        s = 0.0
        for k in range(V):
            s += e[k]
        total += math.log(s) + zmax - z[ys[p]]
    return total


# --------------------------------------------------------------------------- optimisation


@kernel(fastmath=True)
def clip_by_global_norm(g, max_norm):
    """Scale the flat gradient g (P,) in place by min(1, max_norm/||g||). Returns ||g|| before clipping."""
    s = 0.0
    for i in range(g.shape[0]):
        s += g[i] * g[i]
    norm = math.sqrt(s)
    if max_norm > 0.0 and norm > max_norm:
        scale = like(g, max_norm / norm)
        for i in range(g.shape[0]):
            g[i] *= scale
    return norm


@kernel(fastmath=True)
def sgd_update(p, g, lr):
    """p -= lr * g. All flat (P,); scalars of p's dtype."""
    for i in range(p.shape[0]):
        p[i] -= lr * g[i]


@kernel(fastmath=True)
def adagrad_update(p, g, g2, lr, eps):
    """Adagrad: g2 += g²; p -= lr * g / (sqrt(g2) + eps). All flat (P,); scalars of p's dtype."""
    for i in range(p.shape[0]):
        g2[i] += g[i] * g[i]
        p[i] -= lr * g[i] / (np.sqrt(g2[i]) + eps)


@kernel(fastmath=True)
def adam_update(p, g, m, v, alpha, beta1, beta2, eps):
    """One Adam step with the bias correction folded into alpha and eps (see charrnn.optim).

    m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g²;  p <- p - alpha m / (sqrt(v) + eps).
    All flat (P,); scalars of p's dtype.
    """
    one = like(p, 1.0)
    for i in range(p.shape[0]):
        m[i] = beta1 * m[i] + (one - beta1) * g[i]
        v[i] = beta2 * v[i] + (one - beta2) * g[i] * g[i]
        p[i] -= alpha * m[i] / (np.sqrt(v[i]) + eps)


# --------------------------------------------------------------------------- sampling


# The sampler's weights: [Whh; Why] (H+V, H) packed once (charrnn.kernels.packed), so that h_t's two
# products, Whh h_t (next step) and Why h_t (logits now), are one matrix-vector product u = W h.
# Its columns come in groups; the product can be shared with a helper thread that computes the
# groups from `split` on (matvec_helper), handing work over through flags (charrnn.kernels.spin).
# Each step's helper part is claimed (compare-and-swap on flags[CLAIM]) by whichever thread gets
# there first: when the helper is not running (other programs busy on the cores), the sampler does
# the part itself instead of waiting for it.
GO, CLAIM, DONE, STOP = 0, 8, 16, -1  # flags: step published, claimed, finished by the helper


@kernel
def sampler_panels(Whh, Why):
    """[Whh; Why] (H+V, H) packed for matrix-vector products."""
    return panels_of(np.concatenate((Whh, Why)), VECTOR_GROUP)


@kernel
def rnn_advance(ids, h, Wxh, W_panels, bh, u):
    """Feed ids (N,) through the recurrence, updating h (H,) in place. W_panels from sampler_panels;
    u (1, H+V) is scratch."""
    H = h.shape[0]
    h_row = h.reshape(1, H)
    whh_groups = (H + W_panels.shape[2] - 1) // W_panels.shape[2]  # the groups holding Whh's rows
    for i in range(ids.shape[0]):
        matmul_groups(h_row, W_panels, u, 0, whh_groups)  # u[:H] = Whh @ h
        x = ids[i]
        for j in range(H):
            h[j] = u[0, j] + Wxh[j, x] + bh[j]
        tanh_into(h, h)


@kernel
def matvec_helper(h, W_panels, u, first, flags):
    """The helper thread's loop: for each step the sampler publishes in flags[GO], compute
    u[0, groups first..] = W h, then publish the step in flags[DONE]. Returns at STOP."""
    h_row = h.reshape(1, h.shape[0])
    step = 0
    while True:
        step = wait_while(flags, GO, step)
        if step == STOP:
            return
        if claim_flag(flags, CLAIM, step - 1, step):  # else the sampler took this step's part
            matmul_groups(h_row, W_panels, u, first, W_panels.shape[0])
            store_flag(flags, DONE, step)


@kernel
def sample_tokens(x, h, Wxh, W_panels, bh, by, allowed, no_repeat, temperature, top_k, top_p, stop_id, rng, out, u, flags, split):
    """Generate up to len(out) tokens for one stream, starting from input token x and state h (H,).

    Each step feeds the current token, then draws the next from the logits Why @ h + by by the rule
    of charrnn.kernels.draw (allowed (V,) bool: the tokens that may be drawn; temperature, top_k,
    top_p), with one rng.random() per token (none at temperature 0). The token no_repeat (-1: none)
    is not drawn right after itself: <eos> never follows <eos>, since training never has an empty
    record. allowed is changed for a step and restored. h is updated in place; stops
    early after emitting stop_id (pass -1 never to stop). W_panels from sampler_panels; u (1, H+V)
    scratch. This thread computes the groups of W h before `split`; when split < the number of
    groups a matvec_helper thread computes the rest (or, for the steps it has not claimed in time,
    this thread does), and is sent STOP on return. Returns how many tokens were written to out (N,).
    """
    H = h.shape[0]
    V = by.shape[0]
    z = np.empty(V, dtype=h.dtype)
    w = np.empty(V, dtype=h.dtype)
    scratch = np.empty(V, dtype=h.dtype)
    bits = np.empty(V, np.int32)
    h_row = h.reshape(1, H)
    helped = split < W_panels.shape[0]
    matmul_panels(h_row, W_panels, u)  # u[:H] = Whh @ h (the logits part is not used yet)
    n = out.shape[0]
    for i in range(out.shape[0]):
        for j in range(H):
            h[j] = u[0, j] + Wxh[j, x] + bh[j]
        tanh_into(h, h)
        if helped:
            store_flag(flags, GO, i + 1)
        matmul_groups(h_row, W_panels, u, 0, split)  # (1, H+V) = h @ [Whh; Why].T
        if helped:
            if claim_flag(flags, CLAIM, i, i + 1):  # the helper has not started: its part is done here
                matmul_groups(h_row, W_panels, u, split, W_panels.shape[0])
            else:
                wait_for(flags, DONE, i + 1)
        for k in range(V):
            z[k] = u[0, H + k] + by[k]
        r = rng.random() if temperature != 0.0 else 0.0
        repeat = x == no_repeat and allowed[x]
        if repeat:
            allowed[x] = False
        x = draw_token(z, allowed, temperature, top_k, top_p, r, w, scratch, bits)
        if repeat:
            allowed[no_repeat] = True
        out[i] = x
        if x == stop_id:
            n = i + 1
            break
    if helped:
        store_flag(flags, GO, STOP)
    return n
