"""The cells' kernel modules, found through the registry (charrnn.cells.CELLS): what charrnn.network,
charrnn.network_cuda and the samplers read. No cell is named here.
"""

from charrnn.cells import CELLS, module

MODULES = tuple(module(name, "cpu") for name in CELLS)  # every cell's cpu.py, in registry order


def cpu_module(name):
    """The cpu.py module of a cell: its Layer (the time loops over a window) and its sampling `step`."""
    return MODULES[CELLS.index(name)]


def cuda_module(name):
    """The cuda.py module of a cell (its CUDA step kernels and Layer), imported on first use: it
    imports numba.cuda, which CPU commands never load."""
    return module(name, "cuda")

