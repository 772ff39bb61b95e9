"""The LSTM cell, as torch.nn.LSTM (gate rows i, f, g, o):

    a = W_ih x + b_ih + W_hh h
    i = sig(a_i)   f = sig(a_f)   g = tanh(a_g)   o = sig(a_o)
    c' = f*c + i*g
    h' = o*tanh(c')                            two states: h and c

The forget gate's bias is drawn like every other bias, as in PyTorch. A start near 1 (Jozefowicz et
al. 2015) was measured and lost on tiny Shakespeare (H=512, dropout 0.2, cosine, held out):
1.9392 against 1.8556 after 1,500 steps (seed 0), and 1.7636 against 1.7260 after 600 s (means of
seeds 0 and 1, measured a day apart).
"""

from charrnn.cells import CellSpec

SPEC = CellSpec("lstm", gates=4, states=2)
