"""The CUDA network for every cell (loss, gradients, state, dropout masks, training steps with
weight decay, evaluation windows) and the device sampler, against the CPU: part of the inner
`sim` / `device` suites of tests/test_cuda_sim.py (see its header; nothing runs here otherwise).
"""

import numpy as np
import pytest

from cuda_helpers import CASES, CELLS, MODE, SHAPES, TOL, UINT64_WRAPS, close, make_case

pytestmark = UINT64_WRAPS

if MODE in ("sim", "device"):
    from numba import cuda

    from charrnn import cuda_backend as cb
    from charrnn import network_cuda as nc
    from charrnn.kernels import cpu
    from charrnn.kernels import cuda as K
    from charrnn.network import Dropout, Workspace, forward_loss_sum, loss_and_grads
    from charrnn.optim import Optimizer
    from charrnn.sample import CpuSampler, Draw
    from charrnn.sample_cuda import DeviceSampler
    from cuda_helpers import dev

    # ------------------------------------------------------------------ the network, every cell

    def device_window(params, xs, ys, state0, dropout):
        """network_cuda.loss_and_grads: (loss, grads FlatParams, workspace)."""
        T, B = xs.shape
        dp, dg, ws = cb.DeviceParams.from_host(params), cb.DeviceParams(params.arch), nc.DeviceWorkspace(params.arch, T, B)
        ws.load(xs, ys)
        nc.loss_and_grads(dp, dg, ws, dev(state0), dropout)
        return float(ws.stats.copy_to_host()[0]), dg.to_host(), ws

    @pytest.mark.parametrize("cell,layers", CASES)
    @pytest.mark.parametrize("T,B,H,V", SHAPES)
    @pytest.mark.parametrize("p", [0.0, 0.3])
    def test_loss_and_grads_match_cpu(cell, layers, T, B, H, V, p):
        """Loss, every gradient, the state after the window, dLoss/dstate0 and the dropout masks."""
        params, xs, ys, state0 = make_case(cell, layers, T, B, H, V)
        dropout = Dropout(p, seed=3, step=11) if p else None
        ws, grads = Workspace(params.arch, T, B), params.like()
        loss = loss_and_grads(params, grads, xs, ys, state0, ws, dropout)
        if p:
            d_loss, d_grads, dws = device_window(params, xs, ys, state0, dropout)
            np.testing.assert_array_equal(dws.masks.copy_to_host(), ws.masks)
            d_grads, d_state, d_dstate0 = d_grads.as_dict(), dws.state.copy_to_host(), dws.dstate0.copy_to_host()
        else:
            d_loss, d_grads, d_state, d_dstate0 = cb.device_loss_and_grads(params, xs, ys, state0)
        assert abs(d_loss - loss) <= TOL * max(1.0, loss)
        assert set(d_grads) == set(grads.views)
        for name in grads.views:
            close(d_grads[name], grads[name], name)
        close(d_state, ws.state, "state after the window")
        close(d_dstate0, ws.dstate0, "dLoss/dstate0")

    TRAIN = [("adam", 0.3, 0.0, 0.1), ("adagrad", 5.0, 0.1, 0.3), ("sgd", 0.0, 0.05, 0.2)]  # optimizer, clip, decay, dropout

    @pytest.mark.parametrize("cell,layers,name,clip,decay,p", [c + TRAIN[i % 3] for i, c in enumerate(CASES)])
    def test_training_steps_match_cpu(cell, layers, name, clip, decay, p):
        """Windows with the carried state, an epoch-start reset, clipping, dropout by step, weight
        decay and updates, as charrnn.train_backends.CpuSteps does them."""
        T, B, H, V = 3, 2, 6, 7
        params, xs, ys, state0 = make_case(cell, layers, T, B, H, V)
        trainer = cb.DeviceTrainer(params, T, B, optimizer=name, clip=clip, weight_decay=decay)
        trainer.hidden_state = state0
        grads, opt, ws, state = params.like(), Optimizer(name, params, decay), Workspace(params.arch, T, B), state0.copy()
        rng = np.random.default_rng(7)
        for step in range(3):
            if step == 2:  # an epoch starts
                state[...] = 0.0
                trainer.reset_hidden()
            dropout = Dropout(p, seed=5, step=step) if p else None
            loss = loss_and_grads(params, grads, xs, ys, state, ws, dropout)
            norm = cpu.clip_by_global_norm(grads.flat, clip)
            opt.step(params, grads, 0.05)
            state[...] = ws.state
            assert abs(trainer.step(xs, ys, 0.05, dropout) - loss) <= TOL * max(1.0, loss), f"loss at step {step}"
            assert abs(trainer.last_norm - norm) <= TOL * max(1.0, norm), f"norm at step {step}"
            close(trainer.params_to_host().flat, params.flat, f"params after step {step}")
            close(trainer.hidden_state, state, f"carried state after step {step}")
            xs, ys = rng.integers(0, V, (2, T, B)).astype(np.uint8)
        back = Optimizer(name, params)
        trainer.optimizer_to_host(back)
        assert back.updates == opt.updates
        for slot in back.slots:
            close(back.slots[slot].flat, opt.slots[slot].flat, slot)

    @pytest.mark.parametrize("cell", CELLS)
    def test_window_loss_sum_carries_state(cell):
        T, B, H, V = 4, 2, 5, 6
        params, xs, ys, state0 = make_case(cell, 2, T, B, H, V)
        dp, dws, ws = cb.DeviceParams.from_host(params), nc.DeviceWorkspace(params.arch, T, B), Workspace(params.arch, T, B)
        dws.state.copy_to_device(state0)
        state = state0.copy()
        for t in (T, 2):  # a whole window, then a shorter last one
            total = forward_loss_sum(params, xs[:t], ys[:t], state, ws)
            state = ws.state.copy()
            assert abs(cb.window_loss_sum(dp, dws, xs[:t], ys[:t]) - total) <= TOL * max(1.0, total)
            close(dws.state.copy_to_host(), state, "carried state")

    # ------------------------------------------------------------------ drawing and sampling

    DRAWS = [(0.7, 0, 1.0), (1.3, 3, 1.0), (1.0, 6, 1.0), (0.8, 0, 0.6), (1.2, 4, 0.9), (0.0, 0, 0.5)]  # t, top-k, top-p

    @pytest.mark.parametrize("temperature,top_k,top_p", DRAWS)
    def test_draw_token_matches_cpu(temperature, top_k, top_p):
        """The same token as kernels.draw for 25 uniform numbers, with <unk> and one more token not
        allowed (the largest logits, so that leaving them out matters)."""
        from charrnn.kernels import draw as cpu_draw

        V = 7
        rng = np.random.default_rng(8)
        z = rng.normal(0, 1.5, V).astype(np.float32)
        z[0], z[5] = 4.0, 3.5
        allowed = np.ones(V, np.bool_)
        allowed[[0, 5]] = False
        us = np.linspace(0.0, 0.999, 25)
        tokens = cuda.device_array(26, np.int32)
        pick = K.draw_token[1, K.pow2_threads(V)]
        d_z, d_by, d_us, work, spare = dev(z[None]), dev(np.zeros(V)), dev(us, np.float64), dev(np.zeros(V)), dev(np.zeros(2 * V))
        d_allowed = cuda.to_device(allowed)
        for i in range(len(us)):
            pick(d_z, d_by, d_allowed, -1, np.float32(temperature), top_k, top_p, d_us, i, work, spare, tokens)
        scratch = (np.empty(V, np.float32), np.empty(V, np.float32), np.empty(V, np.int32))
        expected = [cpu_draw.draw_token(z, allowed, temperature, top_k, top_p, u, *scratch) for u in us]
        assert list(tokens.copy_to_host()[1:]) == expected
        assert not set(expected) & {0, 5}

    RULES = [(0.0, 0, 1.0, "banned"), (0.9, 3, 1.0, "ends"), (1.1, 0, 0.8, "newline")]

    @pytest.mark.parametrize("cell,layers", CASES)
    @pytest.mark.parametrize("temperature,top_k,top_p,eos", RULES)
    def test_sampling_matches_cpu(cell, layers, temperature, top_k, top_p, eos):
        """Prime, then 20 tokens: the same tokens, state and random draws as the CPU sampler."""
        H, V = 6, 8
        params, *_ = make_case(cell, layers, 1, 1, H, V, seed=9)
        params["bias_out"][:2] += 1.5  # <unk> and <eos> likely: the rule must leave them out
        draw = Draw(temperature, top_k, top_p, eos)
        prime = np.array([1, 4, 2, 7], np.int64)
        rng = np.random.default_rng(10)
        with CpuSampler(params, prime[:-1], threads=1) as cpu_sampler:
            out = cpu_sampler.sample(int(prime[-1]), 20, draw, rng)
        sampler, d_rng = DeviceSampler(params, max_chunk=20), np.random.default_rng(10)
        sampler.advance(prime[:-1])
        got = sampler.sample(int(prime[-1]), 20, draw, d_rng)
        assert list(got) == list(out) and 0 not in out
        assert len(out) == 20 if eos != "ends" else list(out).count(1) == (out[-1] == 1)
        close(sampler.state, cpu_sampler.state, "state after sampling")
        assert d_rng.random() == rng.random()  # the same number of draws was used

    @pytest.mark.parametrize("cell", CELLS)
    def test_sampling_stops_like_cpu(cell):
        H, V = 5, 5
        params, *_ = make_case(cell, 2, 1, 1, H, V, seed=11)
        params["bias_out"][1] += 1.0  # <eos> likely
        empty = np.zeros(0, np.int64)
        with CpuSampler(params, empty, threads=1) as cpu_sampler:
            free = cpu_sampler.sample(2, 12, Draw(eos="newline"), np.random.default_rng(12))
        assert 1 in free[:-1]  # <eos> comes up early: as a record's end it stops the sampler there
        rng = np.random.default_rng(12)
        with CpuSampler(params, empty, threads=1) as cpu_sampler:
            out = cpu_sampler.sample(2, 12, Draw(eos="ends"), rng)
        sampler, d_rng = DeviceSampler(params, max_chunk=12), np.random.default_rng(12)
        got = sampler.sample(2, 12, Draw(eos="ends"), d_rng)
        assert len(out) < 12 and out[-1] == 1 and list(got) == list(out)
        close(sampler.state, cpu_sampler.state, "state at the stop")
        assert d_rng.random() == rng.random()

    # ------------------------------------------------------------------ properties (as in tests/test_sampling.py)

    from hypothesis import given, settings
    from hypothesis import strategies as st
    from test_sampling import check_ids, check_weights, logits_and_rule

    @settings(max_examples=30, deadline=None)
    @given(logits_and_rule())
    def test_device_draw_weights_are_the_reference_distribution(case):
        """The weights the kernel leaves in `work` (after the top-p cut) are the reference distribution."""
        z, allowed, temperature, top_k, top_p = case
        V = len(z)
        tokens, work = cuda.device_array(2, np.int32), dev(np.zeros(V))
        K.draw_token[1, K.pow2_threads(V)](dev(z[None]), dev(np.zeros(V)), cuda.to_device(allowed), -1, np.float32(temperature),
                                           top_k, top_p, dev([0.5], np.float64), 0, work, dev(np.zeros(2 * V)), tokens)  # fmt: skip
        w = work.copy_to_host()
        check_weights(w, float(w.astype(np.float64).sum()), *case)
        assert allowed[tokens.copy_to_host()[1]]

    @st.composite
    def device_model_and_rule(draw):
        """A random small model of any cell and 1 or 2 layers in which <unk> and <eos> are often
        the most likely tokens, a draw rule, a number of tokens, a seed and the input token."""
        V = draw(st.integers(3, 9))
        params, *_ = make_case(draw(st.sampled_from(CELLS)), draw(st.integers(1, 2)), 1, 1, draw(st.sampled_from([3, 6])), V,
                               seed=draw(st.integers(0, 2**32 - 1)))  # fmt: skip
        params.flat *= draw(st.floats(0.2, 5.0))
        params["bias_out"][:2] += draw(st.floats(0, 6))
        rule = Draw(draw(st.sampled_from([0.0, 0.3, 1.0, 2.5])), draw(st.integers(0, V)), draw(st.sampled_from([1.0, 0.9, 0.4, 0.05])),
                    draw(st.sampled_from(["banned", "ends", "newline"])))  # fmt: skip
        return params, rule, draw(st.integers(1, 16)), draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from([1, V - 1]))

    @settings(max_examples=12, deadline=None)
    @given(device_model_and_rule())
    def test_device_sampler_never_draws_what_the_rule_leaves_out(case):
        params, rule, n, seed, x = case
        sampler = DeviceSampler(params, max_chunk=n)
        sampler.advance(np.array([1, 2]))
        check_ids(sampler.sample(x, n, rule, np.random.default_rng(seed)), x, n, rule)
