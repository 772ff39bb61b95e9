"""Properties of sampling over random small models (hypothesis): what may be drawn, exact lengths,
and the top-p cut against a plain numpy reference of the distribution that shares no code with the
kernels. The same properties run in the CUDA simulator from tests/test_cuda_sim.py."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from charrnn.kernels import draw as kernels
from charrnn.params import Arch, init_params
from charrnn.sample import EOS_BANNED, EOS_ENDS, EOS_NEWLINE, CpuSampler, Draw, StopScan, generate
from charrnn.model import Model
from charrnn.vocab import EOS_ID, UNK_ID, Vocab

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MASS_TOL = 2e-5  # float32 weights summed in another order than the reference's float64 cumsum
P_TOL = 1e-6  # probabilities this close count as tied


# ------------------------------------------------------------------ the reference


def reference_distribution(z, allowed, temperature, top_k, top_p):
    """float64 (V,): the probability of drawing each token, by sorting, as the rule is written:
    leave out what is not allowed, softmax at the temperature, keep the top k logits, then the
    smallest most likely set whose mass reaches top_p (ties kept), renormalised at each step."""
    z = np.asarray(z, np.float64)
    ids = np.flatnonzero(allowed)
    if 0 < top_k < len(ids):
        kth = np.sort(z[ids])[::-1][top_k - 1]
        ids = ids[z[ids] >= kth]
    p = np.exp((z[ids] - z[ids].max()) / temperature)
    p /= p.sum()
    if top_p < 1:
        ranked = np.sort(p)[::-1]
        last = min(np.searchsorted(np.cumsum(ranked), top_p), len(p) - 1)  # the first rank reaching top_p
        keep = p >= ranked[last]
        ids, p = ids[keep], p[keep] / p[keep].sum()
    out = np.zeros(len(z))
    out[ids] = p
    return out


# ------------------------------------------------------------------ strategies


@st.composite
def logits_and_rule(draw):
    """Logits with ties and wide ranges, a random allowed set (never <unk>, at least one token), a
    temperature, top-k and top-p."""
    V = draw(st.integers(3, 40))
    z = draw(arrays(np.float32, V, elements=st.floats(-12, 12, width=32)))
    allowed = draw(arrays(np.bool_, V))
    allowed[UNK_ID] = False
    allowed[draw(st.integers(1, V - 1))] = True
    temperature = draw(st.floats(0.05, 4.0))
    top_k = draw(st.integers(0, V + 2))
    top_p = draw(st.one_of(st.just(1.0), st.floats(0.01, 1.0)))
    return z, allowed, temperature, top_k, top_p


def weights(z, allowed, temperature, top_k, top_p):
    w = np.empty_like(z)
    total = kernels.token_weights(z, allowed, temperature, top_k, top_p, w, np.empty_like(z), np.empty(z.shape, np.int32))
    return w, total


def check_top_p_set(kept, p_before, top_p):
    """kept (bool) is the smallest set of the most likely tokens whose mass under p_before (the
    reference distribution before the top-p cut) reaches top_p, ties kept, up to rounding."""
    inside, outside = p_before[kept], p_before[~kept & (p_before > 0)]
    assert inside.size, "nothing kept"
    assert inside.min() >= outside.max(initial=0.0) - P_TOL, "a less likely token was kept over a more likely one"
    assert inside.sum() >= top_p - MASS_TOL, "the kept mass falls short of top_p"
    smallest = inside <= inside.min() + P_TOL
    assert inside[~smallest].sum() < top_p + MASS_TOL, "a smaller set would have reached top_p"


# ------------------------------------------------------------------ the draw rule


def check_weights(w, total, z, allowed, temperature, top_k, top_p):
    """w (V,) with sum `total` is the reference distribution of the rule, up to rounding."""
    assert total > 0 and np.all(w[~allowed] == 0)
    before = reference_distribution(z, allowed, temperature, top_k, 1.0)
    kept = w > 0
    if top_p < 1:
        check_top_p_set(kept, before, top_p)
        p = np.where(kept, before, 0.0) / before[kept].sum()  # the reference, renormalised on the kernel's set
    else:  # a probability below float32's range may round to a weight of 0 (on the GPU it does)
        assert kept[before > 1e-30].all() and not kept[before == 0].any()
        p = before
    np.testing.assert_allclose(w / total, p, rtol=0, atol=2e-6)
    if top_p < 1:  # where no rounding can move the boundary: exactly the reference's set
        wide, narrow = (reference_distribution(z, allowed, temperature, top_k, q) > 0 for q in (top_p + 1e-4, top_p - 1e-4))
        gap = before[wide].min() - before[~wide & (before > 0)].max(initial=0.0)
        if np.array_equal(wide, narrow) and gap > 1e-5:
            assert np.array_equal(kept, wide)


@SETTINGS
@given(logits_and_rule())
def test_weights_are_the_reference_distribution(case):
    w, total = weights(*case)
    check_weights(w, total, *case)


@SETTINGS
@given(logits_and_rule(), st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=20))
def test_draws_come_from_the_kept_set(case, us):
    z, allowed, temperature, top_k, top_p = case
    w, total = weights(z, allowed, temperature, top_k, top_p)
    scratch = (np.empty_like(z), np.empty_like(z), np.empty(z.shape, np.int32))
    for u in us:
        token = kernels.draw_token(z, allowed, temperature, top_k, top_p, u, *scratch)
        assert allowed[token] and w[token] > 0
        assert token == kernels.pick(w, total, u)
    greedy = kernels.draw_token(z, allowed, 0.0, top_k, top_p, 0.5, *scratch)
    assert allowed[greedy] and z[greedy] == z[allowed].max() and not np.any(z[:greedy][allowed[:greedy]] == z[greedy])


@SETTINGS
@given(arrays(np.float32, st.integers(1, 60), elements=st.floats(2**-100, 1.0, width=32)), st.floats(1e-6, 1.2))
def test_nucleus_cut_against_sorting(values, fraction):
    need = fraction * float(values.astype(np.float64).sum())
    cut = kernels.nucleus_cut(values.copy(), len(values), need, np.empty_like(values))
    ranked = np.sort(values.astype(np.float64))[::-1]
    reaches = np.flatnonzero(np.cumsum(ranked) >= need)
    if not reaches.size:  # even everything falls short: keep everything
        assert cut == 0 or cut == values.min()
        return
    expected = ranked[reaches[0]]
    if abs(np.cumsum(ranked)[reaches[0]] - need) > 1e-6 * need:  # clear of rounding: exact
        assert cut == expected
    kept = values.astype(np.float64)[values >= cut]
    assert kept.sum() >= need * (1 - 1e-6)


# ------------------------------------------------------------------ whole samples


@st.composite
def model_and_rule(draw, hidden=(3, 17, 70), cells=(("rnn", 1), ("lstm", 1), ("gru", 2))):
    """A random model (of any cell) in which <unk> and <eos> are often the most likely tokens, a
    draw rule, a number of tokens and a seed. 70 + V > 64 columns: two groups, so two threads share steps."""
    H = draw(st.sampled_from(hidden))
    V = draw(st.integers(3, 12))
    cell, layers = draw(st.sampled_from(cells))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    params = init_params(Arch(cell, layers, H, V), rng)
    scale = draw(st.floats(0.1, 2.5))
    for view in params.views.values():
        view[...] = rng.normal(0, scale, view.shape)
    params["bias_out"][:2] += draw(st.floats(0, 6))
    tokens = ["<unk>", "<eos>"] + [chr(ord("a") + i) for i in range(V - 2)]
    model = Model(params=params, vocab=Vocab.from_tokens(tokens), meta={"lines": draw(st.booleans())})
    rule = Draw(draw(st.sampled_from([0.0, 0.3, 1.0, 2.5])), draw(st.integers(0, V)), draw(st.sampled_from([1.0, 0.9, 0.4, 0.05])),
                draw(st.sampled_from([EOS_BANNED, EOS_ENDS, EOS_NEWLINE])))  # fmt: skip
    return model, rule, draw(st.integers(1, 300)), draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from([EOS_ID, V - 1]))


def check_ids(ids, x, n, rule):
    """Token ids drawn after input x, asked for n, obey the rule: never <unk>, <eos> never right
    after <eos> (records are never empty), only as the last token of a record and never in a stream
    of whole files, and exactly n of them unless a record ended."""
    assert UNK_ID not in ids
    both = np.concatenate([[x], ids])
    assert not np.any((both[1:] == EOS_ID) & (both[:-1] == EOS_ID))
    if rule.eos == EOS_ENDS:
        assert EOS_ID not in ids[:-1] and (len(ids) == n or ids[-1] == EOS_ID)
    else:
        assert len(ids) == n
    if rule.eos == EOS_BANNED:
        assert EOS_ID not in ids


@pytest.mark.parametrize("threads", [1, 2])
@settings(max_examples=60, deadline=None)
@given(model_and_rule())
def test_sampler_never_draws_what_the_rule_leaves_out(threads, case):
    model, rule, n, seed, x = case
    with CpuSampler(model.params, np.array([EOS_ID, 2]), threads, helper_after=0) as sampler:
        ids = sampler.sample(x, n, rule, np.random.default_rng(seed))
    check_ids(ids, x, n, rule)
    if threads == 2:
        with CpuSampler(model.params, np.array([EOS_ID, 2]), 1) as alone:
            assert np.array_equal(alone.sample(x, n, rule, np.random.default_rng(seed)), ids)


@settings(max_examples=60, deadline=None)
@given(model_and_rule(), st.sampled_from([None, True, False]), st.integers(0, 700))
def test_streams_are_exactly_as_long_as_asked(case, until_eos, length):
    model, rule, _, seed, _ = case
    text = "".join(generate(model, [2], length, rule.temperature, rule.top_k, np.random.default_rng(seed),
                            top_p=rule.top_p, until_eos=until_eos))  # fmt: skip
    assert "\ufffd" not in text  # no <unk>
    record = model.lines if until_eos is None else until_eos
    if record:
        assert len(text) <= length and "\n" not in text
    else:
        assert len(text) == length
        assert model.lines or "\n" not in text  # the vocabulary has no newline: only a --lines <eos> makes one


# ------------------------------------------------------------------ stop strings over chunks


@settings(max_examples=300, deadline=None)
@given(st.text("ab\n", max_size=80), st.lists(st.text("ab\n", min_size=1, max_size=4), min_size=1, max_size=3),
       st.lists(st.integers(0, 80), max_size=8))  # fmt: skip
def test_stop_scan_cuts_chunks_as_the_whole_text(text, stops, cuts):
    """Whatever the chunks, the sample ends right after the earliest complete stop string."""
    ends = [text.find(s) + len(s) for s in stops if s in text]
    expected = text[: min(ends)] if ends else text
    bounds = [0, *sorted(cuts), len(text)]
    scan, got, stopped = StopScan(stops), "", False
    for a, b in zip(bounds, bounds[1:]):
        part, stopped = scan.cut(text[a:b])
        got += part
        if stopped:
            break
    assert got == expected and stopped == bool(ends)
