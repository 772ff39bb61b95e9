"""The cells' CPU kernel modules, loaded from the registry, and the one compiled dispatch that
lets a shared loop (the sampler, charrnn.kernels.sampling) run any cell's step.

cell_index(name) is the `kind` that `point_step` takes: the cell's place in charrnn.cells.CELLS.
The dispatch is a plain chain of calls, one line per cell: a loop over a tuple of the steps
(numba's literal_unroll of first-class functions) would read the registry alone, but numba marks
that feature experimental and warns about it on every compile. The assertion below keeps the
chain in the registry's order.
"""

import importlib

from charrnn.cells import CELLS
from charrnn.cells.gru.cpu import step as gru_step
from charrnn.cells.lstm.cpu import step as lstm_step
from charrnn.cells.rnn.cpu import step as rnn_step
from charrnn.kernels.jit import kernel

MODULES = tuple(importlib.import_module(f"charrnn.cells.{name}.cpu") for name in CELLS)
_STEPS = (rnn_step, lstm_step, gru_step)
assert _STEPS == tuple(module.step for module in MODULES), "point_step must list the cells in CELLS order"


def cpu_module(name):
    """The cpu.py module of a cell."""
    return MODULES[cell_index(name)]


def cuda_module(name):
    """The cuda.py module of a cell (its CUDA step kernels and time loops), imported on first use:
    it imports numba.cuda, which CPU commands never load."""
    if name not in CELLS:
        raise KeyError(name)
    return importlib.import_module(f"charrnn.cells.{name}.cuda")


def cell_index(name):
    return CELLS.index(name)


@kernel(inline="always")
def point_step(kind, ux, bx, uh, bh, a, state):
    """The `kind`-th cell's step (cell_index): state (S, H) advanced from the input product ux,
    its bias bx, the hidden product uh and its bias bh (all (G*H,), read only); a (scratch,
    (G+1)*H) is the cell's to use."""
    if kind == 0:
        rnn_step(ux, bx, uh, bh, a, state)
    elif kind == 1:
        lstm_step(ux, bx, uh, bh, a, state)
    else:
        gru_step(ux, bx, uh, bh, a, state)
