"""Matrix products at the recurrence's shapes, written for the CPU's vector registers.

Each step of the recurrence multiplies a few rows (B/workers streams, often 16) by the (H, H)
weights. OpenBLAS runs (16, 512) @ (512, 512) at about 60 GFLOP/s on one core of a 2-core
AVX-512 machine, because it repacks the 1 MB matrix on every call; numba's own loops reach under 30,
because LLVM keeps their accumulators in memory. Here the weights are packed once per window into
panels of L columns (one vector register: L = 16 float32 with AVX-512), and a tile of rows by a few
panels keeps its accumulators in registers across the whole inner dimension: 130-180 GFLOP/s at
that shape. The tile is LLVM IR written through a numba intrinsic, with explicit vector types.

Shapes: a (R, K) rows, W (M, K) the weights, out (R, M) = a @ W.T.
Packed: Wp (NG, K, G*L), Wp[g, k, i] = W[g*G*L + i, k], zero past M: groups of G panels, each one
contiguous block that a tile streams through.
  G = MATRIX_GROUP (2): tiles of ROWS rows x 2 panels, for many rows (training).
  G = VECTOR_GROUP (4): tiles of 1 row x 4 panels, for one row (sampling): 4 independent
      accumulators hide the latency of the fused multiply-add.
"""

import os

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from charrnn.kernels.jit import kernel

_AVX512 = "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")
# One zmm register, else one ymm (AVX2; elsewhere LLVM splits the vectors). CHARRNN_VECTOR_BYTES
# (16, 32 or 64) overrides it, so that tests can check the narrower tiles on any machine.
REGISTER_BYTES = int(os.environ.get("CHARRNN_VECTOR_BYTES") or (64 if _AVX512 else 32))
MATRIX_GROUP, VECTOR_GROUP = 2, 4
ROWS = 8 if REGISTER_BYTES == 64 else 4  # ROWS x 2 accumulators + 2 weight vectors + 1 broadcast fit the 32 (16) registers


def _make_tile(rows, panels):
    """An intrinsic computing a (rows, panels*L) block of out over the whole inner dimension K:

    tile(a, a_off, lda, Wp, w_off, ldw, K, out, out_off, ldo):
        out[out_off + r*ldo + c] = sum_k a[a_off + r*lda + k] * Wp.flat[w_off + k*ldw + c]
    for r < rows, c < panels*L. Offsets and leading dimensions count elements of the arrays' float dtype.
    """

    @intrinsic
    def tile(typingctx, a, a_off, lda, w, w_off, ldw, K, out, out_off, ldo):
        sig = types.void(a, a_off, lda, w, w_off, ldw, K, out, out_off, ldo)

        def codegen(context, builder, signature, args):
            a_ty, w_ty, out_ty = signature.args[0], signature.args[3], signature.args[7]
            intp = context.get_value_type(types.intp)

            def index(i):  # an integer argument as intp
                return context.cast(builder, args[i], signature.args[i], types.intp)

            def const(n):
                return ir.Constant(intp, n)

            scalar = context.get_value_type(a_ty.dtype)
            lanes = REGISTER_BYTES // (a_ty.dtype.bitwidth // 8)
            vec = ir.VectorType(scalar, lanes)
            fma_name = f"llvm.fma.v{lanes}f{a_ty.dtype.bitwidth}"
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), fma_name)
            a_ptr = context.make_array(a_ty)(context, builder, args[0]).data
            w_ptr = context.make_array(w_ty)(context, builder, args[3]).data
            out_ptr = context.make_array(out_ty)(context, builder, args[7]).data
            a_off, lda, w_off, ldw, K, out_off, ldo = (index(i) for i in (1, 2, 4, 5, 6, 8, 9))
            a_rows = [builder.add(a_off, builder.mul(const(r), lda)) for r in range(rows)]
            w_panels = [builder.add(w_off, const(p * lanes)) for p in range(panels)]

            # Accumulators start as allocas; LLVM's mem2reg turns them into registers.
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(panels)] for _ in range(rows)]
            splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), None)
            with cgutils.for_range(builder, K, intp=intp) as loop:
                k = loop.index
                k_lanes = builder.mul(k, ldw)
                ws = []
                for wp in w_panels:
                    ptr = builder.gep(w_ptr, [builder.add(wp, k_lanes)])
                    ws.append(builder.load(builder.bitcast(ptr, vec.as_pointer()), align=a_ty.dtype.bitwidth // 8))
                for r in range(rows):
                    x = builder.load(builder.gep(a_ptr, [builder.add(a_rows[r], k)]))
                    x = builder.insert_element(ir.Constant(vec, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
                    x = builder.shuffle_vector(x, ir.Constant(vec, ir.Undefined), splat_mask)
                    for p in range(panels):
                        builder.store(builder.call(fma, [x, ws[p], builder.load(accs[r][p])]), accs[r][p])
            for r in range(rows):
                row = builder.add(out_off, builder.mul(const(r), ldo))
                for p in range(panels):
                    ptr = builder.gep(out_ptr, [builder.add(row, const(p * lanes))])
                    builder.store(builder.load(accs[r][p]), builder.bitcast(ptr, vec.as_pointer()), align=a_ty.dtype.bitwidth // 8)
            return context.get_dummy_value()

        return sig, codegen

    return tile


# Tiles of ROWS rows (blocks) or one row, by 1..4 panels: a group's last columns past M are padding,
# and a tile with fewer panels skips reading them.
_block_1, _block_2 = _make_tile(ROWS, 1), _make_tile(ROWS, 2)
_row_1, _row_2, _row_3, _row_4 = (_make_tile(1, p) for p in range(1, 5))


@kernel(inline="always")
def _tile(rows, panels, a, a_off, lda, Wp, w_off, ldw, K, out, out_off, ldo):
    """The tile of rows (ROWS or 1) by panels (1-2 for ROWS rows, 1-4 for one row)."""
    if rows == ROWS:
        if panels == 1:
            _block_1(a, a_off, lda, Wp, w_off, ldw, K, out, out_off, ldo)
        else:
            _block_2(a, a_off, lda, Wp, w_off, ldw, K, out, out_off, ldo)
    elif panels == 1:
        _row_1(a, a_off, lda, Wp, w_off, ldw, K, out, out_off, ldo)
    elif panels == 2:
        _row_2(a, a_off, lda, Wp, w_off, ldw, K, out, out_off, ldo)
    elif panels == 3:
        _row_3(a, a_off, lda, Wp, w_off, ldw, K, out, out_off, ldo)
    else:
        _row_4(a, a_off, lda, Wp, w_off, ldw, K, out, out_off, ldo)


def aligned_zeros(shape, dtype, align=64):
    """Zeros whose first element sits on an `align`-byte boundary (a cache line): the tiles' vector
    loads then never straddle two lines. numpy itself only promises 16 bytes, and sampling at
    H = 128 ran 10-20% slower in the processes whose panels happened to land off a line."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.zeros(n * dtype.itemsize + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start : start + n * dtype.itemsize].view(dtype).reshape(shape)


@kernel
def new_panels(M, K, group, like):
    """Zeroed packed panels (NG, K, group*L) for a (M, K) matrix, in like's dtype."""
    width = group * (REGISTER_BYTES // like.itemsize)
    return np.zeros(((M + width - 1) // width, K, width), like.dtype)


@kernel
def pack_rows(W, Wp):
    """Wp[g, k, i] = W[g*width + i, k]: panels for out = a @ W.T. W (M, K), any strides (pass W.T
    for out = a @ W); entries past M stay zero."""
    M, K = W.shape
    width = Wp.shape[2]
    for g in range(Wp.shape[0]):
        dst = Wp[g]
        for i in range(min(width, M - g * width)):
            src = W[g * width + i]
            for k in range(K):
                dst[k, i] = src[k]


@kernel
def panels_of(W, group):
    """New panels of W (M, K), for out = a @ W.T; group is MATRIX_GROUP or VECTOR_GROUP.
    (For out = a @ W, pass the view W.T.)"""
    Wp = new_panels(W.shape[0], W.shape[1], group, W)
    pack_rows(W, Wp)
    return Wp


@kernel
def matmul_panels(a, Wp, out):
    """out (R, M) = a (R, K) @ W.T, W packed as Wp (NG, K, width). Rows of a and out are contiguous."""
    matmul_groups(a, Wp, out, 0, Wp.shape[0])


@kernel
def matmul_groups(a, Wp, out, first, last):
    """matmul_panels for the columns of groups first..last-1 only: out[:, first*width : last*width]."""
    R, K = a.shape
    M = out.shape[1]
    NG, _, width = Wp.shape
    assert Wp.shape[1] == K and (NG - 1) * width < M <= NG * width and 0 <= first <= last <= NG
    assert a.strides[1] == a.itemsize and out.strides[1] == out.itemsize
    lda, ldo = a.strides[0] // a.itemsize, out.strides[0] // out.itemsize
    L = REGISTER_BYTES // a.itemsize
    # Matrix panels: blocks of ROWS rows, then single rows. Vector panels: single rows throughout.
    full_rows = 0 if width == VECTOR_GROUP * L else R - R % ROWS
    edge = np.empty((ROWS, width), out.dtype)  # a tile reaching past column M lands here first
    for g in range(first, last):
        c = g * width
        n = min(width, M - c)  # real columns in this group
        panels = (n + L - 1) // L
        w_off = g * K * width
        r = 0
        while r < R:
            rows = ROWS if r < full_rows else 1
            if n == panels * L:
                _tile(rows, panels, a, r * lda, lda, Wp, w_off, width, K, out, r * ldo + c, ldo)
            else:
                _tile(rows, panels, a, r * lda, lda, Wp, w_off, width, K, edge, 0, width)
                for i in range(rows):
                    for j in range(n):
                        out[r + i, c + j] = edge[i, j]
            r += rows
