"""Two compiled threads handing work to each other through a flag array, without the GIL or a lock.

The sampler splits each step's matrix-vector product between two threads (charrnn.sample): a
step takes a few microseconds, far less than waking a thread through the operating system, so the
threads spin on flags instead. numba has no atomics for CPU arrays; these intrinsics write the LLVM
atomic loads, stores and compare-and-swap (acquire/release: the data written before a store is
visible after the matching load) and the CPU's spin-wait hint.

flags is an int64 array; each flag should sit on its own cache line (indices 8 apart).
"""

import sys

import llvmlite.binding as llvm
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from charrnn.kernels.jit import kernel

_X86 = llvm.get_process_triple().split("-")[0] in ("x86_64", "i386", "i686")
_POSIX = sys.platform != "win32"
SPINS_BEFORE_YIELD = 2000  # about 50-100 us of spinning, then give the core away between checks


def _flag_pointer(context, builder, signature, args):
    flags = context.make_array(signature.args[0])(context, builder, args[0])
    index = context.cast(builder, args[1], signature.args[1], types.intp)
    return builder.gep(flags.data, [index])


@intrinsic
def load_flag(typingctx, flags, index):
    """flags[index] with acquire ordering."""
    sig = types.int64(flags, index)

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_flag_pointer(context, builder, signature, args), "acquire", 8)

    return sig, codegen


@intrinsic
def store_flag(typingctx, flags, index, value):
    """flags[index] = value with release ordering."""
    sig = types.void(flags, index, types.int64)

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, _flag_pointer(context, builder, signature, args), "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def claim_flag(typingctx, flags, index, expected, value):
    """Compare-and-swap: if flags[index] == expected, set it to value and return True (acquire/release)."""
    sig = types.boolean(flags, index, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        expected = context.cast(builder, args[2], signature.args[2], types.int64)
        value = context.cast(builder, args[3], signature.args[3], types.int64)
        pair = builder.cmpxchg(_flag_pointer(context, builder, signature, args), expected, value, "acq_rel", "acquire")
        return builder.extract_value(pair, 1)

    return sig, codegen


@intrinsic
def relax(typingctx, spins):
    """One turn of a spin-wait: the CPU's pause hint; after SPINS_BEFORE_YIELD turns, sched_yield too."""
    sig = types.void(spins)

    def codegen(context, builder, signature, args):
        if _X86:
            pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(pause, [])
        if _POSIX:
            spins = context.cast(builder, args[0], signature.args[0], types.int64)
            with builder.if_then(builder.icmp_signed(">", spins, ir.Constant(ir.IntType(64), SPINS_BEFORE_YIELD))):
                sched_yield = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
                builder.call(sched_yield, [])
        return context.get_dummy_value()

    return sig, codegen


@kernel
def wait_while(flags, index, value):
    """Spin until flags[index] != value; return the new value."""
    spins = 0
    seen = load_flag(flags, index)
    while seen == value:
        relax(spins)
        spins += 1
        seen = load_flag(flags, index)
    return seen


@kernel
def wait_for(flags, index, value):
    """Spin until flags[index] == value."""
    spins = 0
    while load_flag(flags, index) != value:
        relax(spins)
        spins += 1
