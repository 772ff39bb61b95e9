"""The truncated-BPTT data layout."""

import numpy as np
import pytest

from charrnn.batches import fill_window, split_train_val, stream_view, windows_per_epoch


def test_streams_are_contiguous_equal_parts():
    ids = np.arange(101, dtype=np.uint16)
    rows = stream_view(ids, 4)  # L = 25
    assert rows.shape == (4, 26)
    for r in range(4):
        np.testing.assert_array_equal(rows[r], ids[r * 25 : r * 25 + 26])
    assert not rows.flags.writeable


def test_next_window_continues_each_row_and_targets_are_shifted():
    ids = np.arange(1, 200, dtype=np.uint32)  # 199 ids, all distinct
    T, B = 6, 3
    rows = stream_view(ids, B)
    xs = np.empty((T, B), ids.dtype)
    ys = np.empty((T, B), ids.dtype)
    previous = None
    for k in range(windows_per_epoch(rows, T)):
        fill_window(rows, k * T, xs, ys)
        np.testing.assert_array_equal(ys[:-1], xs[1:])  # targets are the inputs shifted by one
        np.testing.assert_array_equal(ys, xs + 1)  # ids are consecutive, so the next id is x + 1
        if previous is not None:
            np.testing.assert_array_equal(xs[0], previous[1][-1])  # row r of k+1 continues row r of k
            np.testing.assert_array_equal(xs[0], previous[0][-1] + 1)
        previous = (xs.copy(), ys.copy())
    assert windows_per_epoch(rows, T) == (len(ids) - 1) // B // T


def test_split_holds_out_the_end():
    ids = np.arange(1000)
    train, val = split_train_val(ids, 0.05)
    assert len(val) == 50 and val[0] == 950 and len(train) == 950
    train, val = split_train_val(ids, 0.0)
    assert len(train) == 1000 and len(val) == 0


def test_too_few_ids_for_the_streams():
    with pytest.raises(ValueError):
        stream_view(np.arange(3), 4)
