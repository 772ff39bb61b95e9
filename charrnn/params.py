"""Where every parameter lives: the one layout that the model, checkpoints, the optimizer and the
CUDA side all read, so the schema is written once.

An architecture is (cell, layers, H, V). With G = the cell's gates and I_k the input size of layer
k (V for layer 0, fed one-hot; H above), the parameters are, in storage order:

    per layer k:  weight_ih_l{k} (G*H, I_k)   weight_hh_l{k} (G*H, H)   bias_ih_l{k} (G*H,)
                  bias_hh_l{k} (G*H,)          only for cells that keep a second bias (GRU)
    then:         weight_out (V, H)           bias_out (V,)

These are the names and shapes of torch.nn.RNN / LSTM / GRU (with its gate order) and of an
nn.Linear(H, V) head, so a checkpoint maps one-to-one onto PyTorch. weight_ih_l0 is stored
transposed, (V, G*H), so that a token's input projection is one contiguous row.

Format-1 checkpoints (the vanilla cell before layers existed) used other names for the same five
arrays, in the same storage order: FORMAT1_NAMES maps them.
"""

from dataclasses import dataclass

import numpy as np

from charrnn.cells import spec

FORMAT1_NAMES = {"Wxh": "weight_ih_l0", "Whh": "weight_hh_l0", "bh": "bias_ih_l0", "Why": "weight_out", "by": "bias_out"}


@dataclass(frozen=True)
class Arch:
    """What the parameters' shapes depend on."""

    cell: str = "rnn"
    layers: int = 1  # L
    hidden: int = 128  # H
    vocab_size: int = 2  # V

    @property
    def gates(self):  # G
        return spec(self.cell).gates

    @property
    def states(self):  # S: arrays of state per layer (LSTM: h and c)
        return spec(self.cell).states

    def state_shape(self, B):
        """The carried state of B streams: (L, S, B, H)."""
        return (self.layers, self.states, B, self.hidden)


def layout(arch):
    """{name: shape} of every parameter, in storage order (shapes as PyTorch has them)."""
    G, H, V = arch.gates, arch.hidden, arch.vocab_size
    shapes = {}
    for k in range(arch.layers):
        shapes[f"weight_ih_l{k}"] = (G * H, V if k == 0 else H)
        shapes[f"weight_hh_l{k}"] = (G * H, H)
        shapes[f"bias_ih_l{k}"] = (G * H,)
        if spec(arch.cell).hidden_bias:
            shapes[f"bias_hh_l{k}"] = (G * H,)
    shapes["weight_out"] = (V, H)
    shapes["bias_out"] = (V,)
    return shapes


def is_bias(name):
    """Biases get no weight decay."""
    return name.startswith("bias_")


class FlatParams:
    """A flat buffer (P,) with named, shaped views into it (no copies)."""

    def __init__(self, arch, dtype=np.float32, flat=None):
        self.arch = arch
        shapes = layout(arch)
        size = sum(int(np.prod(s)) for s in shapes.values())
        self.flat = np.zeros(size, dtype) if flat is None else flat
        assert self.flat.shape == (size,) and self.flat.flags.c_contiguous
        self.views, self.offsets = {}, {}
        start = 0
        for name, shape in shapes.items():
            n = int(np.prod(shape))
            block = self.flat[start : start + n]
            self.views[name] = block.reshape(shape[::-1]).T if name == "weight_ih_l0" else block.reshape(shape)
            self.offsets[name] = (start, start + n)
            start += n

    hidden = property(lambda self: self.arch.hidden)
    vocab_size = property(lambda self: self.arch.vocab_size)
    layers = property(lambda self: self.arch.layers)

    def __getitem__(self, name):
        return self.views[name]

    def stored(self, name):
        """The array as stored: weight_ih_l0 as (V, G*H), the others as their views."""
        view = self.views[name]
        return view.T if name == "weight_ih_l0" else view

    def like(self, dtype=None):
        """A zeroed buffer of the same layout (gradients, optimizer slots)."""
        return FlatParams(self.arch, dtype or self.flat.dtype)

    def astype(self, dtype):
        return FlatParams(self.arch, dtype, self.flat.astype(dtype))

    def load(self, arrays):
        """Copy named arrays (e.g. from a checkpoint) into the buffer."""
        for name, view in self.views.items():
            view[...] = arrays[name]
        return self

    def as_dict(self):
        """Independent C-ordered copies of each view, for saving."""
        return {name: view.copy(order="C") for name, view in self.views.items()}

    def decay_mask(self):
        """(P,) float: 1 where weight decay applies (weights), 0 on biases."""
        mask = np.ones(self.flat.size, self.flat.dtype)
        for name, (a, b) in self.offsets.items():
            if is_bias(name):
                mask[a:b] = 0
        return mask


def init_params(arch, rng, dtype=np.float32):
    """Every array uniform in +-1/sqrt(H), biases included: PyTorch's choice for these layers, and
    for the LSTM's forget gate too (charrnn.cells.lstm says what a start near 1 cost).

    Biases drawn like the weights, not zero: measured on tiny Shakespeare (H=512, 300 steps, seed 0,
    held-out validation loss), zero biases left the GRU on a plateau (2.41 against 2.08) and the
    LSTM behind (2.29 against 2.12), and biases of +-0.001 did as badly as zero (2.42)."""
    params = FlatParams(arch, dtype)
    bound = 1.0 / np.sqrt(arch.hidden)
    for view in params.views.values():
        view[...] = rng.uniform(-bound, bound, size=view.shape)
    return params
