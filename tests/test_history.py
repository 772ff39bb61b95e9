"""The loss history a checkpoint keeps: rows of (step, seconds, loss), compact for any run length."""

import json

import numpy as np
import pytest

import charrnn
import charrnn.history as history_module
from charrnn.checkpoint import load_checkpoint
from charrnn.history import History
from helpers import API_TINY

pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs in its own folder holding corpus.txt


def test_a_checkpoint_holds_the_train_and_validation_curves(corpus):
    losses, vals = [], []
    record = lambda kind, info: (losses if kind == "step" else vals).append(info) if kind in ("step", "eval") else None  # noqa: E731
    charrnn.train(corpus, "m.npz", steps=35, on_event=record, **API_TINY)
    ckpt = load_checkpoint("m.npz")
    train, val = ckpt.state["history.train"], ckpt.state["history.val"]
    assert train.dtype == val.dtype == np.float32 and train.shape == (3, 3)
    assert train[:, 0].tolist() == [10, 20, 30]
    means = [np.float32(np.mean([s["loss"] for s in losses[i : i + 10]])) for i in (0, 10, 20)]
    np.testing.assert_allclose(train[:, 2], means, rtol=1e-6)
    assert val[:, 0].tolist() == [10, 20, 30, 35]  # and the validation at the end
    np.testing.assert_array_equal(val[:, 2], np.float32([v["val_loss"] for v in vals]))
    assert np.all(np.diff(train[:, 1]) > 0) and ckpt.meta["elapsed"] >= float(val[-1, 1]) - 1e-4
    charrnn.resume("m.npz", steps=10)
    more = load_checkpoint("m.npz").state
    assert more["history.train"][:, 0].tolist() == [10, 20, 30, 40]  # the 31..40 mean spans the resume
    assert more["history.val"][:, 0].tolist() == [10, 20, 30, 35, 40, 45]
    assert more["history.val"][-1, 1] > val[-1, 1]  # the clock continues


def test_a_long_history_is_halved_and_its_interval_doubles(monkeypatch):
    monkeypatch.setattr(history_module, "MAX_ROWS", 8)
    h = History()
    for step in range(1, 201):
        h.step(step, step / 10, float(step))
    rows = h.arrays()["history.train"]
    assert len(rows) < 8 and h.every == 40
    assert rows[-1, 0] == 200 and np.all(np.diff(rows[:, 0]) > 0)


@pytest.mark.parametrize("shape", [(4,), (4, 2), (2, 3, 1)])
def test_a_history_of_the_wrong_shape_is_one_line(corpus, shape):
    charrnn.train(corpus, "m.npz", steps=10, **API_TINY)
    arrays = dict(np.load("m.npz", allow_pickle=False))
    arrays["history.val"] = np.zeros(shape, np.float32)
    np.savez("bad.npz", **arrays)
    with pytest.raises(charrnn.CheckpointError, match=r"^bad.npz: .*array 'history.val' has shape"):
        charrnn.load("bad.npz")


def test_history_meta_written_by_another_program_starts_afresh():
    h = History(meta={"history_every": "10", "elapsed": float("nan"), "history_partial": [1, "x"]})
    assert (h.every, h.elapsed, h.sum, h.count) == (10, 0.0, 0.0, 0)
    assert json.dumps(h.meta(1.5)) == '{"history_every": 10, "elapsed": 1.5, "history_partial": [0.0, 0]}'
