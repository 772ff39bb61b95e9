"""The training loop end to end on a tiny corpus: it learns, it is reproducible, it carries state as specified."""

import numpy as np
import pytest

from charrnn.batches import split_rows
from charrnn.cells import CELLS
from charrnn.checkpoint import load_checkpoint
from charrnn.config import TrainConfig
from charrnn.errors import UsageError
from charrnn.evaluate import validation_loss
from charrnn.params import FlatParams
from charrnn.parallel import WindowRunner
from charrnn.train_loop import best_path, train

TINY = dict(hidden=32, seq=16, batch=4, val_frac=0.1, eval_every=50, seed=3)


def run(loaded_corpus, tmp_path, name="m.npz", events=None, **settings):
    cfg = TrainConfig(**{**TINY, **settings})
    record = (lambda kind, info: events.append((kind, info))) if events is not None else (lambda kind, info: None)
    return train(loaded_corpus, cfg, tmp_path / name, report=record)


def test_golden_run_learns_the_tiny_corpus(loaded_corpus, tmp_path):
    """A fixed budget of 300 steps takes the validation loss from ln(V) ≈ 2.9 to below 0.5 nats/char."""
    events = []
    result = run(loaded_corpus, tmp_path, steps=300, events=events)
    assert result.steps == 300
    first_loss = next(info["loss"] for kind, info in events if kind == "step")
    assert first_loss == pytest.approx(np.log(loaded_corpus.vocab.size), abs=0.3)
    assert result.best_val_loss < 0.5
    assert result.last_val_loss == result.best_val_loss or result.last_val_loss < 0.6


def test_same_seed_same_model_and_losses(loaded_corpus, tmp_path):
    a_events, b_events = [], []
    run(loaded_corpus, tmp_path, "a.npz", steps=40, events=a_events)
    run(loaded_corpus, tmp_path, "b.npz", steps=40, events=b_events)
    a, b = load_checkpoint(tmp_path / "a.npz"), load_checkpoint(tmp_path / "b.npz")
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    losses = lambda events: [info["loss"] for kind, info in events if kind == "step"]  # noqa: E731
    assert losses(a_events) == losses(b_events)
    c = run(loaded_corpus, tmp_path, "c.npz", steps=40, seed=4)
    assert not np.array_equal(load_checkpoint(c.checkpoint).params["weight_hh_l0"], a.params["weight_hh_l0"])


@pytest.mark.parametrize("threads", [1, 2])
def test_hidden_state_carried_between_windows_and_reset_each_epoch(loaded_corpus, tmp_path, monkeypatch, threads):
    seen = []  # (h0 passed in, last hidden state of the window)
    real = WindowRunner.loss_and_grads

    def spy(self, params, grads, xs, ys, h, dropout=None):
        h0 = h.copy()
        loss = real(self, params, grads, xs, ys, h, dropout)  # replaces h with the window's last state
        seen.append((h0, h.copy()))
        return loss

    monkeypatch.setattr(WindowRunner, "loss_and_grads", spy)
    events = []
    run(loaded_corpus, tmp_path, epochs=2, events=events, threads=threads)
    per_epoch = next(info["windows_per_epoch"] for kind, info in events if kind == "start")
    assert per_epoch > 2 and len(seen) == 2 * per_epoch
    for step, (h0, _) in enumerate(seen):
        if step % per_epoch == 0:
            assert not h0.any(), f"step {step} starts an epoch and must start from zero"
        else:
            np.testing.assert_array_equal(h0, seen[step - 1][1])
            assert h0.any()


def test_threads_share_the_streams_without_changing_the_result(loaded_corpus, tmp_path):
    one = load_checkpoint(run(loaded_corpus, tmp_path, "one.npz", steps=30, threads=1).checkpoint)
    two = load_checkpoint(run(loaded_corpus, tmp_path, "two.npz", steps=30, threads=2).checkpoint)
    for name in one.params:  # only the order of summing the groups' gradients differs
        np.testing.assert_allclose(two.params[name], one.params[name], rtol=0, atol=1e-4)
    assert two.meta["best_val_loss"] == pytest.approx(one.meta["best_val_loss"], rel=1e-4)


def test_checkpoints_latest_and_best(loaded_corpus, tmp_path):
    events = []
    result = run(loaded_corpus, tmp_path, steps=120, save_every=1000, events=events)
    latest = load_checkpoint(result.checkpoint)
    best = load_checkpoint(best_path(result.checkpoint))
    assert result.best_checkpoint == str(tmp_path / "m.best.npz")
    assert latest.meta["step"] == 120
    assert latest.meta["best_val_loss"] == pytest.approx(result.best_val_loss)
    assert latest.meta["corpus"]["fingerprint"] == loaded_corpus.fingerprint
    assert latest.state["h_carry"].shape == (1, 1, 4, 32)
    assert {"opt.m.weight_hh_l0", "opt.v.weight_hh_l0"} <= set(latest.state)
    # the best file holds the state whose validation loss was the best
    params = FlatParams(best.arch).load(best.params)
    _, val_rows = split_rows(loaded_corpus.ids, 4, 16, 0.1)
    assert validation_loss(params, val_rows, 16) == pytest.approx(result.best_val_loss, rel=1e-6)
    evals = [info for kind, info in events if kind == "eval"]
    assert [e["step"] for e in evals] == [50, 100, 120]


@pytest.mark.parametrize("optimizer", ["adagrad", "sgd"])
def test_other_optimizers_learn(loaded_corpus, tmp_path, optimizer):
    result = run(loaded_corpus, tmp_path, steps=200, optimizer=optimizer)
    assert result.best_val_loss < 1.5  # from ln(V) ≈ 2.9


def test_corpus_too_small_for_the_layout(loaded_corpus, tmp_path):
    with pytest.raises(UsageError) as err:
        run(loaded_corpus, tmp_path, batch=64, seq=64)
    assert str(err.value) == (
        "the corpus gives 2593 training tokens, too few for --batch 64 x --seq 64 (needs at least 4097); "
        "lower --batch or --seq"
    )


def test_bad_settings_name_their_flag():
    with pytest.raises(UsageError, match=r"^--hidden must be an integer from 1 to 16384 \(got 0\)$"):
        TrainConfig(hidden=0)
    with pytest.raises(UsageError, match=r"^--optimizer must be one of adam, adagrad, sgd \(got 'rmsprop'\)$"):
        TrainConfig(optimizer="rmsprop")


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_learns_the_tiny_corpus_with_dropout_and_a_schedule(loaded_corpus, tmp_path, cell):
    result = run(loaded_corpus, tmp_path, steps=300, cell=cell, layers=2, dropout=0.1, lr=5e-3, lr_schedule="cosine", warmup=20,
                 weight_decay=0.01, eval_every=100)  # fmt: skip
    assert result.best_val_loss < 0.7, result.best_val_loss
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.meta["model"] == {"cell": cell, "layers": 2, "hidden": 32, "vocab_size": loaded_corpus.vocab.size, "dropout": 0.1}
    assert ckpt.state["h_carry"].shape == (2, 2 if cell == "lstm" else 1, 4, 32)


def test_dropout_masks_do_not_depend_on_the_thread_count(loaded_corpus, tmp_path):
    """Each worker thread's streams get their rows of the batch's masks: one thread and two see the
    same masks, so their losses agree to float rounding (the sums run in another order)."""
    losses = {}
    for threads in (1, 2):
        events = []
        run(loaded_corpus, tmp_path, f"t{threads}.npz", events=events, steps=5, cell="lstm", dropout=0.5, threads=threads)
        losses[threads] = [info["loss"] for kind, info in events if kind == "step"]
    np.testing.assert_allclose(losses[1], losses[2], rtol=1e-6)
    events = []
    run(loaded_corpus, tmp_path, "other.npz", events=events, steps=5, cell="lstm", dropout=0.5, threads=1, seed=4)
    assert not np.allclose([info["loss"] for kind, info in events if kind == "step"][1:], losses[1][1:], rtol=1e-3)


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_weight_decay_shrinks_weights_not_biases(optimizer):
    """Decoupled decay: with a zero gradient the update is p * (1 - lr * weight_decay), on weights only."""
    from charrnn.optim import Optimizer
    from charrnn.params import Arch, init_params

    params = init_params(Arch("gru", 2, 6, 5), np.random.default_rng(0))
    for name, view in params.views.items():
        view += 0.5  # biases too, so that leaving them alone is visible
    before = params.as_dict()
    opt = Optimizer(optimizer, params, weight_decay=0.5)
    for _ in range(3):
        opt.step(params, params.like(), 0.1)
    for name, value in before.items():
        factor = 1.0 if name.startswith("bias_") else 0.95**3
        np.testing.assert_allclose(params[name], value * factor, rtol=1e-6, err_msg=name)
