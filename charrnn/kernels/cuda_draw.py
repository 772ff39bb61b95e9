"""The CUDA sampling kernel (numba-cuda): the rule of charrnn.kernels.draw, step for step.

One block draws one token. Its threads compute the weights of the allowed, top-k tokens in
parallel; thread 0 does the serial parts (the largest logit, the sum, the top-p cut, the scan) in
the CPU's order, so the same uniform number picks the same token up to float rounding at near-ties.
Imported by charrnn.kernels.cuda, whose SIGNATURES list this kernel's argument types too.
"""

import math

import numba
from numba import cuda

f32 = numba.float32
f64 = numba.float64


@cuda.jit(device=True, inline="always")
def nucleus_cut(values, n, need, spare):
    """charrnn.kernels.draw.nucleus_cut, by one thread and in the same order: the smallest c among
    values[:n] (positive weights) whose values >= c sum to at least `need`; 0 when all of them fall
    short. Reorders values[:n]; spare (n or more) is scratch."""
    above = f64(0.0)
    while n > 0:
        pivot = values[n // 2]
        n_larger = 0
        n_smaller = 0
        larger = f64(0.0)
        for i in range(n):
            v = values[i]
            spare[n_larger] = v
            values[n_smaller] = v
            if v > pivot:
                n_larger += 1
                larger += v
            elif v < pivot:
                n_smaller += 1
        equal = f64(pivot) * (n - n_larger - n_smaller)
        if above + larger >= need:
            values, spare = spare, values
            n = n_larger
        elif above + larger + equal >= need:
            return pivot
        else:
            above += larger + equal
            n = n_smaller
    return f32(0.0)


@cuda.jit(device=True, inline="always")
def may_draw(allowed, k, no_repeat, previous):
    """Whether token k may be drawn: allowed, and not no_repeat right after itself."""
    return allowed[k] and not (k == no_repeat and previous == no_repeat)


@cuda.jit
def draw_token(logits, by, allowed, no_repeat, temperature, top_k, top_p, uniforms, i, work, spare, tokens):
    """Pick tokens[i + 1] from z = logits[0] + by (V,) as charrnn.kernels.draw.draw_token does, with
    the uniform number uniforms[i] (unused at temperature 0). The token no_repeat (-1: none) is not
    drawn right after itself, as in cpu.sample_tokens.

    logits (1, V) = Why @ h, by (V,), allowed (V,) bool, uniforms (n,) float64 made on the host,
    work (V,) and spare (2V,) float32 scratch, tokens (n+1,) int32 (tokens[i] was the input).
    Launch: grid (1,), block (nt,).
    """
    V = by.shape[0]
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    previous = tokens[i]
    shared = cuda.shared.array(1, numba.float32)
    if tid == 0:  # the largest allowed logit
        best = -1
        zmax = f32(0.0)
        for k in range(V):
            if may_draw(allowed, k, no_repeat, previous):
                z = logits[0, k] + by[k]
                if best < 0 or z > zmax:
                    zmax, best = z, k
        shared[0] = zmax
        if temperature == 0.0:
            tokens[i + 1] = best
    if temperature == 0.0:
        return
    cuda.syncthreads()
    zmax = shared[0]
    inv_t = f32(1.0) / temperature
    for k in range(tid, V, nt):
        z = logits[0, k] + by[k]
        keep = may_draw(allowed, k, no_repeat, previous)
        if keep and top_k > 0:  # in the top k <=> fewer than k allowed logits are strictly larger
            larger = 0
            for w in range(V):
                if may_draw(allowed, w, no_repeat, previous) and logits[0, w] + by[w] > z:
                    larger += 1
            keep = larger < top_k
        work[k] = math.exp((z - zmax) * inv_t) if keep else f32(0.0)
    cuda.syncthreads()  # makes the block's global writes to work visible to thread 0
    if tid == 0:
        total = f64(0.0)
        for k in range(V):
            total += work[k]
        if top_p < 1.0:
            m = 0
            for k in range(V):
                if work[k] > 0.0:
                    spare[m] = work[k]  # spare[:V]
                    m += 1
            least = nucleus_cut(spare[:V], m, top_p * total, spare[V:])
            total = f64(0.0)
            for k in range(V):
                if work[k] < least:
                    work[k] = f32(0.0)
                total += work[k]
        target = uniforms[i] * total
        acc = f64(0.0)
        last = -1
        for k in range(V):
            if work[k] > 0.0:
                acc += work[k]
                last = k
                if acc > target:
                    break
        tokens[i + 1] = last  # the first k past target; the last candidate if rounding left none
