"""The compiled model against the plain-numpy reference, and the reference against central differences."""

import numpy as np
import pytest

from charrnn import reference
from charrnn.model import PARAM_NAMES, FlatParams, Workspace, forward_loss_sum, init_params, loss_and_grads

SHAPES = [  # (T, B, H, V)
    (5, 3, 7, 6),
    (4, 1, 12, 9),
    (3, 2, 4, 11),
    (3, 9, 37, 5),  # row blocks and a partial column group in charrnn.kernels.packed
]


def make_case(T, B, H, V, dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = init_params(H, V, rng, np.float64)
    for name in PARAM_NAMES:  # non-zero biases and larger weights exercise every path
        params[name][...] = rng.normal(0.0, 0.5, params[name].shape)
    xs = rng.integers(0, V, (T, B)).astype(np.uint8)
    ys = rng.integers(0, V, (T, B)).astype(np.uint8)
    h0 = rng.uniform(-0.9, 0.9, (B, H))
    return params.astype(dtype), xs, ys, h0.astype(dtype)


def run_kernels(params, xs, ys, h0):
    T, B = xs.shape
    ws = Workspace.allocate(T, B, params.hidden, params.vocab_size, params.flat.dtype)
    grads = params.like()
    loss = loss_and_grads(params, grads, xs, ys, h0, ws)
    return loss, grads, ws


@pytest.mark.parametrize("T,B,H,V", SHAPES)
def test_kernels_match_reference_float64(T, B, H, V):
    params, xs, ys, h0 = make_case(T, B, H, V, np.float64)
    loss, grads, ws = run_kernels(params, xs, ys, h0)
    ref_params = {n: params[n].copy() for n in PARAM_NAMES}
    ref_loss, ref_hs, probs = reference.forward(ref_params, xs, ys, h0)
    ref_grads = reference.backward(ref_params, xs, ys, ref_hs, probs)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(ws.hs, ref_hs, rtol=0, atol=1e-12)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("T,B,H,V", SHAPES[:2])
def test_float32_kernels_close_to_reference(T, B, H, V):
    params, xs, ys, h0 = make_case(T, B, H, V, np.float64)
    loss32, grads32, _ = run_kernels(params.astype(np.float32), xs, ys, h0.astype(np.float32))
    ref_params = {n: params[n].copy() for n in PARAM_NAMES}
    ref_loss, ref_hs, probs = reference.forward(ref_params, xs, ys, h0)
    ref_grads = reference.backward(ref_params, xs, ys, ref_hs, probs)
    assert loss32 == pytest.approx(ref_loss, rel=1e-5)
    for name in PARAM_NAMES:
        scale = np.abs(ref_grads[name]).max()
        np.testing.assert_allclose(grads32[name], ref_grads[name], rtol=0, atol=1e-5 * scale, err_msg=name)


@pytest.mark.parametrize("T,B,H,V", SHAPES[:2])
def test_gradient_check_every_parameter(T, B, H, V):
    """Every entry of every parameter against central differences of the reference loss."""
    params, xs, ys, h0 = make_case(T, B, H, V, np.float64, seed=1)
    _, grads, _ = run_kernels(params, xs, ys, h0)
    ref_params = {n: params[n].copy() for n in PARAM_NAMES}
    worst = 0.0
    for name in PARAM_NAMES:
        for index in np.ndindex(ref_params[name].shape):
            numeric = reference.numeric_grad(ref_params, xs, ys, h0, name, index)
            analytic = grads[name][index]
            denom = max(abs(numeric) + abs(analytic), 1e-8)
            worst = max(worst, abs(numeric - analytic) / denom)
    assert worst < 1e-5


def test_forward_loss_sum_matches_training_loss():
    T, B, H, V = 6, 2, 5, 7
    params, xs, ys, h0 = make_case(T, B, H, V, np.float64, seed=2)
    loss, _, _ = run_kernels(params, xs, ys, h0)
    ws = Workspace.allocate(T, B, H, V, np.float64)
    total = forward_loss_sum(params, xs, ys, h0, ws)
    assert total == pytest.approx(loss * T * B, rel=1e-12)


def test_flat_params_views_share_memory():
    params = FlatParams(3, 4)
    params["Whh"][1, 2] = 5.0
    assert params.flat[3 * 4 + 1 * 3 + 2] == 5.0
    assert [params[n].shape for n in PARAM_NAMES] == [(3, 4), (3, 3), (3,), (4, 3), (4,)]
