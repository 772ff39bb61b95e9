"""CUDA kernels (numba-cuda): the math of `charrnn.kernels.cpu`, as pure kernels over device arrays.

Shape letters: T time steps, B streams, H hidden units, V vocabulary, N = T*B positions,
P parameters. Floats are float32, token ids int32, the loss and norm float64 (in `stats`).
Wxh is read as WxhT (V, H), the transposed storage FlatParams uses, so a token's row is contiguous.

Importing this module imports numba.cuda (it is only imported on request, by charrnn.cuda_backend).
With NUMBA_ENABLE_CUDASIM=1 the same code runs in numba's CUDA simulator (tests/test_cuda_sim.py),
so it sticks to what both accept: explicit float32 accumulators and constants (a float64 literal
would widen the arithmetic on a GPU), shared-memory reductions, no warp shuffles.
Launch shapes are given in each docstring; charrnn.cuda_backend makes every launch.
"""

import math

import numba
from numba import cuda

from charrnn.kernels.cuda_draw import draw_token  # noqa: F401  sampling, in its own file (as draw.py on the CPU)

f32 = numba.float32
f64 = numba.float64

# Launch geometry. In numba's CUDA simulator every GPU thread is a Python thread and every barrier
# a polling round, so there the blocks are smaller; the kernels are written for any of these values
# (and the simulator tests cross more tile and block edges at tiny sizes). PTX uses the GPU values.
_SIM = bool(numba.config.ENABLE_CUDASIM)
TILE = 4 if _SIM else 16  # square tiles of the matrix products: blocks of (TILE, TILE) threads
TILE_PAD = TILE + 1  # one padding column, so reading down a shared tile avoids bank conflicts
REDUCE_THREADS = 16 if _SIM else 128  # shared buffer of block reductions; launches use a power of two <= this
MIN_THREADS = 4 if _SIM else 32  # fewest threads of a reduction block (a warp on a GPU)
COLS, ROWS = (8, 2) if _SIM else (32, 8)  # column_sums: a block covers COLS columns, ROWS threads each
LOSS, NORM = 0, 1  # slots of `stats` (float64): the window's mean loss, the gradient norm


# Block reductions: every thread stores its partial in red[tid], then all of them call one of these,
# which halve the active range until red[0] holds the result (block size nt a power of two).
# inline="always" matters: numba-cuda compiles a device function that is *called* for the current
# GPU, which would stop cuda.compile_ptx (the no-GPU check in tests/test_cuda_sim.py) without a
# driver; an inlined one is compiled as part of each kernel.


@cuda.jit(device=True, inline="always")
def block_sum(red, tid, nt):
    """red[0] = sum of red[:nt]; returns it. Call from every thread of the block."""
    cuda.syncthreads()
    stride = nt // 2
    while stride > 0:
        if tid < stride:
            red[tid] += red[tid + stride]
        cuda.syncthreads()
        stride //= 2
    return red[0]


@cuda.jit(device=True, inline="always")
def block_max(red, tid, nt):
    """red[0] = max of red[:nt]; returns it. Call from every thread of the block."""
    cuda.syncthreads()
    stride = nt // 2
    while stride > 0:
        if tid < stride:
            red[tid] = max(red[tid], red[tid + stride])
        cuda.syncthreads()
        stride //= 2
    return red[0]


# --------------------------------------------------------------------------- recurrence


@cuda.jit
def rnn_forward_step(x, h, WxhT, Whh, bh, h_next):
    """One time step for the batch: h_next[b, j] = tanh(sum_k h[b, k] Whh[j, k] + WxhT[x[b], j] + bh[j]).

    x (B,) ids, h (B, H), WxhT (V, H), Whh (H, H), bh (H,); writes h_next (B, H).
    Launch: grid (ceil(H/TILE), ceil(B/TILE)), block (TILE, TILE). Thread x runs over j, so stores
    and the Whh tile loads (rows of Whh) are coalesced; the padded tiles avoid bank conflicts.
    """
    B, H = h.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j0 = cuda.blockIdx.x * TILE
    b = cuda.blockIdx.y * TILE + ty
    j = j0 + tx
    sh = cuda.shared.array((TILE, TILE_PAD), numba.float32)
    sw = cuda.shared.array((TILE, TILE_PAD), numba.float32)
    acc = f32(0.0)
    for k0 in range(0, H, TILE):
        k = k0 + tx
        sh[ty, tx] = h[b, k] if b < B and k < H else f32(0.0)
        r = j0 + ty  # the output unit whose Whh row this thread loads
        sw[ty, tx] = Whh[r, k] if r < H and k < H else f32(0.0)
        cuda.syncthreads()
        for kk in range(TILE):
            acc += sh[ty, kk] * sw[tx, kk]
        cuda.syncthreads()
    if b < B and j < H:
        h_next[b, j] = math.tanh(acc + (WxhT[x[b], j] + bh[j]))


@cuda.jit
def rnn_backward_step(dhs_t, h_t, dh, Whh, da_t, dh_prev):
    """One step back through the recurrence, fused:
    da_t[b, k] = (dhs_t[b, k] + dh[b, k]) * (1 - h_t[b, k]^2), then dh_prev = da_t @ Whh.

    All (B, H) except Whh (H, H); dh and dh_prev must be different buffers (blocks read all of dh).
    Launch: grid (ceil(H/TILE), ceil(B/TILE)), block (TILE, TILE). da is recomputed per tile from
    its inputs instead of being stored and re-read; the blocks of the first column write it out.
    """
    B, H = h_t.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j = cuda.blockIdx.x * TILE + tx
    b = cuda.blockIdx.y * TILE + ty
    sd = cuda.shared.array((TILE, TILE_PAD), numba.float32)
    sw = cuda.shared.array((TILE, TILE_PAD), numba.float32)
    acc = f32(0.0)
    for k0 in range(0, H, TILE):
        k = k0 + tx
        d = f32(0.0)
        if b < B and k < H:
            hv = h_t[b, k]
            d = (dhs_t[b, k] + dh[b, k]) * (f32(1.0) - hv * hv)
            if cuda.blockIdx.x == 0:
                da_t[b, k] = d
        sd[ty, tx] = d
        r = k0 + ty  # row r of Whh, read along j: coalesced
        sw[ty, tx] = Whh[r, j] if r < H and j < H else f32(0.0)
        cuda.syncthreads()
        for kk in range(TILE):
            acc += sd[ty, kk] * sw[kk, tx]
        cuda.syncthreads()
    if b < B and j < H:
        dh_prev[b, j] = acc


# --------------------------------------------------------------------------- dense products


@cuda.jit
def matmul(A, Bm, C, ta, tb):
    """C (M, N) = op(A) @ op(Bm), op(X) = X.T when its flag is set: A (M, K) or (K, M), Bm (K, N) or (N, K).

    The non-recurrent products over all N = T*B positions: logits = H_all @ Why.T, dWhy =
    dlogits.T @ H_all, dH = dlogits @ Why, dWhh = das.T @ H_prev (and Why @ h when sampling).
    Launch: grid (ceil(N/TILE), ceil(M/TILE)), block (TILE, TILE). Every tile is read along the
    contiguous axis of its source (coalesced) and stored transposed in shared memory when needed.
    """
    M, N = C.shape
    K = A.shape[0] if ta else A.shape[1]
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    m0 = cuda.blockIdx.y * TILE
    n0 = cuda.blockIdx.x * TILE
    sa = cuda.shared.array((TILE, TILE_PAD), numba.float32)  # sa[m, k]
    sb = cuda.shared.array((TILE, TILE_PAD), numba.float32)  # sb[k, n]
    acc = f32(0.0)
    for k0 in range(0, K, TILE):
        if ta:  # A (K, M): thread x walks m
            r, c = k0 + ty, m0 + tx
            sa[tx, ty] = A[r, c] if r < K and c < M else f32(0.0)
        else:  # A (M, K): thread x walks k
            r, c = m0 + ty, k0 + tx
            sa[ty, tx] = A[r, c] if r < M and c < K else f32(0.0)
        if tb:  # Bm (N, K): thread x walks k
            r, c = n0 + ty, k0 + tx
            sb[tx, ty] = Bm[r, c] if r < N and c < K else f32(0.0)
        else:  # Bm (K, N): thread x walks n
            r, c = k0 + ty, n0 + tx
            sb[ty, tx] = Bm[r, c] if r < K and c < N else f32(0.0)
        cuda.syncthreads()
        for kk in range(TILE):
            acc += sa[ty, kk] * sb[kk, tx]
        cuda.syncthreads()
    m, n = m0 + ty, n0 + tx
    if m < M and n < N:
        C[m, n] = acc


# --------------------------------------------------------------------------- output layer


@cuda.jit
def softmax_xent(logits, by, ys, dlogits, row_loss, scale, want_grad):
    """Fused softmax + cross-entropy of row p = blockIdx.x, with the output bias added here.

    logits (N, V) = H_all @ Why.T (no bias), by (V,), ys (N,) target ids, scale = 1/N (float32).
    Writes row_loss[p] (float64) = -log softmax(z)[ys[p]], z = logits[p] + by, and, when want_grad,
    dlogits[p] = (softmax(z) - onehot(ys[p])) * scale (may be the same array as logits).
    Launch: grid (N,), block (nt,), nt a power of two <= REDUCE_THREADS.
    """
    V = logits.shape[1]
    p = cuda.blockIdx.x
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    red = cuda.shared.array(REDUCE_THREADS, numba.float32)
    y = ys[p]
    zy = logits[p, y] + by[y]  # read before any thread overwrites the row (dlogits may alias logits)
    mine = f32(-math.inf)
    for k in range(tid, V, nt):
        mine = max(mine, logits[p, k] + by[k])
    red[tid] = mine
    zmax = block_max(red, tid, nt)
    cuda.syncthreads()  # everyone has read red[0] before it is reused
    s = f32(0.0)
    for k in range(tid, V, nt):
        s += math.exp(logits[p, k] + by[k] - zmax)
    red[tid] = s
    s = block_sum(red, tid, nt)
    if want_grad:
        inv = scale / s
        for k in range(tid, V, nt):
            d = math.exp(logits[p, k] + by[k] - zmax) * inv
            dlogits[p, k] = d - scale if k == y else d
    if tid == 0:
        row_loss[p] = f64(math.log(s) + zmax - zy)


@cuda.jit
def embed_backward(xs, das, dWxhT):
    """dWxhT (V, H) += das[p] added into row xs[p], for p < N (the one-hot input is never built).

    xs (N,) ids, das (N, H). dWxhT must be zeroed first. Launch: 1-d grid over N*H threads.
    Atomic adds: positions sharing a token write the same row.
    """
    N, H = das.shape
    i = cuda.grid(1)
    if i < N * H:
        p = i // H
        j = i - p * H
        cuda.atomic.add(dWxhT, (xs[p], j), das[p, j])


@cuda.jit
def column_sums(A, out):
    """out (M,) = A (N, M) summed over rows: the bias gradients. Launch: grid (ceil(M/COLS),), block (COLS, ROWS)."""
    N, M = A.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    c = cuda.blockIdx.x * COLS + tx
    red = cuda.shared.array((ROWS, COLS), numba.float32)
    acc = f32(0.0)
    if c < M:
        for r in range(ty, N, ROWS):  # a warp reads COLS consecutive floats of one row
            acc += A[r, c]
    red[ty, tx] = acc
    cuda.syncthreads()
    if ty == 0 and c < M:
        s = f32(0.0)
        for r in range(ROWS):
            s += red[r, tx]
        out[c] = s


# --------------------------------------------------------------------------- reductions, clipping


@cuda.jit
def sum_squares(g, partials):
    """partials[block] = sum of g[i]^2 over a grid-stride slice of g (P,). Launch: grid (G,), block (nt,),
    nt a power of two <= REDUCE_THREADS, partials (G,) float32; finish with finish_sum(root=True).
    """
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    red = cuda.shared.array(REDUCE_THREADS, numba.float32)
    acc = f32(0.0)
    i = cuda.blockIdx.x * nt + tid
    step = cuda.gridDim.x * nt
    while i < g.shape[0]:
        acc += g[i] * g[i]
        i += step
    red[tid] = acc
    total = block_sum(red, tid, nt)
    if tid == 0:
        partials[cuda.blockIdx.x] = total


@cuda.jit
def finish_sum(values, stats, slot, scale, root):
    """stats[slot] = scale * sum(values), or its square root when root (float64 throughout).

    values (n,) float32 or float64. Launch: grid (1,), block (nt,), nt a power of two <= REDUCE_THREADS.
    The last stage of the loss (row losses, scale 1/N) and of the gradient norm (partials).
    """
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    red = cuda.shared.array(REDUCE_THREADS, numba.float64)
    acc = f64(0.0)
    for i in range(tid, values.shape[0], nt):
        acc += values[i]
    red[tid] = acc
    total = block_sum(red, tid, nt) * scale
    if tid == 0:
        stats[slot] = math.sqrt(total) if root else total


@cuda.jit
def clip_by_norm(g, stats, max_norm):
    """g (P,) *= max_norm / ||g|| when 0 < max_norm < ||g|| = stats[NORM]. Launch: 1-d grid over P."""
    i = cuda.grid(1)
    norm = stats[NORM]
    if i < g.shape[0] and max_norm > 0.0 and norm > max_norm:
        g[i] *= f32(max_norm / norm)


@cuda.jit
def gather_window(ids, L, start, xy):
    """xy (2, T, B) int32 <- the window at step `start` of the (B, L+1) stream view of ids (N,)
    (charrnn.batches): xy[0, t, b] = ids[b*L + start + t], xy[1, t, b] = the id after it.
    Launch: 2-d grid over (B, T), x along B."""
    b, t = cuda.grid(2)
    if t < xy.shape[1] and b < xy.shape[2]:
        i = b * L + start + t
        xy[0, t, b] = ids[i]
        xy[1, t, b] = ids[i + 1]


@cuda.jit
def fill(a, value):
    """a (n,) = value. Launch: 1-d grid over n."""
    i = cuda.grid(1)
    if i < a.shape[0]:
        a[i] = value


# --------------------------------------------------------------------------- optimisation
# Flat (P,) arrays, one thread per entry (1-d grid over P). Scalars are float32; Adam's bias
# corrections are folded into alpha and eps_hat on the host. Nothing changes when stats (float64)
# holds a non-finite loss or norm, so a diverged step leaves the last good parameters in place.


@cuda.jit
def sgd_update(p, g, lr, stats):
    """p -= lr * g."""
    i = cuda.grid(1)
    if i < p.shape[0] and math.isfinite(stats[LOSS]) and math.isfinite(stats[NORM]):
        p[i] -= lr * g[i]


@cuda.jit
def adagrad_update(p, g, g2, lr, eps, stats):
    """g2 += g^2; p -= lr * g / (sqrt(g2) + eps)."""
    i = cuda.grid(1)
    if i < p.shape[0] and math.isfinite(stats[LOSS]) and math.isfinite(stats[NORM]):
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
    if i < p.shape[0] and math.isfinite(stats[LOSS]) and math.isfinite(stats[NORM]):
        gi = g[i]
        mi = beta1 * m[i] + (f32(1.0) - beta1) * gi
        vi = beta2 * v[i] + (f32(1.0) - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= alpha * mi / (math.sqrt(vi) + eps_hat)


# Argument types of every kernel as charrnn.cuda_backend launches them (all arrays C-contiguous):
# tests/test_cuda_sim.py compiles each to PTX for a real GPU architecture with these.
_M, _V, _I = "float32[:, ::1]", "float32[::1]", "int32[::1]"
SIGNATURES = {
    "rnn_forward_step": f"void({_I}, {_M}, {_M}, {_M}, {_V}, {_M})",
    "rnn_backward_step": f"void({_M}, {_M}, {_M}, {_M}, {_M}, {_M})",
    "matmul": f"void({_M}, {_M}, {_M}, boolean, boolean)",
    "softmax_xent": f"void({_M}, {_V}, {_I}, {_M}, float64[::1], float32, boolean)",
    "embed_backward": f"void({_I}, {_M}, {_M})",
    "column_sums": f"void({_M}, {_V})",
    "sum_squares": f"void({_V}, {_V})",
    "finish_sum": [f"void({t}[::1], float64[::1], int64, float64, boolean)" for t in ("float32", "float64")],
    "clip_by_norm": f"void({_V}, float64[::1], float64)",
    "gather_window": "void(int32[::1], int64, int64, int32[:, :, ::1])",
    "fill": f"void({_V}, float32)",
    "sgd_update": f"void({_V}, {_V}, float32, float64[::1])",
    "adagrad_update": f"void({_V}, {_V}, {_V}, float32, float32, float64[::1])",
    "adam_update": f"void({_V}, {_V}, {_V}, {_V}, float32, float32, float32, float32, float64[::1])",
    "draw_token": f"void({_M}, {_V}, boolean[::1], int64, float32, int64, float64, float64[::1], int64, {_V}, {_V}, {_I})",
}
