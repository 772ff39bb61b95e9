"""The truncated-BPTT data layout.

The id sequence is cut into B contiguous streams of equal length L; stream r is row r of a
(B, L+1) view (row r ends with the first id of row r+1, so the last target has an input).
Window k of an epoch covers steps [kT, kT+T) of every stream: row r of window k+1 continues
row r of window k, which is why the hidden state can be carried across windows.
Targets are the inputs shifted by one step.
"""

from numpy.lib.stride_tricks import as_strided


def split_train_val(ids, val_frac):
    """(train, val): val is the last val_frac of the ids (views, no copies)."""
    n_val = int(len(ids) * val_frac)
    if n_val < 2:
        return ids, ids[:0]
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def stream_view(ids, B):
    """(B, L+1) read-only view of ids (N,) with L = (N-1)//B; row r = ids[rL : (r+1)L + 1]."""
    L = (len(ids) - 1) // B
    if L < 1:
        raise ValueError(f"{len(ids)} ids cannot fill {B} streams")
    step = ids.strides[0]
    return as_strided(ids, shape=(B, L + 1), strides=(L * step, step), writeable=False)


def windows_per_epoch(streams, T):
    """Whole windows of T steps in each row of a (B, L+1) stream view."""
    return (streams.shape[1] - 1) // T


def fill_window(streams, start, xs, ys):
    """Copy steps [start, start+T) of every stream into time-major xs, ys (T, B) (targets shifted by one)."""
    T = xs.shape[0]
    xs[...] = streams[:, start : start + T].T
    ys[...] = streams[:, start + 1 : start + T + 1].T
