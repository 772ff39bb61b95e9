"""CPU kernels shared by every cell, compiled by numba. Pure functions over explicit arrays;
outputs are preallocated. The cells' recurrences are in charrnn/cells/<name>/cpu.py, the
sampler's loop in charrnn.kernels.sampling.

Shape letters: T time steps, B streams (batch), H hidden units, V vocabulary, N = T*B positions.
Token ids are any unsigned integer array. Float arrays are all float32 (training) or all float64
(gradient checks); numba compiles one version per dtype.

The CUDA module mirrors these signatures; `charrnn.reference` holds the plain-numpy oracle.
"""

import math

import numpy as np

from charrnn.kernels.elementwise import exp_shifted_into, like
from charrnn.kernels.jit import kernel


# --------------------------------------------------------------------------- layer 0's input


@kernel
def gather_rows(xs, Wt, bias, out):
    """out (N, G*H) = Wt[xs[p]] + bias: layer 0's input projection of one-hot ids (never built).

    xs (N,) ids; Wt (V, G*H) = weight_ih_l0 as stored (a token's weights are one row); bias (G*H,).
    """
    N, M = out.shape
    for p in range(N):
        row, src = out[p], Wt[xs[p]]
        for k in range(M):
            row[k] = src[k] + bias[k]


@kernel
def scatter_rows(xs, d, dWt):
    """dWt (V, G*H) = sum over positions p of d[p] added to row xs[p]: gather_rows' weight gradient."""
    N, M = d.shape
    dWt[:] = 0.0
    for p in range(N):
        row, src = dWt[xs[p]], d[p]
        for k in range(M):
            row[k] += src[k]


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
def decay_weights(p, mask, rate):
    """Decoupled weight decay (AdamW): p -= rate * mask * p, mask (P,) 1 on weights, 0 on biases."""
    for i in range(p.shape[0]):
        p[i] -= rate * mask[i] * p[i]


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
