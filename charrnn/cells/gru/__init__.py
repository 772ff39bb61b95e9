"""The GRU cell, as torch.nn.GRU (gate rows r, z, n):

    gx = W_ih x + b_ih        gh = W_hh h + b_hh
    r = sig(gx_r + gh_r)      z = sig(gx_z + gh_z)
    n = tanh(gx_n + r*gh_n)
    h' = (1 - z)*n + z*h                       one state (h)

It keeps both biases, since b_hn sits inside r*(...) and cannot be folded into b_in.
"""

from charrnn.cells import CellSpec

SPEC = CellSpec("gru", gates=3, states=1, hidden_bias=True)
