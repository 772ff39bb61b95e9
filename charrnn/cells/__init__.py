"""The cells: each folder holds one cell's equations, parameter shapes, initialisation, CPU step
kernels (cpu.py) and CUDA step kernels (cuda.py). Nothing outside a cell's folder knows which cell
it runs: the network asks the registry for a spec and calls what it names.

A spec (this module's light half, no numba) says:
    gates        G: the blocks of G*H rows in weight_ih / weight_hh, in PyTorch's order
    states       S: state arrays per layer (h, and c for the LSTM)
    hidden_bias  whether the cell keeps bias_hh (the GRU: r gates W_hn h + b_hn)
Its cpu.py module (loaded by charrnn.cells.kernels) holds the kernels, see charrnn.cells.rnn.cpu.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class CellSpec:
    name: str
    gates: int
    states: int
    hidden_bias: bool = False


def _registry():
    from charrnn.cells import gru, lstm, rnn

    return {"rnn": rnn.SPEC, "lstm": lstm.SPEC, "gru": gru.SPEC}  # the registry: one entry per cell


CELLS = ("rnn", "lstm", "gru")  # its names, in kernel-dispatch order (charrnn.cells.kernels)
_SPECS = {}


def spec(name):
    """The CellSpec of a cell name; KeyError for an unknown one."""
    if not _SPECS:
        _SPECS.update(_registry())
        assert tuple(_SPECS) == CELLS
    return _SPECS[name]
