"""Choosing the next token from the logits: the allowed tokens, temperature, top-k, top-p, one draw.

The rule, step by step (the CUDA kernel charrnn.kernels.cuda_draw.draw_token takes the same steps):
  1. Only allowed tokens take part. <unk> is never allowed; <eos> is not in a stream (charrnn.sample).
     Its probability is removed before anything else, so the rest are renormalised among themselves.
  2. Temperature 0: the allowed token with the largest logit (the first such id on a tie).
  3. Else the weights w = exp((z - zmax) / temperature) over the allowed tokens, then
     top-k: only tokens whose logit is at least the k-th largest allowed logit keep their weight
     (ties at the k-th value all stay; k <= 0 or k >= the allowed count: no cut), then
     top-p: only the smallest set of the largest weights whose mass reaches top_p of the total keeps
     its weight (ties at the boundary all stay; top_p = 1: no cut).
  4. With one uniform number u in [0, 1): the first token, in id order, at which the running sum of
     the remaining weights passes u times their total.
Nothing sorts: both cuts are quickselects, O(V) on average (top-p adds 0.3-0.5 us to a 0.2 us draw at V = 67).

Shapes: V tokens. z (V,) float32 logits; allowed (V,) bool; w, scratch (V,) float32; bits (V,) int32.
"""

import numpy as np

from charrnn.kernels.elementwise import exp_shifted_into, like
from charrnn.kernels.jit import kernel


@kernel
def kth_largest(values, n, k):
    """The k-th largest of values[:n] (1 <= k <= n), by quickselect; reorders values[:n].
    (Cheaper to compile than numba's sort, and O(n) on average.)"""
    target = n - k  # its index in ascending order
    lo, hi = 0, n - 1
    while lo < hi:
        pivot = values[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:  # Hoare partition: values[lo..j] <= pivot <= values[i..hi]
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break  # values[j+1..i-1] all equal the pivot
    return values[target]


@kernel
def nucleus_cut(values, n, need, spare):
    """The smallest c among values[:n] (positive weights) such that the values >= c sum to at least
    `need`: the top-p boundary. 0 when even all of them fall short (rounding, with need near the
    total). Reorders values[:n]; spare (n or more) is scratch.

    A quickselect that keeps mass: split around a pivot into larger and smaller (and equal); the cut
    lies in the larger part when it alone reaches `need`, at the pivot when the equal part completes
    it, else in the smaller part, with the mass above it counted. The split stores every value in
    both parts and only moves their ends, so it has no branch to mispredict (3x faster than a
    swapping partition on 67 random weights: 0.35 us instead of 1 us per draw, measured here).
    """
    above = 0.0
    while n > 0:
        pivot = values[n // 2]
        n_larger, n_smaller = 0, 0
        larger = 0.0
        for i in range(n):
            v = values[i]
            spare[n_larger] = v
            values[n_smaller] = v  # never ahead of i: nothing unread is overwritten
            is_larger = v > pivot
            n_larger += is_larger
            n_smaller += v < pivot
            larger += v if is_larger else 0.0
        equal = pivot * (n - n_larger - n_smaller)
        if above + larger >= need:  # the larger part (not empty: need > above) is in spare now
            values, spare = spare, values
            n = n_larger
        elif above + larger + equal >= need:
            return pivot
        else:
            above += larger + equal
            n = n_smaller
    return like(values, 0.0)  # keep every weight


@kernel
def best_allowed(z, allowed):
    """The allowed token with the largest logit (the first on a tie); -1 when none is allowed."""
    best = -1
    for k in range(z.shape[0]):
        if allowed[k] and (best < 0 or z[k] > z[best]):
            best = k
    return best


@kernel(fastmath=True)
def token_weights(z, allowed, temperature, top_k, top_p, w, scratch, bits):
    """Steps 1 and 3 of the rule (temperature > 0): w (V,) <- the unnormalised probability of each
    token, 0 for every token that cannot be drawn. Returns their sum (float64; 0 when no token is
    allowed). scratch (V,) and bits (V,) int32 are scratch.

    The loops over V select rather than branch, so that they vectorise: with them a draw of 67
    tokens takes what it took before tokens could be left out (about 0.2 us).
    """
    V = z.shape[0]
    low = like(z, -3.0e38)  # below any logit, and finite: (z - zmax) stays finite where nothing is allowed
    zero = like(z, 0.0)
    zmax = low
    for k in range(V):
        zmax = max(zmax, z[k] if allowed[k] else low)
    cut = low  # top-k: the k-th largest allowed logit
    if top_k > 0:
        n = 0
        for k in range(V):
            scratch[n] = z[k]
            n += allowed[k]
        if top_k < n:
            cut = kth_largest(scratch, n, top_k)
    inv_t = like(z, 1.0 / temperature)
    for k in range(V):
        w[k] = min((z[k] - zmax) * inv_t, zero)  # <= 0 also where not allowed (zeroed below)
    exp_shifted_into(w, zero, w, bits)
    total = 0.0
    for k in range(V):
        w[k] = w[k] if allowed[k] and z[k] >= cut else zero
        total += w[k]
    if top_p < 1.0:
        m = 0
        for k in range(V):
            scratch[m] = w[k]
            m += w[k] > zero
        least = nucleus_cut(scratch, m, top_p * total, bits.view(np.float32))
        total = 0.0
        for k in range(V):
            w[k] = w[k] if w[k] >= least else zero
            total += w[k]
    return total


@kernel(fastmath=True)
def pick(w, total, u):
    """Step 4: the first token at which the running sum of w (V,) passes u * total (u in [0, 1));
    the last token with weight if rounding leaves none; -1 when every weight is 0."""
    target = u * total
    acc = 0.0
    last = -1
    for k in range(w.shape[0]):
        if w[k] > 0.0:
            acc += w[k]
            last = k
            if acc > target:
                return k
    return last


@kernel
def draw_token(z, allowed, temperature, top_k, top_p, u, w, scratch, bits):
    """The whole rule: the token drawn from logits z (V,) with the uniform number u in [0, 1)
    (unused at temperature 0). -1 only when no token is allowed (callers make sure one is)."""
    if temperature == 0.0:
        return best_allowed(z, allowed)
    total = token_weights(z, allowed, temperature, top_k, top_p, w, scratch, bits)
    return pick(w, total, u)
