"""The compiled network, for every cell at 1 and 2 layers with and without dropout, against the
plain-numpy float64 reference (charrnn.reference), and the reference against central differences."""

import numpy as np
import pytest

from charrnn import reference
from charrnn.cells import CELLS
from charrnn.network import Dropout, Workspace, forward_loss_sum, loss_and_grads
from charrnn.params import Arch, FlatParams, init_params, layout

SHAPES = [  # (T, B, H, V)
    (5, 3, 7, 6),
    (4, 1, 12, 9),
    (3, 9, 37, 5),  # row blocks and a partial column group in charrnn.kernels.packed
]
CASES = [(cell, layers) for cell in CELLS for layers in (1, 2)]


def make_case(cell, layers, T, B, H, V, seed=0):
    rng = np.random.default_rng(seed)
    arch = Arch(cell, layers, H, V)
    params = FlatParams(arch, np.float64).load(reference.random_params(cell, layers, H, V, rng))
    xs = rng.integers(0, V, (T, B)).astype(np.uint8)
    ys = rng.integers(0, V, (T, B)).astype(np.uint8)
    state0 = rng.uniform(-0.9, 0.9, arch.state_shape(B))
    return params, xs, ys, state0


def run_kernels(params, xs, ys, state0, dropout=None):
    T, B = xs.shape
    ws = Workspace(params.arch, T, B, params.flat.dtype)
    grads = params.like()
    loss = loss_and_grads(params, grads, xs, ys, state0.astype(params.flat.dtype), ws, dropout)
    return loss, grads, ws


def reference_of(params, xs, ys, state0, masks):
    cell = params.arch.cell
    ref_params = {n: params[n].astype(np.float64) for n in layout(params.arch)}
    loss, cache = reference.forward(cell, ref_params, xs, ys, state0, masks)
    grads, dstate0 = reference.backward(cell, ref_params, xs, ys, state0, cache, masks)
    return loss, cache, grads, dstate0


@pytest.mark.parametrize("cell,layers", CASES)
@pytest.mark.parametrize("T,B,H,V", SHAPES)
@pytest.mark.parametrize("p", [0.0, 0.4])
def test_kernels_match_reference_float64(cell, layers, T, B, H, V, p):
    params, xs, ys, state0 = make_case(cell, layers, T, B, H, V)
    dropout = Dropout(p, seed=3, step=11) if p else None
    loss, grads, ws = run_kernels(params, xs, ys, state0, dropout)
    masks = ws.masks[:, :T] if p else None
    if p:  # the masks really drop about p of the units, and scale the rest
        assert set(np.unique(masks)) == {0.0, 1 / (1 - p)}
    ref_loss, cache, ref_grads, ref_dstate0 = reference_of(params, xs, ys, state0, masks)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(ws.state, cache["state"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ws.dstate0, ref_dstate0, rtol=1e-9, atol=1e-13)
    assert set(grads.views) == set(ref_grads)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-9, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("cell,layers", CASES)
@pytest.mark.parametrize("T,B,H,V", [(6, 17, 40, 9), (3, 2, 70, 5)])  # 8-row blocks + single rows; 5 panels
def test_float32_kernels_close_to_reference(cell, layers, T, B, H, V):
    params, xs, ys, state0 = make_case(cell, layers, T, B, H, V, seed=4)
    for scale in params.views.values():
        scale *= 0.5  # well inside the nonlinearities, where float32 is accurate to ~1e-6
    loss32, grads32, ws = run_kernels(params.astype(np.float32), xs, ys, state0, Dropout(0.25, 1, 2))
    ref_loss, cache, ref_grads, ref_dstate0 = reference_of(params, xs, ys, state0, ws.masks[:, :T].astype(np.float64))
    assert loss32 == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(ws.state, cache["state"], rtol=0, atol=2e-5)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(grads32[name], g, rtol=0, atol=2e-5 * np.abs(g).max() + 1e-9, err_msg=name)
    np.testing.assert_allclose(ws.dstate0, ref_dstate0, rtol=0, atol=2e-5 * np.abs(ref_dstate0).max())


@pytest.mark.parametrize("cell,layers", CASES)
def test_gradient_check_every_parameter_and_the_initial_state(cell, layers):
    """Every entry of every parameter, and of the initial state (h0, and c0 for the LSTM), against
    central differences of the reference loss, with dropout."""
    params, xs, ys, state0 = make_case(cell, layers, 4, 2, 3, 5, seed=1)
    _, grads, ws = run_kernels(params, xs, ys, state0, Dropout(0.3, 5, 0))
    masks = ws.masks[:, :4].copy()
    ref_params = {n: params[n].copy() for n in layout(params.arch)}
    checked = 0
    for name in [*ref_params, "state0"]:
        analytic_all = ws.dstate0 if name == "state0" else grads[name]
        for index in np.ndindex(analytic_all.shape):
            numeric = reference.numeric_grad(cell, ref_params, xs, ys, state0, masks, name, index)
            # central differences with eps 1e-6 are good to about 1e-10 absolute in float64
            assert abs(numeric - analytic_all[index]) <= 1e-6 * abs(numeric) + 1e-9, (name, index)
            checked += 1
    assert checked == params.flat.size + state0.size


@pytest.mark.parametrize("cell,layers", CASES)
def test_forward_loss_sum_matches_training_loss(cell, layers):
    T, B, H, V = 6, 2, 5, 7
    params, xs, ys, state0 = make_case(cell, layers, T, B, H, V, seed=2)
    loss, _, train_ws = run_kernels(params, xs, ys, state0)
    ws = Workspace(params.arch, T + 3, B, np.float64)  # a workspace longer than the window
    total = forward_loss_sum(params, xs, ys, state0, ws)
    assert total == pytest.approx(loss * T * B, rel=1e-12)
    np.testing.assert_allclose(ws.state, train_ws.state, rtol=0, atol=1e-14)


def test_dropout_masks_depend_only_on_where_they_apply():
    """A group of streams gets exactly the rows of the whole batch's mask (so the thread count does
    not matter), and another step or seed gives another mask."""
    params, xs, ys, state0 = make_case("lstm", 2, 5, 6, 16, 7)
    whole = run_kernels(params, xs, ys, state0, Dropout(0.5, 9, 4))[2].masks.copy()
    part = run_kernels(params, xs[:, 2:5], ys[:, 2:5], state0[:, :, 2:5], Dropout(0.5, 9, 4, stream0=2))[2].masks
    np.testing.assert_array_equal(part, whole[:, :, 2:5])
    assert 0.4 < (whole == 0).mean() < 0.6
    for other in (Dropout(0.5, 9, 5), Dropout(0.5, 8, 4)):
        assert not np.array_equal(run_kernels(params, xs, ys, state0, other)[2].masks, whole)


def test_flat_params_views_share_memory_and_follow_the_layout():
    params = FlatParams(Arch("gru", 2, 3, 4))
    assert [(n, params[n].shape) for n in params.views] == [
        ("weight_ih_l0", (9, 4)), ("weight_hh_l0", (9, 3)), ("bias_ih_l0", (9,)), ("bias_hh_l0", (9,)),
        ("weight_ih_l1", (9, 3)), ("weight_hh_l1", (9, 3)), ("bias_ih_l1", (9,)), ("bias_hh_l1", (9,)),
        ("weight_out", (4, 3)), ("bias_out", (4,)),
    ]  # fmt: skip
    params["weight_hh_l0"][1, 2] = 5.0
    assert params.flat[9 * 4 + 1 * 3 + 2] == 5.0
    params["weight_ih_l0"][7, 1] = 2.0  # stored (V, G*H): a token's weights are one row
    assert params.stored("weight_ih_l0")[1, 7] == 2.0 and params.flat[1 * 9 + 7] == 2.0
    assert params.flat.size == sum(v.size for v in params.views.values())


def test_init_draws_every_array_in_the_bound_the_lstm_forget_bias_included():
    rng = np.random.default_rng(0)
    rnn = init_params(Arch("rnn", 1, 8, 5), np.random.default_rng(0))
    bound = 1 / np.sqrt(8)  # the first array drawn is layer 0's input weights, as format 1's Wxh (H, V)
    np.testing.assert_array_equal(rnn["weight_ih_l0"], rng.uniform(-bound, bound, (8, 5)).astype(np.float32))
    lstm = init_params(Arch("lstm", 2, 4, 5), np.random.default_rng(0))
    for k in (0, 1):
        bias = lstm[f"bias_ih_l{k}"]  # gates i, f, g, o: f (4:8) is drawn like the rest, as in PyTorch
        assert np.abs(bias).max() <= 0.5 and len(np.unique(bias)) == 16  # drawn, not constant or shifted
    assert np.abs(lstm["weight_hh_l1"]).max() <= 0.5
    assert 0 < np.abs(lstm["bias_out"]).max() <= 0.5
