"""bench.py's helpers for the rows of charrnn's other cells (lstm, gru) and stacked layers.

The rows themselves are measured the way bench.py measures the vanilla RNN's (charrnn_train_rates,
charrnn_sample_rates and the peer's train_rates / sample_rate); what is here is what differs: the
check that charrnn has the settings, how many steps make a measurement of about the same length,
and the FLOPs of a step.
"""

from dataclasses import fields

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELLS = tuple(GATES)


def missing_settings():
    """The TrainConfig fields these rows need that charrnn does not have yet ("" when none)."""
    from charrnn.config import TrainConfig

    have = {f.name for f in fields(TrainConfig)}
    return ", ".join(name for name in ("cell", "layers") if name not in have)


def flops_per_char(cell, layers, H, V):
    """Training FLOPs per character: forward multiply-adds G*H*H per layer for the recurrence,
    G*H*H more per layer above the first for its input (layer 0's one-hot input is a column
    lookup), H*V for the output layer; backward twice the forward. The vanilla RNN (G = 1, one
    layer) gives the 6 (H² + HV) of bench.py's GFLOP/s rows (benchmarks/README.md)."""
    G = GATES[cell]
    return 6 * (G * H * H * (2 * layers - 1) + H * V)


def plan(cell, layers, H, V, steps, warmup, scale, blocks):
    """(warm-up, timed steps) for a cell's row: the vanilla row's counts (`steps`, `warmup` at this H)
    scaled down by the cell's FLOPs per character, so that a measurement takes about as long; the
    timed steps a multiple of `blocks`, at least one per block; at least 2 warm-up steps (the first
    compiles, or loads the numba cache)."""
    ratio = flops_per_char(cell, layers, H, V) / flops_per_char("rnn", 1, H, V)
    timed = max(blocks, round(steps / ratio / scale / blocks) * blocks)
    return max(2, round(warmup / ratio / scale)), timed
