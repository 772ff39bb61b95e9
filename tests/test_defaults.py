"""The settings a user did not give: what a run gets for them, what its checkpoint records, and
how a checkpoint from before a default changed still resumes as it was trained."""

import json

import numpy as np
import pytest

from charrnn.checkpoint import load_checkpoint
from charrnn.config import DEFAULT_LR, DEFAULT_WARMUP, UNRECORDED_LR, TrainConfig
from charrnn.errors import UsageError
from charrnn.resuming import load_resume, resume_config
from charrnn.schedule import Schedule
from charrnn.model import load_model
from charrnn.train_loop import train

TINY = dict(hidden=16, seq=16, batch=4, val_frac=0.1, eval_every=10, seed=3)


def recorded(path):
    return load_checkpoint(path).meta["train"]


def resume(loaded_corpus, path, **stops):
    resumed = load_resume(path)
    train(loaded_corpus, resume_config(resumed, **stops), path, resume=resumed)


def test_the_default_warmup_is_the_same_for_every_plan_so_k_steps_and_a_resume_are_one_run(loaded_corpus, tmp_path):
    assert Schedule.of(TrainConfig(), 0, 5000).warmup == Schedule.of(TrainConfig(), 0, 20).warmup == DEFAULT_WARMUP
    train(loaded_corpus, TrainConfig(**TINY, steps=20, lr_schedule="constant"), tmp_path / "one.npz")
    train(loaded_corpus, TrainConfig(**TINY, steps=10, lr_schedule="constant"), tmp_path / "two.npz")
    saved = recorded(tmp_path / "two.npz")
    assert (saved["lr"], saved["warmup"]) == (DEFAULT_LR["adam"], DEFAULT_WARMUP)  # the numbers, not "the default"
    resume(loaded_corpus, tmp_path / "two.npz", steps=10)
    one, two = (load_checkpoint(tmp_path / p) for p in ("one.npz", "two.npz"))
    assert all(np.array_equal(one.params[k], two.params[k]) for k in one.params)


def test_a_run_shorter_than_the_default_warmup_is_not_refused_but_an_asked_for_one_is(loaded_corpus, tmp_path):
    train(loaded_corpus, TrainConfig(**TINY, steps=5), tmp_path / "m.npz")  # all warm-up: allowed
    with pytest.raises(UsageError, match=r"^--warmup 6 is past the end of the run \(5 steps\); lower it$"):
        train(loaded_corpus, TrainConfig(**TINY, steps=5, warmup=6), tmp_path / "n.npz")
    resume(loaded_corpus, tmp_path / "m.npz", steps=3)  # its recorded 100 steps are no mistake of the user's either
    assert load_checkpoint(tmp_path / "m.npz").meta["step"] == 8


def test_a_checkpoint_that_recorded_the_default_rate_as_null_resumes_at_the_rate_of_then(loaded_corpus, tmp_path):
    """Before 2026-12-03 a run at the default rate recorded lr null; adam's default was 2e-3 then."""
    assert DEFAULT_LR["adam"] != UNRECORDED_LR["adam"] == 2e-3  # else this test could not tell them apart
    path = tmp_path / "m.npz"
    train(loaded_corpus, TrainConfig(**TINY, steps=3), path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["meta"]))
    meta["train"]["lr"] = None
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    assert resume_config(load_resume(path), steps=1).learning_rate == 2e-3
    assert load_model(path).info()["train"]["lr"] == 2e-3  # charrnn info shows that rate, not None


def test_validation_is_spread_over_the_corpus_unless_a_checkpoint_says_otherwise(loaded_corpus, tmp_path):
    """Before 2026-12-05 validation was the corpus's tail and checkpoints did not say so: one that
    records no val_split resumes on the tail, bit for bit as one run on the tail."""
    path = tmp_path / "m.npz"
    train(loaded_corpus, TrainConfig(**TINY, steps=3), path)
    assert recorded(path)["val_split"] == "spread"
    train(loaded_corpus, TrainConfig(**TINY, steps=6, val_split="tail"), tmp_path / "tail.npz")
    train(loaded_corpus, TrainConfig(**TINY, steps=3, val_split="tail"), path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["train"]["val_split"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    resume(loaded_corpus, path, steps=3)
    one, two = load_checkpoint(tmp_path / "tail.npz"), load_checkpoint(path)
    assert two.meta["train"]["val_split"] == "tail"
    assert two.meta["best_val_loss"] == one.meta["best_val_loss"]
    assert all(np.array_equal(one.params[k], two.params[k]) for k in one.params)
