"""The truncated-BPTT data layout."""

import numpy as np
import pytest

from charrnn.batches import fill_window, split_rows, split_train_val, stream_view, windows_per_epoch


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


def targets(rows):
    """The positions (ids are their own positions here) that a stream view predicts: all but each row's first."""
    return set(rows[:, 1:].ravel().tolist())


def test_spread_validation_takes_the_end_of_every_streams_segment():
    ids = np.arange(1003)  # S = 250 per stream, 3 left over
    train, val = split_rows(ids, 4, 8, 0.1)
    assert train.shape == (4, 225) and val.shape == (4, 25)
    for r in range(4):
        np.testing.assert_array_equal(train[r], ids[r * 250 : r * 250 + 225])
        np.testing.assert_array_equal(val[r], ids[r * 250 + 225 : (r + 1) * 250])
    assert not targets(train) & targets(val)  # no id is predicted in both
    assert targets(train) | targets(val) | set(val[:, 0].tolist()) | {0, 250, 500, 750} >= set(range(1000))
    assert not train.flags.writeable and not val.flags.writeable


def test_tail_validation_is_the_end_of_the_corpus_as_before():
    ids = np.arange(1000)
    train, val = split_rows(ids, 4, 8, 0.05, "tail")
    np.testing.assert_array_equal(train, stream_view(ids[:950], 4))
    np.testing.assert_array_equal(val, stream_view(ids[950:], 4))  # up to B rows of at least T steps
    _, val = split_rows(ids, 4, 20, 0.05, "tail")
    assert val.shape[0] == 2


@pytest.mark.parametrize("how", ["spread", "tail"])
def test_no_validation_keeps_every_id_for_training(how):
    ids = np.arange(1000)
    train, val = split_rows(ids, 4, 8, 0.0, how)
    assert val is None
    np.testing.assert_array_equal(train, stream_view(ids, 4))
    assert split_rows(ids, 4, 8, 0.001, how)[1] is None  # one id is no validation


def test_spread_validation_is_capped_and_falls_back_to_the_tail_on_short_segments():
    ids = np.arange(100_000)
    _, val = split_rows(ids, 10, 8, 0.2, val_max=1000)
    assert val.shape == (10, 100)
    np.testing.assert_array_equal(val[3], ids[38_000:38_100])
    train, val = split_rows(np.arange(100), 40, 1, 0.02)  # v = int(2 * 0.02) = 0 per segment
    np.testing.assert_array_equal(val, stream_view(np.arange(98, 100), 1))
    np.testing.assert_array_equal(train, stream_view(np.arange(98), 40))
