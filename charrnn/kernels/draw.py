"""Choosing the next token from the logits: the allowed tokens, temperature, top-k, top-p, one draw.

The rule, step by step (the CUDA kernel charrnn.kernels.cuda.draw_token takes the same steps):
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
Nothing sorts: both cuts are quickselects, O(V) on average, so top-p costs what plain sampling does.

Shapes: V tokens. z (V,) float logits; allowed (V,) bool; w, scratch (V,) like z; bits (V,) int32.
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
def nucleus_cut(values, n, need):
    """The smallest c among values[:n] (positive weights) such that the values >= c sum to at least
    `need`: the top-p boundary. 0 when even all of them fall short (rounding, with need near the
    total). Reorders values[:n].

    A quickselect that keeps mass: split around a pivot into larger, equal and smaller; the cut lies
    in the larger part when it alone reaches `need`, at the pivot when the equal part completes it,
    else in the smaller part, with the mass above it counted.
    """
    lo, hi = 0, n  # the undecided values[lo:hi]; everything above them is in, with mass `above`
    above = 0.0
    while lo < hi:
        pivot = values[(lo + hi) // 2]
        gt, i, lt = lo, lo, hi  # values[lo:gt] > pivot, values[gt:i] == pivot, values[lt:hi] < pivot
        larger = 0.0
        while i < lt:
            v = values[i]
            if v > pivot:
                values[i], values[gt] = values[gt], v
                larger += v
                gt += 1
                i += 1
            elif v < pivot:
                lt -= 1
                values[i], values[lt] = values[lt], v
            else:
                i += 1
        if above + larger >= need:
            hi = gt  # not empty: need > above, so larger > 0
        elif above + larger + pivot * (lt - gt) >= need:
            return pivot
        else:
            above += larger + pivot * (lt - gt)
            lo = lt
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
    """
    V = z.shape[0]
    n = 0
    zmax = z[0]
    for k in range(V):  # the allowed logits, into scratch for the top-k cut
        if allowed[k]:
            if n == 0 or z[k] > zmax:
                zmax = z[k]
            scratch[n] = z[k]
            n += 1
    if n == 0:
        for k in range(V):
            w[k] = 0.0
        return 0.0
    use_k = 0 < top_k < n
    cut = kth_largest(scratch, n, top_k) if use_k else zmax
    inv_t = like(z, 1.0 / temperature)
    out = like(z, -100.0)  # exp(-100) underflows; the entry is zeroed below in any case
    for k in range(V):
        w[k] = (z[k] - zmax) * inv_t if allowed[k] and (not use_k or z[k] >= cut) else out
    exp_shifted_into(w, like(z, 0.0), w, bits)  # every exponent is <= 0
    total = 0.0
    for k in range(V):
        if not (allowed[k] and (not use_k or z[k] >= cut)):
            w[k] = 0.0
        total += w[k]
    if top_p < 1.0:
        m = 0
        for k in range(V):
            if w[k] > 0.0:
                scratch[m] = w[k]
                m += 1
        least = nucleus_cut(scratch, m, top_p * total)
        total = 0.0
        for k in range(V):
            if w[k] < least:
                w[k] = 0.0
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
