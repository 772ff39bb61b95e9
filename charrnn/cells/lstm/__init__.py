"""The LSTM cell, as torch.nn.LSTM (gate rows i, f, g, o):

    a = W_ih x + b_ih + W_hh h
    i = sig(a_i)   f = sig(a_f)   g = tanh(a_g)   o = sig(a_o)
    c' = f*c + i*g
    h' = o*tanh(c')                            two states: h and c

The forget gate's bias starts near 1 (1 plus the uniform draw every bias gets; Jozefowicz et al.
2015: the cell remembers by default early on); PyTorch starts it near 0.
"""

from charrnn.cells import CellSpec


def init_biases(bias, hidden):
    bias[hidden : 2 * hidden] += 1.0  # f


SPEC = CellSpec("lstm", gates=4, states=2, init_biases=init_biases)
