"""Device functions shared by the cells' CUDA step kernels (charrnn/cells/<name>/cuda.py).

Every cell's step kernel is a tiled product of B streams by the G blocks of weight_hh (G*H, H),
fused with its gate math: blocks of (TILE, TILE) threads, thread (tx, ty) owning unit
j = blockIdx.x*TILE + tx of stream b = blockIdx.y*TILE + ty, so each thread holds every gate of its
unit and no (B, G*H) pre-activation goes through global memory. These are the product's shared
parts; all are inlined (see charrnn.kernels.cuda on why inline="always").
"""

import math

import numba
from numba import cuda

from charrnn.kernels.cuda import TILE

f32 = numba.float32


@cuda.jit(device=True, inline="always")
def load_hidden_tiles(h, W, G, H, b, j0, k0, sh, sw):
    """Forward tiles: sh[ty, tx] = h[b, k0+tx] (B, H); sw[g, ty, tx] = W[g*H + j0+ty, k0+tx] for
    each gate g < G of W (G*H, H), zero outside. Thread x walks k: rows of W load coalesced."""
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    k = k0 + tx
    sh[ty, tx] = h[b, k] if b < h.shape[0] and k < H else f32(0.0)
    r = j0 + ty  # the output unit whose rows this thread loads
    for g in range(G):
        sw[g, ty, tx] = W[g * H + r, k] if r < H and k < H else f32(0.0)
    cuda.syncthreads()


@cuda.jit(device=True, inline="always")
def tile_dot(sh, sw, g, ty, tx):
    """sum over kk of sh[ty, kk] * sw[g, tx, kk]: gate g of unit tx, stream ty, over one tile."""
    acc = f32(0.0)
    for kk in range(TILE):
        acc += sh[ty, kk] * sw[g, tx, kk]
    return acc


@cuda.jit(device=True, inline="always")
def load_back_tiles(W, G, H, u0, j, sw):
    """Backward tile of W (G*H, H): sw[g, ty, tx] = W[g*H + u0+ty, j] (j = the thread's column),
    read along j: coalesced. The caller fills its gradient tile sd[g, ty, tx] (unit u0 + tx)."""
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    u = u0 + ty
    for g in range(G):
        sw[g, ty, tx] = W[g * H + u, j] if u < H and j < H else f32(0.0)


@cuda.jit(device=True, inline="always")
def tile_dot_back(sd, sw, g, ty, tx):
    """sum over kk of sd[g, ty, kk] * sw[g, kk, tx]: (dpre_g @ W_g) of column tx, stream ty, over one tile."""
    acc = f32(0.0)
    for kk in range(TILE):
        acc += sd[g, ty, kk] * sw[g, kk, tx]
    return acc


@cuda.jit(device=True, inline="always")
def sigmoid(x):
    """1/(1 + e^-x) as (1 + tanh(x/2)) / 2: float32, never overflows (the CPU's formula too)."""
    return f32(0.5) + f32(0.5) * math.tanh(f32(0.5) * x)
