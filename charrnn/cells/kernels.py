"""The cells' CPU kernel modules, loaded from the registry, and the one compiled dispatch that
lets a shared loop (the sampler, charrnn.kernels.sampling) run any cell's step.

cell_index(name) is the `kind` that `point_step` takes: the cell's place in charrnn.cells.CELLS.
"""

import importlib
import warnings

from numba import literal_unroll
from numba.core.errors import NumbaExperimentalFeatureWarning

from charrnn.cells import CELLS
from charrnn.kernels.jit import kernel

MODULES = tuple(importlib.import_module(f"charrnn.cells.{name}.cpu") for name in CELLS)
_STEPS = tuple(module.step for module in MODULES)


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


# A tuple of kernels unrolled in a loop is numba's "first-class function" feature, which warns that
# it is experimental when it compiles; the dispatch below uses only its plainest form, and it is
# cached on disk like every kernel (tests/test_cells.py runs every cell through it).
warnings.filterwarnings("ignore", "First-class function type feature is experimental", NumbaExperimentalFeatureWarning)


@kernel(inline="always")
def point_step(kind, ux, uh, state):
    """The `kind`-th cell's step (cell_index): state (S, H) advanced from ux, uh (G*H,) in place."""
    i = 0
    for step in literal_unroll(_STEPS):
        if i == kind:
            step(ux, uh, state)
        i += 1
