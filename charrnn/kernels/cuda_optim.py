"""CUDA kernels of clipping and the optimizers (numba-cuda): cpu.clip_by_global_norm's last stage,
cpu.decay_weights, cpu.sgd_update, cpu.adagrad_update and cpu.adam_update, over flat (P,) float32
device buffers, one thread per entry (launch: a 1-d grid over P).

Scalars are float32; Adam's bias corrections are folded into alpha and eps_hat on the host, as on
the CPU (charrnn.optim). Nothing changes when stats (float64: [loss, norm], see
charrnn.kernels.cuda.LOSS / NORM) holds a non-finite loss or norm, so a diverged step leaves the
last good parameters in place, as the CPU, which skips the whole optimizer step then.
"""

import math

import numba
from numba import cuda

from charrnn.kernels.cuda import LOSS, NORM

f32 = numba.float32


@cuda.jit(device=True, inline="always")
def _finite(stats):
    return math.isfinite(stats[LOSS]) and math.isfinite(stats[NORM])


@cuda.jit
def clip_by_norm(g, stats, max_norm):
    """g (P,) *= max_norm / ||g|| when 0 < max_norm < ||g|| = stats[NORM]."""
    i = cuda.grid(1)
    norm = stats[NORM]
    if i < g.shape[0] and max_norm > 0.0 and norm > max_norm:
        g[i] *= f32(max_norm / norm)


@cuda.jit
def decay_weights(p, mask, rate, stats):
    """Decoupled weight decay (AdamW), before the update: p -= rate * mask * p; mask (P,) is 1 on
    weights, 0 on biases (FlatParams.decay_mask), rate = lr * weight_decay."""
    i = cuda.grid(1)
    if i < p.shape[0] and _finite(stats):
        p[i] -= rate * mask[i] * p[i]


@cuda.jit
def sgd_update(p, g, lr, stats):
    """p -= lr * g."""
    i = cuda.grid(1)
    if i < p.shape[0] and _finite(stats):
        p[i] -= lr * g[i]


@cuda.jit
def adagrad_update(p, g, g2, lr, eps, stats):
    """g2 += g^2; p -= lr * g / (sqrt(g2) + eps)."""
    i = cuda.grid(1)
    if i < p.shape[0] and _finite(stats):
        gi = g[i]
        s = g2[i] + gi * gi
        g2[i] = s
        p[i] -= lr * gi / (math.sqrt(s) + eps)


@cuda.jit
def adam_update(p, g, m, v, alpha, beta1, beta2, eps_hat, stats):
    """m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= alpha m / (sqrt(v) + eps_hat).
    alpha = lr sqrt(1-b2^t) / (1-b1^t), eps_hat = eps sqrt(1-b2^t): cpu.adam_update's bias correction.
    """
    i = cuda.grid(1)
    if i < p.shape[0] and _finite(stats):
        gi = g[i]
        mi = beta1 * m[i] + (f32(1.0) - beta1) * gi
        vi = beta2 * v[i] + (f32(1.0) - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= alpha * mi / (math.sqrt(vi) + eps_hat)


_V, _S = "float32[::1]", "float64[::1]"
SIGNATURES = {
    "clip_by_norm": f"void({_V}, {_S}, float64)",
    "decay_weights": f"void({_V}, {_V}, float32, {_S})",
    "sgd_update": f"void({_V}, {_V}, float32, {_S})",
    "adagrad_update": f"void({_V}, {_V}, {_V}, float32, float32, {_S})",
    "adam_update": f"void({_V}, {_V}, {_V}, {_V}, float32, float32, float32, float32, {_S})",
}
FLOAT32_ONLY = set()  # each reads the float64 stats
