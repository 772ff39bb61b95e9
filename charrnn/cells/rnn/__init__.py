"""The vanilla (Elman) cell, as torch.nn.RNN(nonlinearity="tanh"):

    h' = tanh(W_ih x + b_ih + W_hh h)         one gate block, one state (h)
"""

from charrnn.cells import CellSpec

SPEC = CellSpec("rnn", gates=1, states=1)
