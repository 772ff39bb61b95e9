"""Sampling and evaluation against plain-numpy oracles."""

import math
import threading

import numpy as np
import pytest

from charrnn import reference
from charrnn import sample as sample_module
from charrnn.evaluate import evaluate_ids, stream_loss
from charrnn.cells import CELLS
from charrnn.kernels import draw as draw_kernels
from charrnn.params import Arch, init_params, layout
from charrnn.sample import CpuSampler, Draw, generate
from charrnn.model import Model
from charrnn.vocab import EOS_ID, UNK_ID, Vocab


ARCHS = [(cell, layers) for cell in CELLS for layers in (1, 2)]


def tiny_model(H=12, V=9, seed=0, scale=0.8, cell="rnn", layers=1):
    rng = np.random.default_rng(seed)
    params = init_params(Arch(cell, layers, H, V), rng)
    for name, view in params.views.items():
        view[...] = rng.normal(0, scale, view.shape)
    tokens = ["<unk>", "<eos>"] + list("abcdefg"[: V - 2])
    return Model(params=params, vocab=Vocab.from_tokens(tokens), meta={"lines": False})


def draw(z, temperature, top_k, u, top_p=1.0, allowed=None):
    """kernels.draw.draw_token on logits z with fresh scratch; every token allowed unless given."""
    allowed = np.ones(z.shape, np.bool_) if allowed is None else allowed
    scratch = (np.empty_like(z), np.empty_like(z), np.empty(z.shape, np.int32))
    return draw_kernels.draw_token(z, allowed, temperature, top_k, top_p, u, *scratch)


def test_draw_token_follows_the_softmax():
    z = np.array([0.5, 2.0, -1.0, 1.0, 0.0], np.float32)
    rng = np.random.default_rng(0)
    n = 40000
    for temperature in (1.0, 0.5):
        counts = np.zeros(5)
        for u in rng.random(n):
            counts[draw(z, temperature, 0, u)] += 1
        p = np.exp(z / temperature - np.max(z / temperature))
        p /= p.sum()
        np.testing.assert_allclose(counts / n, p, atol=4 * np.sqrt(p * (1 - p) / n).max())


def test_draw_token_top_k_and_argmax():
    z = np.array([0.5, 2.0, -1.0, 1.0, 0.0], np.float32)
    draws = {draw(z, 1.0, 2, u) for u in np.linspace(0, 0.999, 500)}
    assert draws == {1, 3}  # only the two largest logits
    assert draw(z, 0.0, 0, 0.3) == 1
    assert all(draw(z, 1.0, 1, u) == 1 for u in (0.0, 0.5, 0.99))


def test_kth_largest_matches_sorting():
    rng = np.random.default_rng(0)
    for V in (1, 2, 3, 7, 67, 300):
        for values in (rng.normal(size=V), rng.integers(0, 4, V)):  # distinct, and many ties
            a = values.astype(np.float32)
            for k in range(1, V + 1):
                assert draw_kernels.kth_largest(a.copy(), V, k) == np.sort(a)[V - k], (V, k)


def reference_of(model):
    arch = model.params.arch
    p64 = {n: model.params[n].astype(np.float64) for n in layout(arch)}
    return arch.cell, p64, np.zeros(arch.state_shape(1))


@pytest.mark.parametrize("cell,layers", ARCHS)
def test_sampling_steps_match_the_reference_recurrence(cell, layers):
    """With temperature 0 each generated token is the argmax of the reference model's next
    distribution, less <unk> and <eos> (a stream of a model of whole files draws neither)."""
    model = tiny_model(cell=cell, layers=layers, scale=0.5 if cell == "rnn" else 1.0)
    prime = np.array([2, 3, 4])
    text = "".join(generate(model, prime, 20, temperature=0.0))
    ids, _ = model.vocab.encode_text(text)
    name, p64, state0 = reference_of(model)
    context = np.concatenate([[EOS_ID], prime, ids])
    for i in range(len(ids)):
        xs = context[: len(prime) + 1 + i].reshape(-1, 1)
        probs = reference.forward(name, p64, xs, np.zeros_like(xs), state0)[1]["probs"]
        allowed = probs[-1, 0].copy()
        allowed[[UNK_ID, EOS_ID]] = -1.0
        assert np.argmax(allowed) == ids[i]


def test_same_seed_same_text_and_stop_at_eos():
    model = tiny_model(scale=1.5)
    sample = lambda seed: "".join(generate(model, [], 300, 1.0, 0, np.random.default_rng(seed), until_eos=True))  # noqa: E731
    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    lengths = [len(sample(s)) for s in range(20)]
    assert min(lengths) < 300  # EOS stopped some samples early (the EOS logit is not negligible here)


@pytest.mark.parametrize("H,scale,cell,layers", [(60, 0.5, "rnn", 1), (300, 0.15, "rnn", 1), (70, 0.4, "lstm", 2), (40, 0.5, "gru", 2)])
@pytest.mark.parametrize("helper_after", [0, None])  # the helper from the first token, or from HELPER_AFTER
def test_two_threads_give_the_same_text(H, scale, cell, layers, helper_after, monkeypatch):
    """The helper thread computes part of each product; the text is bitwise the same."""
    if helper_after is not None:
        monkeypatch.setattr(sample_module, "HELPER_AFTER", helper_after)
    model = tiny_model(H=H, scale=scale, cell=cell, layers=layers)
    for seed, temperature, top_k in [(3, 1.0, 0), (4, 0.7, 3), (5, 0.0, 0)]:
        texts = {
            threads: "".join(generate(model, [2, 3], 700, temperature, top_k, np.random.default_rng(seed), threads=threads))
            for threads in (1, 2)
        }
        assert texts[1] == texts[2]
    stopped = ["".join(generate(model, [], 400, 1.5, 0, np.random.default_rng(s), threads=2, until_eos=True)) for s in range(12)]
    assert min(map(len, stopped)) < 400  # ended at EOS inside a chunk: the helper was stopped there


@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("lstm", 2)])
def test_the_sampler_does_the_helpers_part_when_the_helper_is_not_running(cell, layers):
    """A helper kept off the cores (busy machine) must not stall sampling: with no helper thread
    at all, every product's helper part is claimed and done by the sampler, with the same result."""
    p = tiny_model(H=300, scale=0.15, cell=cell, layers=layers).params

    def sample(threads):
        sampler = CpuSampler(p, np.array([2, 3]), threads=threads)
        out = np.empty(500, np.int64)
        rule = (Draw().allowed(p.vocab_size), -1, 1.0, 0, 1.0, -1)
        args = (4, sampler.state, sampler.W0, sampler.bih, sampler.bhh, sampler.bout, sampler.panels, sampler.goff)
        n = sampler.loops.sample_tokens(*args, sampler.splits, *rule, np.random.default_rng(7), out, sampler.u,
                                   sampler.scratch, np.zeros(32, np.int64), sampler.helped)  # fmt: skip
        return out[:n], sampler.state, sampler.helped

    alone, state_alone, helped = sample(1)  # no helper part
    stolen, state_stolen, helped2 = sample(2)  # a helper part, but no helper thread
    assert not helped and helped2
    assert len(alone) == 500 and np.array_equal(alone, stolen) and np.array_equal(state_alone, state_stolen)


def test_the_helper_thread_starts_late_and_ends_with_the_sample():
    model = tiny_model(H=300, scale=0.15)
    chunks = generate(model, [], 10_000, 1.0, 0, np.random.default_rng(0), threads=2)
    assert len(next(chunks)) == sample_module.FIRST_CHUNK
    assert not any(t.name.startswith("charrnn-helper") for t in threading.enumerate())  # not for a short sample
    for _ in range(3):
        next(chunks)  # 64 + 128 + 256 + 512 tokens
    assert any(t.name.startswith("charrnn-helper") for t in threading.enumerate())
    chunks.close()  # a consumer that stops reading (e.g. `| head`)
    assert not any(t.name.startswith("charrnn-helper") for t in threading.enumerate())


@pytest.mark.parametrize("cell,layers", ARCHS)
def test_eval_matches_the_reference_and_ignores_window_size(cell, layers):
    model = tiny_model(cell=cell, layers=layers)
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 9, 40).astype(np.uint8)
    result = evaluate_ids(model.params, ids)
    stream = np.concatenate([[EOS_ID], ids])
    name, p64, state0 = reference_of(model)
    ref_loss, _ = reference.forward(name, p64, stream[:-1].reshape(-1, 1), stream[1:].reshape(-1, 1), state0)
    assert result.chars == 40
    assert result.loss == pytest.approx(ref_loss, rel=1e-5)
    assert result.bpc == pytest.approx(result.loss / math.log(2))
    assert result.perplexity == pytest.approx(math.exp(result.loss))
    small, count = stream_loss(model.params, stream, 1, 3)  # windows of 3, state carried between them
    assert count == 40 and small / count == pytest.approx(result.loss, rel=1e-6)
