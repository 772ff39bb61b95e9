"""The plain-numpy oracle checked against itself (finite differences), against PyTorch's cells, and
for stateful windows. Everything the kernels are tested against rests on these tests."""

import numpy as np
import pytest

from charrnn import reference as ref
from charrnn import cells
from charrnn.cells import CELLS

T, B, H, V = 4, 2, 3, 5
P_DROP = 0.3
RTOL, ATOL = 1e-6, 1e-8  # central differences at eps=1e-6 in float64 are good to ~1e-9
ALL_ENTRIES = 20  # arrays at most this big are checked everywhere, bigger ones at random entries
SAMPLES = 12


def _problem(cell, layers, with_masks, seed=0):
    rng = np.random.default_rng(seed)
    params = ref.random_params(cell, layers, H, V, rng)
    xs = rng.integers(0, V, size=(T, B))
    ys = rng.integers(0, V, size=(T, B))
    state0 = rng.uniform(-0.8, 0.8, size=(layers, ref.STATES[cell], B, H))  # nonzero, h and c
    masks = None
    if with_masks:
        keep = rng.random((layers, T, B, H)) >= P_DROP
        masks = keep / (1.0 - P_DROP)
        masks[0, 0, 0, 0], masks[-1, 1, 0, 1] = 0.0, 1.0 / (1.0 - P_DROP)  # both values, surely
    return rng, params, xs, ys, state0, masks


def _indices(shape, rng):
    size = int(np.prod(shape))
    flat = range(size) if size <= ALL_ENTRIES else rng.choice(size, SAMPLES, replace=False)
    return [np.unravel_index(i, shape) for i in flat]


def test_param_shapes_and_constants():
    for cell in CELLS:  # every registered cell has its reference step, with its own account of the cell
        spec, steps = cells.spec(cell), ref.CELL_STEPS[cell]
        assert (steps.GATES, steps.STATES, steps.HIDDEN_BIAS) == (spec.gates, spec.states, spec.hidden_bias)
    with pytest.raises(KeyError):
        cells.module("nosuch", "reference")
    shapes = ref.param_shapes("gru", 2, H, V)
    assert list(shapes) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                            "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
                            "weight_out", "bias_out"]
    assert shapes["weight_ih_l0"] == (3 * H, V) and shapes["weight_ih_l1"] == (3 * H, H)
    lstm = ref.param_shapes("lstm", 1, H, V)
    assert list(lstm) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "weight_out", "bias_out"]
    assert lstm["weight_hh_l0"] == (4 * H, H) and lstm["weight_out"] == (V, H)
    assert ref.param_shapes("rnn", 1, H, V)["bias_ih_l0"] == (H,)
    params = ref.random_params("lstm", 2, H, V, np.random.default_rng(1), scale=0.25)
    for name, value in params.items():
        assert value.dtype == np.float64 and value.shape == ref.param_shapes("lstm", 2, H, V)[name]
        assert np.abs(value).max() <= 0.25 and np.abs(value).max() > 0


@pytest.mark.parametrize("with_masks", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ref.CELLS)
def test_backward_matches_finite_differences(cell, layers, with_masks):
    rng, params, xs, ys, state0, masks = _problem(cell, layers, with_masks)
    before = {n: v.copy() for n, v in params.items()}, state0.copy()
    loss, cache = ref.forward(cell, params, xs, ys, state0, masks)
    assert cache["state"].shape == state0.shape and cache["probs"].shape == (T, B, V)
    assert len(cache["outputs"]) == layers and cache["outputs"][0].shape == (T, B, H)
    np.testing.assert_allclose(cache["probs"].sum(-1), 1.0, rtol=0, atol=1e-12)
    grads, dstate0 = ref.backward(cell, params, xs, ys, state0, cache, masks)
    assert set(grads) == set(params) and dstate0.shape == state0.shape
    checked = 0
    for name in list(params) + ["state0"]:
        analytic = dstate0 if name == "state0" else grads[name]
        assert analytic.shape == (state0 if name == "state0" else params[name]).shape
        for index in _indices(analytic.shape, rng):
            numeric = ref.numeric_grad(cell, params, xs, ys, state0, masks, name, index)
            assert analytic[index] == pytest.approx(numeric, rel=RTOL, abs=ATOL), (name, index)
            checked += 1
    assert checked > 50
    # the oracle must leave its arguments untouched
    assert all(np.array_equal(before[0][n], params[n]) for n in params)
    assert np.array_equal(before[1], state0)
    # something nontrivial flowed everywhere, the c state of lstm included
    assert all(np.abs(g).max() > 1e-6 for g in grads.values())
    assert np.abs(dstate0).max(axis=(0, 2, 3)).min() > 1e-6


@pytest.mark.parametrize("cell", ref.CELLS)
def test_masks_zero_the_upward_path_only(cell):
    """A mask zero on layer 0's output cuts layer 1's input but not layer 0's recurrence."""
    _, params, xs, ys, state0, _ = _problem(cell, 2, False, seed=3)
    masks = np.ones((2, T, B, H))
    masks[0] = 0.0
    _, plain = ref.forward(cell, params, xs, ys, state0)
    _, cut = ref.forward(cell, params, xs, ys, state0, masks)
    np.testing.assert_array_equal(cut["outputs"][0], plain["outputs"][0])
    np.testing.assert_array_equal(cut["state"][0], plain["state"][0])
    assert not np.allclose(cut["outputs"][1], plain["outputs"][1])
    grads, _ = ref.backward(cell, params, xs, ys, state0, cut, masks)
    assert not np.any(grads["weight_ih_l0"]) and not np.any(grads["weight_hh_l0"])


@pytest.mark.parametrize("cell", ref.CELLS)
def test_step_and_logits_replay_forward(cell):
    """step() one layer at a time, with explicit one-hot input, reproduces forward's outputs."""
    _, params, xs, ys, state0, masks = _problem(cell, 2, True, seed=4)
    _, cache = ref.forward(cell, params, xs, ys, state0, masks)
    for b in range(B):
        state = state0[:, :, b].copy()
        for t in range(T):
            x = np.eye(V)[xs[t, b]]
            for layer in range(2):
                state[layer] = ref.step(cell, params, layer, x, state[layer])
                np.testing.assert_allclose(state[layer, 0], cache["outputs"][layer][t, b], rtol=0, atol=1e-14)
                x = state[layer, 0] * masks[layer, t, b]
            z = ref.logits(params, x)
            p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            np.testing.assert_allclose(p, cache["probs"][t, b], rtol=0, atol=1e-14)
        np.testing.assert_allclose(state, cache["state"][:, :, b], rtol=0, atol=1e-14)


@pytest.mark.parametrize("with_masks", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("cell", ref.CELLS)
def test_window_halves_carry_the_state(cell, with_masks):
    """Stateful TBPTT: a window equals its two halves with the final state carried between."""
    _, params, xs, ys, state0, masks = _problem(cell, 2, with_masks, seed=5)
    loss, whole = ref.forward(cell, params, xs, ys, state0, masks)
    m = T // 2
    halves = [slice(0, m), slice(m, T)]
    state, losses = state0, []
    for s in halves:
        part_loss, part = ref.forward(cell, params, xs[s], ys[s], state,
                                      None if masks is None else masks[:, s])
        for layer in range(2):
            np.testing.assert_allclose(part["outputs"][layer], whole["outputs"][layer][s], rtol=0, atol=1e-14)
        np.testing.assert_allclose(part["probs"], whole["probs"][s], rtol=0, atol=1e-14)
        state = part["state"]
        losses.append(part_loss)
    np.testing.assert_allclose(state, whole["state"], rtol=0, atol=1e-14)
    assert np.mean(losses) == pytest.approx(loss, rel=1e-14)
    assert not np.allclose(state, state0)


@pytest.mark.parametrize("cell", ref.CELLS)
def test_matches_pytorch(cell):
    torch = pytest.importorskip("torch")
    layers = 2
    _, params, xs, ys, state0, _ = _problem(cell, layers, False, seed=6)
    loss, cache = ref.forward(cell, params, xs, ys, state0)
    grads, dstate0 = ref.backward(cell, params, xs, ys, state0, cache)

    kind = {"rnn": lambda: torch.nn.RNN(V, H, num_layers=layers, nonlinearity="tanh"),
            "lstm": lambda: torch.nn.LSTM(V, H, num_layers=layers),
            "gru": lambda: torch.nn.GRU(V, H, num_layers=layers)}[cell]
    rnn = kind().double()
    linear = torch.nn.Linear(H, V).double()
    named = dict(rnn.named_parameters())
    assert set(named) == {n for n in ref.param_shapes("gru", layers, H, V) if "out" not in n}
    with torch.no_grad():
        for name, p in named.items():
            if name in params:
                assert tuple(p.shape) == params[name].shape, name
                p.copy_(torch.from_numpy(params[name]))
            else:  # rnn/lstm keep one bias: torch's second one is held at zero
                assert cell != "gru" and name.startswith("bias_hh")
                p.zero_()
        linear.weight.copy_(torch.from_numpy(params["weight_out"]))
        linear.bias.copy_(torch.from_numpy(params["bias_out"]))

    x = torch.nn.functional.one_hot(torch.from_numpy(xs), V).double()  # (T, B, V)
    s0 = torch.from_numpy(state0.copy()).requires_grad_(True)
    hx = (s0[:, 0], s0[:, 1]) if cell == "lstm" else s0[:, 0]
    out, hn = rnn(x, hx)
    z = linear(out)
    tloss = torch.nn.functional.cross_entropy(z.reshape(T * B, V), torch.from_numpy(ys).reshape(-1))
    tloss.backward()

    assert tloss.item() == pytest.approx(loss, rel=1e-10, abs=1e-12)
    tstate = torch.stack(hn, dim=1) if cell == "lstm" else hn[:, None]
    np.testing.assert_allclose(tstate.detach().numpy(), cache["state"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.detach().numpy(), cache["outputs"][-1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(torch.softmax(z, -1).detach().numpy(), cache["probs"], rtol=1e-10, atol=1e-12)

    torch_grads = {n: p.grad.numpy() for n, p in named.items() if n in params}
    torch_grads["weight_out"] = linear.weight.grad.numpy()
    torch_grads["bias_out"] = linear.bias.grad.numpy()
    assert set(torch_grads) == set(grads)
    for name, g in grads.items():
        np.testing.assert_allclose(g, torch_grads[name], rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(dstate0, s0.grad.numpy(), rtol=1e-9, atol=1e-12)
    if cell != "gru":  # the zeroed bias_hh's gradient is bias_ih's: same place in the sum
        for k in range(layers):
            np.testing.assert_allclose(named[f"bias_hh_l{k}"].grad.numpy(), grads[f"bias_ih_l{k}"],
                                       rtol=1e-9, atol=1e-12)
