"""Nothing lost: exact resume, divergence and failed writes keep the last good checkpoint.

The central promise: on the CPU, k steps followed by a resume for N-k more end with bitwise the
parameters, optimizer state, carried hidden state and logged losses of one run of N steps.
"""

import errno
import json
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn import checkpoint as checkpoint_module
from charrnn.cells import CELLS
from charrnn.checkpoint import load_checkpoint
from charrnn.config import DEFAULT_LR, TrainConfig
from charrnn.corpus import load_corpus
from charrnn.errors import CharrnnError, CheckpointError, CorpusError, UsageError
from charrnn.parallel import WindowRunner
from charrnn.resuming import load_resume, resume_config
from charrnn.train_loop import train
from checkpoint_helpers import assert_same_state
from helpers import OTHER, TRAIN_TEXT, nan_at  # conftest.py's loaded_corpus: 40 windows per epoch with TINY

# eval_every and save_every do not divide the k below; lr_decay makes the schedule depend on the epoch.
TINY = dict(hidden=32, seq=16, batch=4, val_frac=0.1, eval_every=10, save_every=15, seed=3, lr_decay=0.8)
PER_EPOCH = 40


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, kind, info):
        self.events.append((kind, dict(info)))

    def losses(self):
        return [info["loss"] for kind, info in self.events if kind == "step"]


def stop_after(k):
    """should_stop for train(): True once k steps are done (like a Ctrl-C after step k)."""
    done = []

    def should_stop():
        done.append(1)
        return len(done) >= k

    return should_stop



# ------------------------------------------------------------------ exact resume, through the library


CASES = {
    # k not a multiple of eval_every / save_every; the resumed part crosses two epoch boundaries
    "k23-adam": dict(k=23, n=90, optimizer="adam"),
    # k exactly at an epoch boundary: the resumed run starts an epoch (h reset to zero)
    "k40-adam-one-thread": dict(k=40, n=90, optimizer="adam", threads=1),
    "k57-adagrad": dict(k=57, n=90, optimizer="adagrad"),
    "k33-sgd": dict(k=33, n=90, optimizer="sgd"),
    # every cell with dropout (masks by step, layer, time, stream and unit) at 1 and 2 threads
    **{f"k23-{cell}-{layers}-layers-dropout-{threads}-threads": dict(
        k=23, n=50, optimizer="adam", cell=cell, layers=layers, dropout=0.3, weight_decay=0.1, threads=threads)
       for cell, layers in (("rnn", 2), ("lstm", 2), ("gru", 1)) for threads in (1, 2)},
}  # fmt: skip
ARCH = ("cell", "layers", "dropout", "weight_decay")


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_k_steps_then_resume_equals_one_run(loaded_corpus, tmp_path, case):
    # constant: under cosine a k-step run is a plan of its own (test_interrupted_run... has cosine's resume)
    settings = dict(TINY, lr_schedule="constant", optimizer=case["optimizer"], threads=case.get("threads", 0), **{k: case[k] for k in ARCH if k in case})
    k, n = case["k"], case["n"]
    whole = Recorder()
    train(loaded_corpus, TrainConfig(**settings, steps=n), tmp_path / "whole.npz", report=whole)
    first, second = Recorder(), Recorder()
    train(loaded_corpus, TrainConfig(**settings, steps=k), tmp_path / "split.npz", report=first)
    resumed = load_resume(tmp_path / "split.npz")
    cfg = resume_config(resumed, steps=n - k)
    result = train(loaded_corpus, cfg, tmp_path / "split.npz", report=second, resume=resumed)
    assert result.steps == n
    assert first.losses() + second.losses() == whole.losses()
    assert len(whole.losses()) == n
    assert_same_state(load_checkpoint(tmp_path / "split.npz"), load_checkpoint(tmp_path / "whole.npz"))
    start = next(info for kind, info in second.events if kind == "start")
    assert start["start_step"] == k and start["total_steps"] == n


def test_interrupted_run_resumes_to_its_original_plan(loaded_corpus, tmp_path):
    """Stopped (as by Ctrl-C) at step 30 of a 2-epoch plan; a resume with no stop condition finishes it."""
    whole = Recorder()
    train(loaded_corpus, TrainConfig(**TINY, epochs=2), tmp_path / "whole.npz", report=whole)
    first, second = Recorder(), Recorder()
    result = train(loaded_corpus, TrainConfig(**TINY, epochs=2), tmp_path / "m.npz", report=first, should_stop=stop_after(30))
    assert result.stopped_early and result.steps == 30
    resumed = load_resume(tmp_path / "m.npz")
    assert resumed.meta["total_steps"] == 2 * PER_EPOCH
    cfg = resume_config(resumed)
    assert cfg.steps == 2 * PER_EPOCH - 30
    # interrupted again, then resumed again: still the same plan
    train(loaded_corpus, cfg, tmp_path / "m.npz", report=second, resume=resumed, should_stop=stop_after(25))
    third = Recorder()
    again = load_resume(tmp_path / "m.npz")
    assert again.step == 55 and again.meta["total_steps"] == 2 * PER_EPOCH
    train(loaded_corpus, resume_config(again), tmp_path / "m.npz", report=third, resume=again)
    assert first.losses() + second.losses() + third.losses() == whole.losses()
    assert_same_state(load_checkpoint(tmp_path / "m.npz"), load_checkpoint(tmp_path / "whole.npz"))
    with pytest.raises(UsageError, match=r"m\.npz has finished its plan of 80 steps; give --steps, --epochs or --time"):
        resume_config(load_resume(tmp_path / "m.npz"))


@pytest.mark.parametrize("cell", CELLS)
def test_interrupted_cosine_run_with_dropout_resumes_bitwise(loaded_corpus, tmp_path, cell):
    """Warm-up and cosine over the planned steps: an interrupted run picks the schedule up where it was."""
    settings = dict(TINY, cell=cell, layers=2, dropout=0.25, lr_schedule="cosine", warmup=7, min_lr=1e-4, steps=45)
    whole, first, second = Recorder(), Recorder(), Recorder()
    train(loaded_corpus, TrainConfig(**settings), tmp_path / "whole.npz", report=whole)
    train(loaded_corpus, TrainConfig(**settings), tmp_path / "m.npz", report=first, should_stop=stop_after(19))
    resumed = load_resume(tmp_path / "m.npz")
    train(loaded_corpus, resume_config(resumed), tmp_path / "m.npz", report=second, resume=resumed)
    assert first.losses() + second.losses() == whole.losses() and len(whole.losses()) == 45
    assert_same_state(load_checkpoint(tmp_path / "m.npz"), load_checkpoint(tmp_path / "whole.npz"))


def test_stop_conditions_on_resume_count_from_the_resumed_step(loaded_corpus, tmp_path):
    train(loaded_corpus, TrainConfig(**TINY, steps=20), tmp_path / "m.npz")
    resumed = load_resume(tmp_path / "m.npz")
    assert train(loaded_corpus, resume_config(resumed, steps=7), tmp_path / "a.npz", resume=resumed).steps == 27
    assert train(loaded_corpus, resume_config(resumed, epochs=0.5), tmp_path / "b.npz", resume=resumed).steps == 40
    cfg = resume_config(resumed, time_limit=0.01)
    assert (cfg.steps, cfg.epochs, cfg.time_limit) == (None, None, 0.01)


def test_time_only_plan_resumes_for_the_same_time_again(loaded_corpus, tmp_path):
    train(loaded_corpus, TrainConfig(**TINY, time_limit=0.05), tmp_path / "m.npz")
    resumed = load_resume(tmp_path / "m.npz")
    assert resumed.meta["total_steps"] is None
    cfg = resume_config(resumed)
    assert (cfg.steps, cfg.epochs, cfg.time_limit) == (None, None, 0.05)


def test_worker_count_is_kept_for_bitwise_results(loaded_corpus, tmp_path):
    train(loaded_corpus, TrainConfig(**TINY, steps=5, threads=2), tmp_path / "m.npz")
    resumed = load_resume(tmp_path / "m.npz")
    assert resumed.meta["workers"] == 2
    assert resume_config(resumed, steps=1).threads == 2
    assert resume_config(resumed, steps=1, threads=1).threads == 1  # asked for: allowed (rounding may then differ)


@pytest.mark.parametrize("given, message", [
    (dict(hidden=64), "--hidden 64 conflicts with {p}, trained with --hidden 32; a resumed run keeps the checkpoint's "
                      "settings (leave --hidden out, or train a new model)"),
    (dict(lr_decay=0.5), "--lr-decay 0.5 conflicts with {p}, trained with --lr-decay 0.8; "),
    (dict(lr=0.1), f"--lr 0.1 conflicts with {{p}}, trained with --lr {DEFAULT_LR['adam']}; "),
    (dict(optimizer="sgd"), "--optimizer sgd conflicts with {p}, trained with --optimizer adam; "),
    (dict(lines=True), "--lines conflicts with {p}, trained without --lines; "),
    (dict(save_every=1), "--save-every 1 conflicts with {p}, trained with --save-every 15; "),
    (dict(encoding_errors="replace"), "--encoding-errors replace conflicts with {p}, trained with --encoding-errors strict; "),
])  # fmt: skip
def test_conflicting_settings_name_the_flag(loaded_corpus, tmp_path, given, message):
    train(loaded_corpus, TrainConfig(**TINY, steps=3), tmp_path / "m.npz")
    resumed = load_resume(tmp_path / "m.npz")
    with pytest.raises(UsageError) as err:
        resume_config(resumed, given, steps=1)
    assert str(err.value).startswith(message.format(p=tmp_path / "m.npz"))
    # the checkpoint's own values (and the optimizer's default learning rate) are no conflict
    same = dict(hidden=32, lr=DEFAULT_LR["adam"], lr_decay=0.8, optimizer="adam", save_every=15, encoding_errors="strict")
    assert resume_config(resumed, same, steps=1).hidden == 32


def test_another_corpus_is_refused_unless_forced(loaded_corpus, tmp_path):
    train(loaded_corpus, TrainConfig(**TINY, steps=45), tmp_path / "m.npz")
    (tmp_path / "other.txt").write_text(OTHER)
    resumed = load_resume(tmp_path / "m.npz")
    other = load_corpus([str(tmp_path / "other.txt")], vocab=resumed.vocab)
    assert other.unknown == "".join(sorted(set(OTHER) - set(TRAIN_TEXT)))
    with pytest.raises(CorpusError) as err:
        train(other, resume_config(resumed, steps=5), tmp_path / "m.npz", resume=resumed)
    assert re.fullmatch(
        r"this corpus is not the corpus .*m\.npz was trained on \(fingerprint [0-9a-f]{12} vs [0-9a-f]{12}\); "
        r"pass --force to fine-tune it on this corpus", str(err.value))  # fmt: skip

    forced = load_resume(tmp_path / "m.npz", force=True)
    events = Recorder()
    train(other, resume_config(forced, steps=5), tmp_path / "m.npz", report=events, resume=forced)
    tuned = load_checkpoint(tmp_path / "m.npz")
    assert tuned.meta["step"] == 50 and tuned.meta["optimizer_updates"] == 50  # steps and optimizer state kept
    assert tuned.meta["data_origin"] == 45  # the new corpus starts at its beginning ...
    assert tuned.meta["epoch_origin"] == 1  # ... and the learning-rate decay of the epoch done is kept
    assert tuned.meta["corpus"]["fingerprint"] == other.fingerprint
    assert tuned.vocab == list(resumed.checkpoint.vocab)
    start = next(info for kind, info in events.events if kind == "start")
    assert start["start_step"] == 45 and start["last_val_loss"] is None  # another validation set


def test_fine_tuning_starts_the_new_corpus_with_a_zero_state(loaded_corpus, tmp_path, monkeypatch):
    train(loaded_corpus, TrainConfig(**TINY, steps=13), tmp_path / "m.npz")
    (tmp_path / "other.txt").write_text(OTHER)
    forced = load_resume(tmp_path / "m.npz", force=True)
    assert forced.checkpoint.state["h_carry"].any()
    other = load_corpus([str(tmp_path / "other.txt")], vocab=forced.vocab)
    seen = []
    real = WindowRunner.loss_and_grads

    def spy(self, params, grads, xs, ys, h, dropout=None):
        seen.append((h.copy(), xs[:, 0].copy()))
        return real(self, params, grads, xs, ys, h, dropout)

    monkeypatch.setattr(WindowRunner, "loss_and_grads", spy)
    train(other, resume_config(forced, steps=2), tmp_path / "m.npz", resume=forced)
    assert not seen[0][0].any()  # h = 0
    np.testing.assert_array_equal(seen[0][1], other.ids[:16])  # stream 0 starts at the corpus's beginning


def test_resume_needs_the_checkpoints_vocabulary(loaded_corpus, tmp_path):
    train(loaded_corpus, TrainConfig(**TINY, steps=3), tmp_path / "m.npz")
    (tmp_path / "other.txt").write_text(OTHER)
    resumed = load_resume(tmp_path / "m.npz", force=True)
    with pytest.raises(CorpusError, match="not encoded with the vocabulary of"):
        train(load_corpus([str(tmp_path / "other.txt")]), resume_config(resumed, steps=1), tmp_path / "m.npz", resume=resumed)


def _rewrite_meta(path, **changes):
    """Write a checkpoint whose meta has these keys changed (None: removed), bypassing save's checks."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in changes.items():
        where, _, leaf = key.rpartition(".")
        target = meta[where] if where else meta
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


@pytest.mark.parametrize("changes, reason", [
    (dict(rng=None), "its random generator state (meta 'rng') is missing or invalid"),
    (dict(rng={"bit_generator": "MT19937"}), "its random generator state (meta 'rng') is missing or invalid"),
    (dict(optimizer_updates=-1), "meta 'optimizer_updates' must be an integer from 0 to the step, not -1"),
    (dict(windows_per_epoch=0), "meta 'windows_per_epoch' must be a positive integer, not 0"),
    (dict(data_origin=99), "meta 'data_origin' must be an integer from 0 to the step, not 99"),
    (dict(workers="many"), "meta 'workers' must be an integer from 1 to 256, not 'many'"),
    (dict(last_val_loss="low"), "meta 'last_val_loss' must be a finite number or null, not 'low'"),
    ({"train.hidden": 31}, "its settings say --hidden 31 but its weights have 32 units"),
    ({"train.lr": "fast"}, "meta 'train.lr' must be a number, not 'fast'"),
    ({"train.seq": 0}, "its training settings are invalid (--seq must be an integer from 1 to 65536 (got 0))"),
    ({"train.optimizer": "sgd"}, None),  # sgd has no slots: resumable
    ({"train.batch": 5}, "h_carry has shape (1, 1, 4, 32), expected (1, 1, 5, 32)"),
    ({"corpus.paths": [3]}, "meta 'corpus.paths' must be a list of file paths"),
    ({"corpus.encoding_errors": "loose"}, "meta 'corpus.encoding_errors' is invalid"),
])  # fmt: skip
def test_checkpoint_that_cannot_be_resumed_exactly_is_refused(loaded_corpus, tmp_path, changes, reason):
    train(loaded_corpus, TrainConfig(**TINY, steps=3), tmp_path / "m.npz")
    _rewrite_meta(tmp_path / "m.npz", **changes)
    if reason is None:
        load_resume(tmp_path / "m.npz")
        return
    with pytest.raises(CheckpointError) as err:
        load_resume(tmp_path / "m.npz")
    assert str(err.value) == f"{tmp_path / 'm.npz'}: cannot resume from it: {reason}"


def test_checkpoint_without_training_state_is_refused(loaded_corpus, tmp_path):
    train(loaded_corpus, TrainConfig(**TINY, steps=3), tmp_path / "m.npz")
    ckpt = load_checkpoint(tmp_path / "m.npz")
    ckpt.state = {k: v for k, v in ckpt.state.items() if not k.startswith("opt.v.")}
    checkpoint_module.save_checkpoint(tmp_path / "m.npz", ckpt)
    with pytest.raises(CheckpointError, match=r"cannot resume from it: it holds no adam optimizer state \(opt\.v\.weight_ih_l0\)$"):
        load_resume(tmp_path / "m.npz")


# ------------------------------------------------------------------ divergence and failed writes


@pytest.mark.parametrize("what", ["loss", "gradient", "weights"])
def test_divergence_stops_and_keeps_the_last_good_checkpoint(loaded_corpus, tmp_path, monkeypatch, what):
    out = tmp_path / "m.npz"
    saved = {}

    def report(kind, info):
        if kind == "save":
            saved[info["path"]] = (info["step"], open(info["path"], "rb").read())

    nan_at(monkeypatch, 22 if what != "weights" else 30, what)  # saves at 15, and 30 for the weights
    with pytest.raises(CharrnnError) as err:
        train(loaded_corpus, TrainConfig(**TINY, steps=40), out, report=report)
    message = str(err.value)
    assert "\n" not in message
    last = saved[str(out)][0]  # the last step saved before the failure (15, or 20 when that evaluation improved)
    assert last in (15, 20)
    if what == "weights":
        assert message == f"training diverged at step 30 (the weights are no longer finite); " \
                          f"{out} still holds the state of step {last}; try a lower --lr or --clip"
    else:
        detail = "loss nan, gradient norm" if what == "loss" else "loss "
        assert message.startswith(f"training diverged at step 22 ({detail}")
        assert message.endswith(f"); {out} still holds the state of step {last}; try a lower --lr or --clip")
        assert ("gradient norm inf" in message) == (what == "gradient")
    for path, (step, data) in saved.items():
        assert open(path, "rb").read() == data  # byte-identical
        assert load_checkpoint(path).meta["step"] == step


def test_failed_write_reports_the_path_and_keeps_the_previous_checkpoint(loaded_corpus, tmp_path, monkeypatch):
    out = tmp_path / "m.npz"
    real = np.savez
    calls = []

    def savez_until_the_disk_is_full(f, **arrays):
        calls.append(1)
        if len(calls) < 4:
            return real(f, **arrays)
        f.write(b"PK\x03\x04 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    train(loaded_corpus, TrainConfig(**TINY, steps=3), out)
    monkeypatch.setattr(checkpoint_module.np, "savez", savez_until_the_disk_is_full)
    resumed = load_resume(out)
    cfg = resume_config(resumed, steps=40)
    before = []
    with pytest.raises(CheckpointError) as err:
        train(loaded_corpus, cfg, out, resume=resumed, report=lambda kind, info: kind == "save" and before.append(out.read_bytes()))
    # saves: step 10 (latest and best), step 15 (latest); the next one fails
    match = re.fullmatch(rf"cannot write checkpoint {re.escape(str(out))}: No space left on device \(at step (\d+)\); "
                         rf"{re.escape(str(out))} still holds the state of step 15", str(err.value))  # fmt: skip
    assert match and int(match.group(1)) in (20, 30)
    assert out.read_bytes() == before[-1]
    assert load_checkpoint(out).meta["step"] == 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.best.npz", "m.npz", "tiny.txt"]  # no temp file left


def test_training_removes_temp_files_that_killed_saves_left(loaded_corpus, tmp_path):
    """One writer per --out: whatever `.m.npz.XXXXXXXX.tmp` is there when training starts is a leftover."""
    stale = [".m.npz.k1ll3d_x.tmp", ".m.best.npz.a8cdefgh.tmp"]
    kept = [".m.npz.x.tmp", ".other.npz.abcdefgh.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"PK\x03\x04 cut short")
    train(loaded_corpus, TrainConfig(**TINY, steps=2), tmp_path / "m.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + ["m.npz", "m.best.npz", "tiny.txt"])


# ------------------------------------------------------------------ fuzzing what a resume reads

FUZZ_EXAMPLES = int(os.environ.get("CHARRNN_FUZZ_EXAMPLES", "2000"))
_FUZZ_BASE = {}

META_KEYS = [
    "step", "optimizer_updates", "windows_per_epoch", "data_origin", "epoch_origin", "workers", "total_steps",
    "best_val_loss", "last_val_loss", "lines", "rng", "rng.state", "rng.bit_generator", "rng.has_uint32",
    "corpus", "corpus.paths", "corpus.encoding_errors", "corpus.fingerprint", "train",
    *(f"train.{name}" for name in TrainConfig.__dataclass_fields__),
]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.integers(-(10**400), 10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6) | st.sampled_from([0, 1, 2, 3, 4, 8, 16, 40, "adam", "sgd", "adagrad", "replace"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)  # fmt: skip


def _fuzz_base(tmp_path):
    """A small checkpoint (as arrays) and its corpus, made once per process."""
    if not _FUZZ_BASE:
        (tmp_path / "base.txt").write_text(TRAIN_TEXT[:900])
        corpus = load_corpus([str(tmp_path / "base.txt")])
        settings = dict(hidden=8, seq=4, batch=2, val_frac=0.1, eval_every=3, save_every=5, lr_decay=0.9)
        train(corpus, TrainConfig(**settings, steps=4), tmp_path / "base.npz")
        with np.load(tmp_path / "base.npz", allow_pickle=False) as npz:
            _FUZZ_BASE.update(arrays={name: npz[name] for name in npz.files}, corpus=corpus)
    return _FUZZ_BASE["arrays"], _FUZZ_BASE["corpus"]


@pytest.mark.slow
@settings(max_examples=max(1, FUZZ_EXAMPLES // 4), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_meta_never_breaks_a_resume(tmp_path, data):
    """Hostile or inconsistent training state in meta: a resume either works or ends with the tool's
    own one-line error, never another exception."""
    arrays, corpus = _fuzz_base(tmp_path)
    meta = json.loads(str(arrays["meta"]))
    for key in data.draw(st.lists(st.sampled_from(META_KEYS), min_size=1, max_size=3)):
        *parents, leaf = key.split(".")
        target = meta
        for parent in parents:
            target = target.get(parent) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if data.draw(st.booleans()):
            target.pop(leaf, None)
        else:
            target[leaf] = data.draw(JSON)
    path = tmp_path / "fuzz.npz"
    np.savez(path, **dict(arrays, meta=np.array(json.dumps(meta))))
    stop = data.draw(st.sampled_from([dict(), dict(steps=2), dict(epochs=0.01), dict(time_limit=0.01)]))
    try:
        resumed = load_resume(path, force=data.draw(st.booleans()))
        cfg = resume_config(resumed, **stop)
        if cfg.steps is not None and cfg.steps > 50:
            cfg = resume_config(resumed, steps=2)
        train(corpus, cfg, tmp_path / "out.npz", resume=resumed)
    except CharrnnError as err:
        assert "\n" not in str(err)
