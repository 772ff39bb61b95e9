"""The truncated-BPTT data layout.

The id sequence is cut into B contiguous streams of equal length L; stream r is row r of a
(B, L+1) view (row r ends with the first id of row r+1, so the last target has an input).
Window k of an epoch covers steps [kT, kT+T) of every stream: row r of window k+1 continues
row r of window k, which is why the hidden state can be carried across windows.
Targets are the inputs shifted by one step.

Validation (`split_rows`) comes from the whole corpus by default ("spread"): the ids are cut into
B equal segments, stream r trains on the first part of segment r and validates on its last
val_frac, so every region of the text is trained on and every region is scored. "tail" holds out
the end of the corpus instead (what older checkpoints resume with, and what a time-ordered corpus may want).
On tiny Shakespeare the tail is the start of the play that the usual held-out tenth continues,
and holding it out of training was the largest loss the quality benchmark found
(benchmarks/README.md, "Where the loss went").
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


def split_rows(ids, B, T, val_frac, how="spread", val_max=None):
    """(train, val): the (B, L+1) training stream view of ids (N,) and the validation rows, a
    (b, l+1) stream view scored each from a zero state, or None when val_frac holds out fewer than
    2 ids. Views, no copies. val_max: at most about this many validation ids.

    spread: segment r = ids[rS : (r+1)S], S = N // B, gives stream r its first S - v ids and
    validation row r its last v = int(S * val_frac) (the first of them context only: no id is a
    target of both). tail: split_train_val, then up to B validation rows of at least T steps.
    When segments are too short for v >= 2, spread falls back to the tail.
    """
    n_val = int(len(ids) * val_frac)
    if n_val < 2:
        return stream_view(ids, B), None
    S = len(ids) // B
    v = int(S * val_frac)
    if how == "tail" or v < 2:
        train, val = split_train_val(ids, val_frac)
        val = val[:val_max]
        return stream_view(train, B), stream_view(val, max(1, min(B, (len(val) - 1) // T)))
    if S - v < 2:
        raise ValueError(f"{len(ids)} ids cannot fill {B} streams")
    step = ids.strides[0]
    keep = v if val_max is None else min(v, max(2, val_max // B))
    train = as_strided(ids, shape=(B, S - v), strides=(S * step, step), writeable=False)
    val = as_strided(ids[S - v :], shape=(B, keep), strides=(S * step, step), writeable=False)
    return train, val
