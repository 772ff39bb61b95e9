"""CUDA kernels (numba-cuda) shared by every cell: the math of `charrnn.kernels.cpu` and the products
of `charrnn.network`, as pure kernels over device arrays. The cells' step kernels are in
charrnn/cells/<name>/cuda.py (their shared tile helpers in cuda_recurrence.py), the optimizers in
cuda_optim.py, dropout in cuda_dropout.py, the sampler's draw in cuda_draw.py.

Shape letters: T time steps, B streams, H hidden units, V vocabulary, G gates, N = T*B positions,
P parameters. Floats are float32, token ids int32, the loss and norm float64 (in `stats`).

Importing this module imports numba.cuda (it is only imported on request, by the CUDA host code:
charrnn.cuda_backend, charrnn.network_cuda, charrnn.sample_cuda). With NUMBA_ENABLE_CUDASIM=1 the
same code runs in numba's CUDA simulator (tests/test_cuda_sim.py), so it sticks to what both
accept: explicit float32 accumulators and constants (a float64 literal would widen the arithmetic
on a GPU), shared-memory reductions, no warp shuffles. Launch shapes are given in each docstring;
the launch helpers at the end compute them.
"""

import math

import numba
import numpy as np
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
THREADS = 64 if _SIM else 256  # block size of the elementwise kernels
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


# --------------------------------------------------------------------------- dense products


@cuda.jit(device=True, inline="always")
def _product(A, Bm, ta, tb, M, N, K, sa, sb):
    """The tile (m0 + ty, n0 + tx) of op(A) @ op(Bm) (see matmul); every thread returns its entry."""
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    m0 = cuda.blockIdx.y * TILE
    n0 = cuda.blockIdx.x * TILE
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
    return acc


@cuda.jit
def matmul(A, Bm, C, ta, tb):
    """C (M, N) = op(A) @ op(Bm), op(X) = X.T when its flag is set: A (M, K) or (K, M), Bm (K, N) or (N, K).

    The products over all N = T*B positions (network_cuda): logits = y @ weight_out.T, the weight
    gradients dW = d.T @ x, and d @ W for the layer below (and weight_out @ h when sampling).
    Launch: grid (ceil(N/TILE), ceil(M/TILE)), block (TILE, TILE). Every tile is read along the
    contiguous axis of its source (coalesced) and stored transposed in shared memory when needed.
    """
    M, N = C.shape
    K = A.shape[0] if ta else A.shape[1]
    sa = cuda.shared.array((TILE, TILE_PAD), numba.float32)  # sa[m, k]
    sb = cuda.shared.array((TILE, TILE_PAD), numba.float32)  # sb[k, n]
    acc = _product(A, Bm, ta, tb, M, N, K, sa, sb)
    m, n = cuda.blockIdx.y * TILE + cuda.threadIdx.y, cuda.blockIdx.x * TILE + cuda.threadIdx.x
    if m < M and n < N:
        C[m, n] = acc


@cuda.jit
def linear(A, W, bias, C):
    """C (M, N) = A (M, K) @ W.T + bias, W (N, K), bias (N,): a layer's input projection from the
    layer below (pre_k = y_{k-1} @ weight_ih_lk.T + bias_ih_lk). Launch: as matmul."""
    M, N = C.shape
    sa = cuda.shared.array((TILE, TILE_PAD), numba.float32)
    sb = cuda.shared.array((TILE, TILE_PAD), numba.float32)
    acc = _product(A, W, False, True, M, N, A.shape[1], sa, sb)
    m, n = cuda.blockIdx.y * TILE + cuda.threadIdx.y, cuda.blockIdx.x * TILE + cuda.threadIdx.x
    if m < M and n < N:
        C[m, n] = acc + bias[n]


@cuda.jit
def gather_rows(xs, Wt, bias, out):
    """out (N, M) = Wt[xs[p]] + bias: layer 0's input projection of one-hot ids (never built), as
    cpu.gather_rows. xs (N,) ids, Wt (V, M) = weight_ih_l0 as stored, bias (M,), M = G*H.
    Launch: 1-d grid over N*M."""
    N, M = out.shape
    i = cuda.grid(1)
    if i < N * M:
        p = i // M
        k = i - p * M
        out[p, k] = Wt[xs[p], k] + bias[k]


@cuda.jit
def gather_row(ids, i, Wt, bias, out):
    """out (1, M) = Wt[ids[i]] + bias: gather_rows for the sampler's one token, read from the
    device's token buffer ids (n,) at i (a view per token would cost more than the launch).
    Launch: 1-d grid over M."""
    k = cuda.grid(1)
    if k < out.shape[1]:
        out[0, k] = Wt[ids[i], k] + bias[k]


@cuda.jit
def scatter_rows(xs, d, dWt):
    """dWt (V, M) += d[p] added into row xs[p], for p < N: gather_rows' weight gradient.

    xs (N,) ids, d (N, M). dWt must be zeroed first. Launch: 1-d grid over N*M threads.
    Atomic adds: positions sharing a token write the same row.
    """
    N, M = d.shape
    i = cuda.grid(1)
    if i < N * M:
        p = i // M
        k = i - p * M
        cuda.atomic.add(dWt, (xs[p], k), d[p, k])


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


# --------------------------------------------------------------------------- output layer


@cuda.jit
def softmax_xent(logits, by, ys, dlogits, row_loss, scale, want_grad):
    """Fused softmax + cross-entropy of row p = blockIdx.x, with the output bias added here.

    logits (N, V) = y @ weight_out.T (no bias), by (V,), ys (N,) target ids, scale = 1/N (float32).
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


# --------------------------------------------------------------------------- elementwise, ids


@cuda.jit
def multiply(a, b, out):
    """out (n,) = a * b (dropout's backward: dh = dy * mask). Launch: 1-d grid over n."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] * b[i]


@cuda.jit
def gather_window(ids, stride, start, xy):
    """xy (2, T, B) int32 <- the window at step `start` of a stream view of ids (N,) whose rows
    are `stride` ids apart (charrnn.batches): xy[0, t, b] = ids[b*stride + start + t], xy[1, t, b]
    = the id after it. Launch: 2-d grid over (B, T), x along B."""
    b, t = cuda.grid(2)
    if t < xy.shape[1] and b < xy.shape[2]:
        i = b * stride + start + t
        xy[0, t, b] = ids[i]
        xy[1, t, b] = ids[i + 1]


@cuda.jit
def fill(a, value):
    """a (n,) = value. Launch: 1-d grid over n."""
    i = cuda.grid(1)
    if i < a.shape[0]:
        a[i] = value


# --------------------------------------------------------------------------- launch shapes


def zeros(shape, dtype=np.float32):
    """A zeroed device array."""
    return cuda.to_device(np.zeros(shape, dtype))


def blocks(n, per=THREADS):
    """Blocks of `per` threads that cover n items (at least one)."""
    return max(1, (n + per - 1) // per)


def flat(n):
    """Launch shape of a 1-d kernel over n items."""
    return blocks(n), THREADS


def tiled(rows, cols):
    """Launch shape of a (rows, cols) output computed in TILE x TILE blocks (products, cell steps)."""
    return (blocks(cols, TILE), blocks(rows, TILE)), (TILE, TILE)


def pow2_threads(n):
    """Smallest power of two >= n, between MIN_THREADS (a warp) and REDUCE_THREADS."""
    nt = MIN_THREADS
    while nt < n and nt < REDUCE_THREADS:
        nt *= 2
    return nt


def sums_of_columns(A, out):
    """Launch column_sums: out (M,) = A (N, M) summed over rows."""
    column_sums[blocks(out.shape[0], COLS), (COLS, ROWS)](A, out)


def product(A, Bm, C, ta=False, tb=False):
    """Launch matmul: C = op(A) @ op(Bm)."""
    matmul[tiled(*C.shape)](A, Bm, C, ta, tb)


# Argument types of every kernel as the host code launches them (all arrays C-contiguous):
# tests/test_cuda_sim.py compiles each to PTX for a real GPU architecture with these.
_M, _V, _I = "float32[:, ::1]", "float32[::1]", "int32[::1]"
SIGNATURES = {
    "matmul": f"void({_M}, {_M}, {_M}, boolean, boolean)",
    "linear": f"void({_M}, {_M}, {_V}, {_M})",
    "gather_rows": f"void({_I}, {_M}, {_V}, {_M})",
    "gather_row": f"void({_I}, int64, {_M}, {_V}, {_M})",
    "scatter_rows": f"void({_I}, {_M}, {_M})",
    "column_sums": f"void({_M}, {_V})",
    "softmax_xent": f"void({_M}, {_V}, {_I}, {_M}, float64[::1], float32, boolean)",
    "sum_squares": f"void({_V}, {_V})",
    "finish_sum": [f"void({t}[::1], float64[::1], int64, float64, boolean)" for t in ("float32", "float64")],
    "multiply": f"void({_V}, {_V}, {_V})",
    "gather_window": "void(int32[::1], int64, int64, int32[:, :, ::1])",
    "fill": f"void({_V}, float32)",
    "draw_token": f"void({_M}, {_V}, boolean[::1], int64, float32, int64, float64, float64[::1], int64, {_V}, {_V}, {_I})",
}
FLOAT32_ONLY = {"matmul", "linear", "gather_rows", "gather_row", "scatter_rows", "column_sums", "sum_squares", "multiply", "fill"}
