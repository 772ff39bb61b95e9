"""The cells: each folder charrnn/cells/<name>/ holds one cell's equations and parameter spec
(__init__.py), its CPU kernels (cpu.py), their CUDA mirror (cuda.py) and its float64 reference step
(reference.py, for charrnn.reference). Nothing outside a cell's folder knows which cells exist: the
network, the sampler and the reference ask the registry (CELLS) for a cell's modules by name.

A spec (this module's light half, no numba) says:
    gates        G: the blocks of G*H rows in weight_ih / weight_hh, in PyTorch's order
    states       S: state arrays per layer (h, and c for the LSTM)
    hidden_bias  whether the cell keeps bias_hh (the GRU: r gates W_hn h + b_hn)
Its cpu.py module (loaded by charrnn.cells.modules) holds the kernels, see charrnn.cells.rnn.cpu.
"""

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class CellSpec:
    name: str
    gates: int
    states: int
    hidden_bias: bool = False


CELLS = ("rnn", "lstm", "gru")  # the registry: one name per folder charrnn/cells/<name>/
_SPECS = {}


def spec(name):
    """The CellSpec of a cell name; KeyError for an unknown one."""
    if name not in CELLS:
        raise KeyError(name)
    if name not in _SPECS:
        _SPECS[name] = importlib.import_module(f"charrnn.cells.{name}").SPEC
        assert _SPECS[name].name == name
    return _SPECS[name]


def module(name, part):
    """The module charrnn.cells.<name>.<part> of a registered cell (part: "cpu", "cuda", "reference")."""
    if name not in CELLS:
        raise KeyError(name)
    return importlib.import_module(f"charrnn.cells.{name}.{part}")
