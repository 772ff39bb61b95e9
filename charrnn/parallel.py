"""Data parallelism across cores: the B streams of a window are split into contiguous groups, one per
worker thread, and each group runs the whole forward/backward pass on its own workspace.

This works because the kernels release the GIL (numba `nogil`) and so do numpy's matrix products,
while each BLAS pool is held to one thread: two cores then do two independent halves of the work
instead of two BLAS pools fighting over both cores. The gradient is the position-weighted sum of
the groups' gradients, in a fixed order, so results do not depend on thread timing.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from charrnn.network import Workspace, loss_and_grads


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def split_streams(B, workers):
    """[(start, stop)] contiguous groups of streams, sizes differing by at most one."""
    edges = np.linspace(0, B, workers + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


class _Group:
    def __init__(self, start, stop, params, T, ids_dtype):
        B = stop - start
        self.start, self.stop = start, stop
        self.grads = params.like()
        self.ws = Workspace(params.arch, T, B, params.flat.dtype)
        self.xs = np.empty((T, B), ids_dtype)
        self.ys = np.empty((T, B), ids_dtype)
        self.state0 = np.empty(params.arch.state_shape(B), params.flat.dtype)  # (L, S, B, H)

    def run(self, params, xs, ys, state, dropout):
        a, b = self.start, self.stop
        self.xs[...] = xs[:, a:b]
        self.ys[...] = ys[:, a:b]
        self.state0[...] = state[:, :, a:b]
        dropout = None if dropout is None else dropout.at(a)  # masks by global stream index
        return loss_and_grads(params, self.grads, self.xs, self.ys, self.state0, self.ws, dropout)


class WindowRunner:
    """loss_and_grads for whole windows, spread over `workers` threads (1: no threads at all)."""

    def __init__(self, params, T, B, ids_dtype, workers=None):
        workers = max(1, min(workers or available_cores(), B))
        self.groups = [_Group(a, b, params, T, ids_dtype) for a, b in split_streams(B, workers)]
        self.weights = [(g.stop - g.start) / B for g in self.groups]
        self.pool = ThreadPoolExecutor(len(self.groups) - 1) if len(self.groups) > 1 else None

    @property
    def workers(self):
        return len(self.groups)

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def map(self, fn, items):
        """[fn(item) for item in items], the first in this thread and the others in the pool."""
        items = list(items)
        if self.pool is None:
            return [fn(item) for item in items]
        futures = [self.pool.submit(fn, item) for item in items[1:]]
        return [fn(items[0])] + [f.result() for f in futures]

    def loss_and_grads(self, params, grads, xs, ys, state, dropout=None):
        """Mean loss over the window; grads overwritten; state (L, S, B, H) is replaced by the
        window's last state. dropout: a charrnn.network.Dropout, or None."""
        first, rest = self.groups[0], self.groups[1:]
        losses = self.map(lambda g: g.run(params, xs, ys, state, dropout), self.groups)
        if not rest:
            grads.flat[...] = first.grads.flat
        else:
            np.multiply(first.grads.flat, self.weights[0], out=grads.flat)
            for g, w in zip(rest, self.weights[1:]):
                grads.flat += w * g.grads.flat
        for g in self.groups:
            state[:, :, g.start : g.stop] = g.ws.state
        return sum(w * loss for w, loss in zip(self.weights, losses))


class SpinHelper:
    """A helper thread for a compiled loop that takes work through a flag array (charrnn.kernels.spin).

    `with helper.running(fn, *args) as flags:` runs fn(*args, flags) in the helper thread (fn releases
    the GIL) for the span of the block. The flags start at 0; the block's own compiled code sends
    fn its stop value, and on the way out (also after an error) the stop value is stored again and
    the thread is waited for, so it never spins on after the block.
    """

    def __init__(self, go_index, stop_value):
        self.go_index, self.stop_value = go_index, stop_value
        self.flags = np.zeros(32, np.int64)  # up to four flags 8 apart: each on its own cache line
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="charrnn-helper")

    @contextmanager
    def running(self, fn, *args):
        self.flags[:] = 0
        future = self.pool.submit(fn, *args, self.flags)
        try:
            yield self.flags
        finally:
            self.flags[self.go_index] = self.stop_value
            future.result()

    def close(self):
        self.pool.shutdown()
