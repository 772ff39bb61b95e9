"""The sampler's compiled loop, for every cell and any number of layers.

Shapes: L layers, S states, H hidden, G*H gate rows, V vocabulary; state (L, S, H) one stream's.

Every product of a step multiplies one layer's new h_l (H,) by a stack of weights packed once
(charrnn.kernels.packed) and laid end to end in `panels`, layer l's in groups goff[l]..goff[l+1]-1:

    M_l = [weight_hh_l; weight_ih_l+1]   (2*G*H, H)   or, for the last layer,
    M_l = [weight_hh_l; weight_out]      (G*H + V, H)

so one product gives both what layer l needs at the next step and what the layer above (or the
head) needs now: u = M_l h_l lands in u[0, goff[l]*width ...]. For the vanilla cell with one
layer this is the single [Whh; Why] product per token. The cell's own step turns the two parts
into the new state.

The loops that feed tokens (advance, sample_tokens) are made once per cell by loops(step), as
closures over that cell's step (the `step` of its charrnn/cells/<name>/cpu.py), so this module
never names a cell and each cell's loop compiles only its own step. A cell's step passed as an
argument to one shared loop also compiles (numba specialises on a kernel's type), but a kernel
whose argument types include a kernel never loads from numba's on-disk cache: its key holds the
argument's uuid, new in every process. Each cell's loops carry the name of its step, so each has
its own cache files (numba numbers the entries of one index file without a lock: two processes
compiling two cells into one index at once could cross them).

Each product's groups can be shared with a helper thread (matvec_helper) that computes those
from splits[l] on, handing work over through flags (charrnn.kernels.spin). Each product's helper
part is claimed (compare-and-swap on flags[CLAIM]) by whichever thread gets there first: when the
helper is not running (other programs busy on the cores), the sampler does the part itself.
"""

import functools
from typing import NamedTuple

import numpy as np

from charrnn.kernels.draw import draw_token
from charrnn.kernels.jit import kernel
from charrnn.kernels.packed import matmul_groups
from charrnn.kernels.spin import claim_flag, store_flag, wait_for, wait_while

GO, CLAIM, DONE, STOP = 0, 8, 16, -1  # flags: product published, claimed, finished by the helper


@kernel
def prepare(state, panels, goff, u):
    """u <- every layer's whole product from the current state (the hidden parts for the next step)."""
    for l in range(state.shape[0]):
        matmul_groups(state[l, :1], panels, u, goff[l], goff[l + 1])


@kernel
def matvec_helper(state, panels, goff, splits, u, flags):
    """The helper thread's loop: for each product the sampler publishes in flags[GO] (layer
    (seq - 1) % L), compute its groups splits[l]..goff[l+1]-1, then publish it in flags[DONE].
    Returns at STOP."""
    L = state.shape[0]
    seq = 0
    while True:
        seq = wait_while(flags, GO, seq)
        if seq == STOP:
            return
        if claim_flag(flags, CLAIM, seq - 1, seq):  # else the sampler took this product's part
            l = (seq - 1) % L
            matmul_groups(state[l, :1], panels, u, splits[l], goff[l + 1])
            store_flag(flags, DONE, seq)


class Loops(NamedTuple):
    """One cell's compiled loops (see loops)."""

    advance: object
    sample_tokens: object


@functools.cache
def loops(step):
    """The sampler's loops around one cell's step, made once per step.

    step(ux, bx, uh, bh, a, state), a @kernel(inline="always"): state (S, H) advanced from the
    input product ux, its bias bx, the hidden product uh and its bias bh (all (G*H,), read only);
    a (scratch, (G+1)*H) is the step's to use.
    """
    name = f"{step.py_func.__module__}.{step.py_func.__qualname__}"

    def named(fn):  # the name numba's cache files take (see the module's docstring)
        fn.__qualname__ = f"loops.{fn.__name__}.{name}"
        return fn

    @kernel(inline="always")
    @named
    def token_step(x, state, W0, bih, bhh, panels, goff, splits, u, scratch, flags, helped, seq):
        """Feed token x through every layer; returns the product count. Afterwards the head's
        logits (without bias_out) are u[0, goff[L-1]*width + G*H :][:V]."""
        GH, width = W0.shape[1], panels.shape[2]
        for l in range(state.shape[0]):
            own = goff[l] * width  # views, not copies: the cell's step adds the biases
            if l == 0:  # two calls, not one of a unified view: that would lose the views' contiguity
                step(W0[x], bih[0], u[0, own : own + GH], bhh[0], scratch, state[0])
            else:
                below = goff[l - 1] * width + GH
                step(u[0, below : below + GH], bih[l], u[0, own : own + GH], bhh[l], scratch, state[l])
            h_row = state[l, :1]  # (1, H)
            seq += 1
            if helped:
                store_flag(flags, GO, seq)
            matmul_groups(h_row, panels, u, goff[l], splits[l])
            if helped:
                if claim_flag(flags, CLAIM, seq - 1, seq):  # the helper has not started: its part is done here
                    matmul_groups(h_row, panels, u, splits[l], goff[l + 1])
                else:
                    wait_for(flags, DONE, seq)
        return seq

    @kernel
    @named
    def advance(ids, state, W0, bih, bhh, panels, goff, u, scratch):
        """Feed ids (N,) through the layers, updating state (L, S, H) in place. W0 (V, G*H) is
        weight_ih_l0 as stored; bih, bhh (L, G*H) (zeros for cells without bias_hh); u (1, columns),
        see charrnn.sample.CpuSampler; scratch ((G+1)*H,) the step's."""
        prepare(state, panels, goff, u)
        flags = np.zeros(1, np.int64)
        for i in range(ids.shape[0]):
            token_step(ids[i], state, W0, bih, bhh, panels, goff, goff[1:], u, scratch, flags, False, 0)

    @kernel
    @named
    def sample_tokens(x, state, W0, bih, bhh, bout, panels, goff, splits, allowed, no_repeat, temperature, top_k, top_p, stop_id, rng, out, u, scratch, flags, helped):
        """Generate up to len(out) tokens for one stream, starting from input token x and state (L, S, H).

        Each step feeds the current token, then draws the next from the logits by the rule of
        charrnn.kernels.draw (allowed (V,) bool: the tokens that may be drawn; temperature, top_k,
        top_p), with one rng.random() per token (none at temperature 0). The token no_repeat (-1:
        none) is not drawn right after itself: <eos> never follows <eos>, since training never has
        an empty record. allowed is changed for a step and restored. state is updated in place;
        stops early after emitting stop_id (-1: never). When `helped`, a matvec_helper thread
        computes each product's groups from splits[l] on (or, for the products it has not claimed
        in time, this thread does), and is sent STOP on return. Returns how many tokens were
        written to out (N,).
        """
        V = bout.shape[0]
        GH, width, L = W0.shape[1], panels.shape[2], state.shape[0]
        z = np.empty(V, dtype=u.dtype)
        w = np.empty(V, dtype=u.dtype)
        spare = np.empty(V, dtype=u.dtype)  # the draw's (the cell's is `scratch`)
        bits = np.empty(V, np.int32)
        head = goff[L - 1] * width + GH
        prepare(state, panels, goff, u)
        n = out.shape[0]
        seq = 0
        for i in range(out.shape[0]):
            seq = token_step(x, state, W0, bih, bhh, panels, goff, splits, u, scratch, flags, helped, seq)
            for k in range(V):
                z[k] = u[0, head + k] + bout[k]
            r = rng.random() if temperature != 0.0 else 0.0
            repeat = x == no_repeat and allowed[x]
            if repeat:
                allowed[x] = False
            x = draw_token(z, allowed, temperature, top_k, top_p, r, w, spare, bits)
            if repeat:
                allowed[no_repeat] = True
            out[i] = x
            if x == stop_id:
                n = i + 1
                break
        if helped:
            store_flag(flags, GO, STOP)
        return n

    return Loops(advance, sample_tokens)
