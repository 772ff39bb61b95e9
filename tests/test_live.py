"""Samples while training: shown on stderr, never on stdout, and never changing the run."""

import json

import numpy as np
import pytest

import charrnn
from charrnn.config import DEFAULT_LR
from helpers import API_TINY, TINY, assert_error, cli, ok

pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs in its own folder holding corpus.txt


def weights(path):
    data = np.load(path, allow_pickle=False)
    return {k: data[k] for k in data.files if k.startswith(("weight", "bias", "opt.")) or k == "h_carry"}


def samples_of(**run):
    seen = []
    result = charrnn.train(on_event=lambda kind, info: seen.append(info) if kind == "sample" else None, **run)
    return result, seen


@pytest.mark.parametrize("cell, dropout", [("rnn", 0.0), ("lstm", 0.3)])
def test_a_run_with_live_samples_is_bitwise_the_run_without(corpus, cell, dropout):
    common = dict(corpus=corpus, steps=30, cell=cell, dropout=dropout, **API_TINY)
    _, none = samples_of(out="plain.npz", **common)
    _, seen = samples_of(out="live.npz", sample_every=7, sample_length=40, sample_prime="the ", **common)
    assert none == [] and [s["step"] for s in seen] == [7, 14, 21, 28]
    assert all(s["text"].startswith("the ") and len(s["text"]) == 44 for s in seen)
    plain, live = weights("plain.npz"), weights("live.npz")
    assert plain.keys() == live.keys() and all(np.array_equal(plain[k], live[k]) for k in plain)


def test_the_sample_at_a_step_is_the_same_after_a_resume_and_at_another_thread_count(corpus):
    flat = dict(API_TINY, lr_schedule="constant")  # 10 steps + 10 more are one 20-step run only without cosine
    _, whole = samples_of(corpus=corpus, out="one.npz", steps=20, sample_every=10, threads=1, **flat)
    samples_of(corpus=corpus, out="two.npz", steps=10, threads=2, **flat)
    later = []
    charrnn.resume("two.npz", steps=10, sample_every=10, on_event=lambda k, i: later.append(i) if k == "sample" else None)
    assert whole[1] == later[0] and later[0]["step"] == 20
    assert len({s["text"] for s in whole}) == 2  # a sample per step, not one repeated


def test_the_command_shows_samples_as_indented_blocks_on_stderr_only(corpus):
    result = ok("train", corpus, "-o", "m.npz", *TINY, "--sample-length", "30", "--sample-prime", "the")
    assert result.stdout == ""
    blocks = result.stderr.split("sample at step ")[1:]
    assert [b.split(":", 1)[0] for b in blocks] == ["10", "20", "30"]  # with every validation by default
    for block in blocks:
        body = block.split(":\n", 1)[1].split("\n")
        assert body[0].startswith("    the")
    quiet = ok("train", corpus, "-o", "q.npz", *TINY, "-q")
    off = ok("train", corpus, "-o", "o.npz", *TINY, "--sample-every", "0")
    assert quiet.stderr == "" and "sample at step" not in off.stderr


@pytest.mark.parametrize("flag, value, message", [
    ("--sample-every", "-1", "--sample-every must be a non-negative number of steps (got -1); 0 turns samples off"),
    ("--sample-length", "0", "--sample-length must be an integer from 1 to 100000 (got 0)"),
])  # fmt: skip
def test_bad_sample_flags_are_one_line(corpus, flag, value, message):
    assert_error(cli("train", corpus, "-o", "m.npz", *TINY, flag, value), 2, message)


def test_an_unknown_character_in_the_sample_prime_is_a_warning(corpus):
    result = ok("train", corpus, "-o", "m.npz", *TINY, "--sample-prime", "Zed")
    assert "charrnn: warning: --sample-prime: not in the vocabulary, read as <unk>: 'Z'\n" in result.stderr


def read_lines(path):
    import json

    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_log_writes_a_json_line_every_n_steps_and_at_every_validation_and_a_resume_appends(corpus):
    ok("train", corpus, "-o", "m.npz", *TINY, "--lr-schedule", "constant", "--warmup", "0", "--log", "run.jsonl",
       "--log-every", "4")  # fmt: skip
    rows = read_lines("run.jsonl")
    assert [r["step"] for r in rows] == [4, 8, 10, 12, 16, 20, 24, 28, 30]
    assert [r["step"] for r in rows if "val_loss" in r] == [10, 20, 30]
    first = rows[0]
    assert set(first) == {"step", "epoch", "train_loss", "chars_per_s", "grad_norm", "lr", "elapsed"}
    assert first["lr"] == DEFAULT_LR["adam"] and first["grad_norm"] > 0 and 0 < first["train_loss"] < 10
    info = json.loads(ok("info", "m.npz", "--json").stdout)
    assert rows[-1]["val_loss"] == info["last_val_loss"]
    elapsed = rows[-1]["elapsed"]
    ok("train", "--resume", "m.npz", "--steps", "8", "--log", "run.jsonl", "--log-every", "4")
    more = read_lines("run.jsonl")
    assert more[: len(rows)] == rows and [r["step"] for r in more[len(rows):]] == [32, 36, 38]
    # The clock continues (not from 0). ">=": the log rounds to a millisecond, and the two steps
    # before the first new line can take less than that on this tiny model.
    assert more[len(rows)]["elapsed"] >= elapsed > 0.001
    ok("train", corpus, "-o", "m.npz", *TINY, "--log", "run.jsonl")  # a new run starts it afresh
    assert [r["step"] for r in read_lines("run.jsonl")] == [10, 20, 30]


def test_log_mistakes_are_one_line_and_a_refused_run_leaves_the_log_alone(corpus):
    assert_error(cli("train", corpus, "-o", "m.npz", *TINY, "--log", "no/such/run.jsonl"), 2,
                 "--log no/such/run.jsonl: cannot write there")  # fmt: skip
    assert_error(cli("train", corpus, "-o", "m.npz", *TINY, "--log", "r.jsonl", "--log-every", "0"), 2,
                 "--log-every must be at least 1 (got 0)")  # fmt: skip
    from charrnn.lock import writing

    open("kept.jsonl", "w").write('{"step": 1}\n')
    with writing("m.npz"):
        assert cli("train", corpus, "-o", "m.npz", *TINY, "--log", "kept.jsonl").exit_code == 2
    assert open("kept.jsonl").read() == '{"step": 1}\n'
