"""The CUDA kernels and backend (charrnn/kernels/cuda.py, charrnn/cuda_backend.py) without a GPU.

numba's CUDA simulator must be switched on before numba is imported, so the outer tests run this
same file again in a fresh `python -m pytest`, with CHARRNN_CUDA_TESTS naming the inner suite:
  sim  every kernel, a training step, evaluation and sampling in the simulator (NUMBA_ENABLE_CUDASIM=1)
       against the CPU kernels and charrnn.model, at tiny sizes, to 1e-5 (float32);
  ptx  every kernel compiled to PTX for real GPUs (sm_80, sm_90) by NVVM and assembled to a cubin
       by nvJitLink, neither of which needs a driver.
An inner failure fails the outer test with the inner report. Both skip when numba-cuda is not
installed; `ptx` also skips when the CUDA toolkit libraries (NVVM, NVRTC) are missing.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MODE = os.environ.get("CHARRNN_CUDA_TESTS")
HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
NO_NUMBA_CUDA = "numba-cuda is not installed (pip install -e '.[test]')"
TOL = 1e-5  # absolute, on quantities scaled to about 1 (see close())


def run_inner(mode):
    """Run this file's `mode` tests in a subprocess; fail with its report, skip if it skipped any."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NUMBA_ENABLE_CUDASIM"))}
    env["CHARRNN_CUDA_TESTS"] = mode
    if mode == "sim":
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    cmd = [sys.executable, "-m", "pytest", __file__, "-q", "-rfEs", "-p", "no:cacheprovider", "-p", "no:xdist"]
    proc = subprocess.run(cmd, env=env, cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=900)
    report = (proc.stdout + proc.stderr)[-12000:]
    if proc.returncode != 0:
        pytest.fail(f"inner '{mode}' tests failed (exit {proc.returncode}):\n{report}", pytrace=False)
    summary = report.strip().splitlines()[-1]
    if " skipped" in summary:  # e.g. no NVVM for `ptx`: what was to be checked was not
        reasons = [line for line in report.splitlines() if line.startswith("SKIPPED")]
        pytest.skip(f"inner '{mode}' tests: {summary}; {reasons[:1]}")


if MODE is None:

    @pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason=NO_NUMBA_CUDA)
    def test_cuda_kernels_in_simulator():
        run_inner("sim")

    @pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason=NO_NUMBA_CUDA)
    def test_cuda_kernels_compile_to_ptx():
        run_inner("ptx")

    CUDA_MODULES = "[m for m in sys.modules if m == 'numba.cuda' or m.startswith(('numba.cuda.', 'numba_cuda'))]"

    def test_importing_charrnn_leaves_cuda_alone():
        code = (
            "import sys, charrnn.cli, charrnn.train, charrnn.cuda_backend, charrnn.device\n"
            f"bad = {CUDA_MODULES}\n"
            "assert not bad, bad\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=300)

    def test_cli_with_device_cpu_leaves_cuda_alone(tmp_path):
        """--help, and train / sample / eval / info with --device cpu, never import numba.cuda."""
        (tmp_path / "c.txt").write_text("the cat sat on the mat. " * 20)
        code = (
            "import sys\n"
            "from typer.testing import CliRunner\n"
            "from charrnn.cli import app\n"
            "run = CliRunner().invoke\n"
            "for args in (['--help'], ['train', '--help'],\n"
            "             ['train', 'c.txt', '--hidden', '8', '--seq', '4', '--batch', '2', '--steps', '3', '--eval-every', '2',\n"
            "              '-q', '--device', 'cpu'],\n"
            "             ['train', '--resume', 'charrnn.npz', '--steps', '1', '-q', '--device', 'cpu'],\n"
            "             ['sample', '-l', '20', '--seed', '1', '--device', 'cpu'], ['eval', 'c.txt', '--device', 'cpu'],\n"
            "             ['info'], ['info', '--json']):\n"
            "    result = run(app, args)\n"
            "    assert result.exit_code == 0, (args, result.output)\n"
            f"bad = {CUDA_MODULES}\n"
            "assert not bad, bad\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in ("CHARRNN_DEVICE", "NUMBA_ENABLE_CUDASIM")}
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    def test_device_auto_without_a_driver_leaves_cuda_alone():
        """With no CUDA driver library to load, --device auto (the default) answers "cpu" without
        importing numba-cuda (about 250 ms of start-up)."""
        from charrnn.cuda_backend import _driver_loads

        if _driver_loads():
            pytest.skip("this machine has a CUDA driver")
        code = (
            "import sys\n"
            "from charrnn.device import resolve_device\n"
            "assert resolve_device('auto') == 'cpu'\n"
            f"bad = {CUDA_MODULES}\n"
            "assert not bad, bad\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in ("CHARRNN_DEVICE", "NUMBA_ENABLE_CUDASIM")}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    @pytest.mark.skipif(HAVE_NUMBA_CUDA, reason="numba-cuda is installed")
    def test_cuda_unavailable_without_numba_cuda():
        from charrnn.cuda_backend import cuda_available, cuda_status

        usable, reason = cuda_status()
        assert not usable and not cuda_available() and "numba-cuda" in reason


# ------------------------------------------------------------------ shared by the inner suites


def close(actual, expected, what=""):
    """|actual - expected| <= TOL * max(1, max|expected|), elementwise."""
    expected = np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=0, atol=TOL * scale, err_msg=what)


def make_case(T, B, H, V, seed=0):
    """float32 FlatParams with non-zero biases and larger weights (every path exercised), ids, h0."""
    from charrnn.model import PARAM_NAMES, init_params

    rng = np.random.default_rng(seed)
    params = init_params(H, V, rng)
    for name in PARAM_NAMES:
        params[name][...] = rng.normal(0.0, 0.5, params[name].shape)
    xs = rng.integers(0, V, (T, B)).astype(np.uint8)
    ys = rng.integers(0, V, (T, B)).astype(np.uint8)
    h0 = rng.uniform(-0.9, 0.9, (B, H)).astype(np.float32)
    return params, xs, ys, h0


SHAPES = [(5, 3, 7, 6), (4, 2, 20, 9), (3, 4, 32, 16)]  # (T, B, H, V): ragged and whole tiles

if MODE == "sim":
    sys.setswitchinterval(1e-4)  # simulated threads wait on each other: hand the GIL over quickly

    from numba import config, cuda

    from charrnn import cuda_backend as cb
    from charrnn.kernels import cpu
    from charrnn.kernels import cuda as K
    from charrnn.model import PARAM_NAMES, FlatParams, Workspace, forward_loss_sum, loss_and_grads
    from charrnn.optim import Optimizer
    from charrnn.sample import CpuSampler

    assert config.ENABLE_CUDASIM and K.TILE == 4  # really simulated, with the small blocks

    def _locked_shared_array():
        """The simulator makes a block's shared array when its first thread reaches cuda.shared.array,
        with an unlocked check-then-insert: two threads arriving together can get different arrays,
        and a reduction then silently misses partials (seen here about once per full run; made
        near-certain by a delay in that window). Same lookup (the caller's file and line), locked."""
        import threading

        from numba.core import types
        from numba.cuda.simulator import kernelapi
        from numba.np import numpy_support

        original, lock = kernelapi.FakeCUDAShared.array, threading.Lock()

        def array(self, shape, dtype, alignment=None):
            if shape == 0 or alignment is not None:  # dynamic shared memory, alignment: as before
                return original(self, shape, dtype, alignment)
            dtype = numpy_support.as_dtype(dtype) if isinstance(dtype, types.Type) else dtype
            frame = sys._getframe(1)
            caller = (frame.f_code.co_filename, frame.f_lineno)
            with lock:
                if caller not in self._allocations:
                    self._allocations[caller] = np.empty(shape, dtype)
                return self._allocations[caller]

        kernelapi.FakeCUDAShared.array = array

    _locked_shared_array()

    def dev(a, dtype=np.float32):
        return cuda.to_device(np.ascontiguousarray(a, dtype))

    @pytest.mark.parametrize("T,B,H,V", SHAPES)
    def test_forward_steps_and_logits(T, B, H, V):
        params, xs, ys, h0 = make_case(T, B, H, V)
        hs = np.zeros((T + 1, B, H), np.float32)
        cpu.rnn_forward(xs, h0, params["Wxh"], params["Whh"], params["bh"], hs)
        dp, ws = cb.DeviceParams.from_host(params), cb.DeviceWorkspace(T, B, H, V)
        ws.load(xs, ys)
        ws.set_h0(h0)
        _, logits = cb._forward(dp, ws, T)
        close(ws.hs.copy_to_host(), hs, "hs")
        close(logits.copy_to_host(), hs[1:].reshape(T * B, H) @ params["Why"].T, "logits")

    @pytest.mark.parametrize("T,B,H,V", SHAPES[1:])
    def test_backward_steps(T, B, H, V):
        params, xs, _, h0 = make_case(T, B, H, V)
        rng = np.random.default_rng(1)
        hs = np.zeros((T + 1, B, H), np.float32)
        cpu.rnn_forward(xs, h0, params["Wxh"], params["Whh"], params["bh"], hs)
        dhs = rng.normal(0, 0.3, (T, B, H)).astype(np.float32)
        das, dh = np.zeros_like(dhs), np.zeros((B, H), np.float32)
        cpu.rnn_backward(hs, dhs, params["Whh"], das, dh)
        d_das, d_dh = dev(np.zeros_like(dhs)), [dev(np.zeros((B, H))), dev(np.zeros((B, H)))]
        d_hs, d_dhs, d_whh = dev(hs), dev(dhs), dev(params["Whh"])
        for t in range(T - 1, -1, -1):
            K.rnn_backward_step[cb._tiled(B, H)](d_dhs[t], d_hs[t + 1], d_dh[0], d_whh, d_das[t], d_dh[1])
            d_dh.reverse()
        close(d_das.copy_to_host(), das, "das")
        close(d_dh[0].copy_to_host(), dh, "dh0")

    @pytest.mark.parametrize("ta", [False, True])
    @pytest.mark.parametrize("tb", [False, True])
    def test_matmul_every_transpose(ta, tb):
        M, Kd, N = 5, 11, 9  # none a multiple of the tile
        rng = np.random.default_rng(2)
        A, Bm = rng.normal(size=(M, Kd)), rng.normal(size=(Kd, N))
        C = cuda.device_array((M, N), np.float32)
        K.matmul[cb._tiled(M, N)](dev(A.T if ta else A), dev(Bm.T if tb else Bm), C, ta, tb)
        close(C.copy_to_host(), A.astype(np.float32) @ Bm.astype(np.float32), f"ta={ta} tb={tb}")

    @pytest.mark.parametrize("V", [5, 16, 37])  # V above the block size: strided loops
    def test_softmax_xent_and_loss_sum(V):
        N = 6
        rng = np.random.default_rng(3)
        z, by = rng.normal(0, 2, (N, V)).astype(np.float32), rng.normal(0, 1, V).astype(np.float32)
        ys = rng.integers(0, V, N).astype(np.int32)
        d_z, rows, stats = dev(z), cuda.device_array(N, np.float64), dev(np.zeros(2), np.float64)
        K.softmax_xent[N, cb._pow2_threads(V)](d_z, dev(by), dev(ys, np.int32), d_z, rows, np.float32(1 / N), True)
        K.finish_sum[1, K.REDUCE_THREADS](rows, stats, K.LOSS, 1.0 / N, False)
        expected = z + by
        loss = cpu.softmax_xent(expected, ys, expected)
        assert abs(stats.copy_to_host()[K.LOSS] - loss) <= TOL * max(1, loss)
        close(d_z.copy_to_host(), expected, "dlogits, in place")

    def test_embed_backward_and_column_sums():
        N, H, V = 9, 10, 4  # few tokens: atomics collide
        rng = np.random.default_rng(4)
        xs, das = rng.integers(0, V, N).astype(np.int32), rng.normal(size=(N, H)).astype(np.float32)
        dW = np.zeros((H, V), np.float32)
        cpu.embed_backward(xs, das, dW)
        d_dWT, d_das, sums = dev(np.zeros((V, H))), dev(das), cuda.device_array(H, np.float32)
        K.embed_backward[cb._blocks(N * H), cb.THREADS](dev(xs, np.int32), d_das, d_dWT)
        K.column_sums[cb._blocks(H, K.COLS), (K.COLS, K.ROWS)](d_das, sums)
        close(d_dWT.copy_to_host().T, dW, "dWxh")
        close(sums.copy_to_host(), das.sum(0), "column sums")

    def test_windows_cut_on_the_device_match_fill_window():
        """The training ids go up once; every window the device cuts equals charrnn.batches'."""
        from charrnn.batches import fill_window, stream_view, windows_per_epoch

        T, B, H, V = 3, 2, 8, 6
        ids = np.random.default_rng(7).integers(0, V, 40).astype(np.uint8)
        streams = stream_view(ids, B)  # L = 19: 6 windows per epoch, one id left over per row
        trainer = cb.DeviceTrainer(FlatParams(H, V), T, B)
        trainer.upload_streams(streams)
        xs, ys = np.empty((T, B), np.uint8), np.empty((T, B), np.uint8)
        for k in (0, 1, windows_per_epoch(streams, T) - 1):  # first, next, last window of the epoch
            fill_window(streams, k * T, xs, ys)
            grid = (cb._blocks(B, K.TILE), cb._blocks(T, K.TILE)), (K.TILE, K.TILE)
            K.gather_window[grid](trainer.stream_ids, trainer.stream_len, k * T, trainer.ws.xy)
            xy = trainer.ws.xy.copy_to_host()
            np.testing.assert_array_equal(xy[0], xs)
            np.testing.assert_array_equal(xy[1], ys)

    @pytest.mark.parametrize("max_norm", [0.0, 0.5, 1e3])
    def test_global_norm_and_clip(max_norm):
        g = np.random.default_rng(5).normal(0, 0.1, 300).astype(np.float32)
        d_g, stats, partials = dev(g), dev(np.zeros(2), np.float64), dev(np.zeros(3))
        cb.global_norm_clip(d_g, partials, stats, max_norm)
        norm = cpu.clip_by_global_norm(g, max_norm)
        assert abs(stats.copy_to_host()[K.NORM] - norm) <= TOL * norm
        close(d_g.copy_to_host(), g, "clipped g")

    @pytest.mark.parametrize("name", ["adam", "adagrad", "sgd"])
    def test_optimizer_updates(name):
        params, *_ = make_case(2, 2, 6, 5)
        rng = np.random.default_rng(6)
        grads, opt = params.like(), Optimizer(name, params)
        dp, dg = cb.DeviceParams.from_host(params), cb.DeviceParams(6, 5)
        dopt, stats = cb.DeviceOptimizer(name, 6, 5), dev([1.0, 1.0], np.float64)
        for _ in range(3):
            grads.flat[...] = rng.normal(0, 0.1, grads.flat.shape)
            dg.flat.copy_to_device(grads.flat)
            opt.step(params, grads, 0.01)
            dopt.step(dp, dg, 0.01, stats)
        close(dp.flat.copy_to_host(), params.flat, name)
        back = Optimizer(name, params)
        dopt.store_to(back)
        assert back.updates == 3
        for slot in back.slots:
            close(back.slots[slot].flat, opt.slots[slot].flat, slot)
        before = dp.flat.copy_to_host()
        dopt.step(dp, dg, 0.01, dev([np.nan, 1.0], np.float64))  # a diverged step changes nothing
        np.testing.assert_array_equal(dp.flat.copy_to_host(), before)

    @pytest.mark.parametrize("T,B,H,V", SHAPES)
    def test_loss_and_grads_match_model(T, B, H, V):
        params, xs, ys, h0 = make_case(T, B, H, V)
        ws, grads = Workspace.allocate(T, B, H, V), params.like()
        loss = loss_and_grads(params, grads, xs, ys, h0, ws)
        d_loss, d_grads, h_last = cb.device_loss_and_grads(params, xs, ys, h0)
        assert abs(d_loss - loss) <= TOL * max(1.0, loss)
        for name in PARAM_NAMES:
            close(d_grads[name], grads[name], name)
        close(h_last, ws.hs[-1], "h_last")

    @pytest.mark.parametrize("name,clip", [("adam", 0.3), ("adagrad", 5.0), ("sgd", 0.0)])
    def test_training_steps_match_cpu(name, clip):
        """Windows with the carried state, an epoch-start reset, clipping and updates, as train.py does."""
        T, B, H, V = 3, 2, 12, 7
        params, xs, ys, h0 = make_case(T, B, H, V)
        trainer = cb.DeviceTrainer(params, T, B, optimizer=name, clip=clip)
        trainer.hidden_state = h0
        grads, opt, ws, h = params.like(), Optimizer(name, params), Workspace.allocate(T, B, H, V), h0.copy()
        rng = np.random.default_rng(7)
        for step in range(3):
            if step == 2:  # an epoch starts
                h[...] = 0.0
                trainer.reset_hidden()
            loss = loss_and_grads(params, grads, xs, ys, h, ws)
            norm = cpu.clip_by_global_norm(grads.flat, clip)
            opt.step(params, grads, 0.05)
            h[...] = ws.hs[-1]
            assert abs(trainer.step(xs, ys, 0.05) - loss) <= TOL * max(1.0, loss), f"loss at step {step}"
            assert abs(trainer.last_norm - norm) <= TOL * max(1.0, norm), f"norm at step {step}"
            close(trainer.params_to_host().flat, params.flat, f"params after step {step}")
            close(trainer.hidden_state, h, f"carried state after step {step}")
            xs, ys = rng.integers(0, V, (2, T, B)).astype(np.uint8)
        back = Optimizer(name, params)
        trainer.optimizer_to_host(back)
        assert back.updates == opt.updates
        for slot in back.slots:
            close(back.slots[slot].flat, opt.slots[slot].flat, slot)

    def test_forward_loss_sum_carries_state():
        T, B, H, V = 4, 2, 9, 6
        params, xs, ys, h0 = make_case(T, B, H, V)
        dp, dws, ws = cb.DeviceParams.from_host(params), cb.DeviceWorkspace(T, B, H, V), Workspace.allocate(T, B, H, V)
        dws.set_h0(h0)
        h = h0.copy()
        for t in (T, 2):  # a whole window, then a shorter last one
            total = forward_loss_sum(params, xs[:t], ys[:t], h, ws)
            h = ws.hs[t].copy()
            assert abs(cb.forward_loss_sum(dp, dws, xs[:t], ys[:t]) - total) <= TOL * max(1.0, total)
            close(dws.hs_t[0].copy_to_host(), h, "carried state")

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
        pick = K.draw_token[1, cb._pow2_threads(V)]
        d_z, d_by, d_us, work, spare = dev(z[None]), dev(np.zeros(V)), dev(us, np.float64), dev(np.zeros(V)), dev(np.zeros(2 * V))
        d_allowed = cuda.to_device(allowed)
        for i in range(len(us)):
            pick(d_z, d_by, d_allowed, -1, np.float32(temperature), top_k, top_p, d_us, i, work, spare, tokens)
        scratch = (np.empty(V, np.float32), np.empty(V, np.float32), np.empty(V, np.int32))
        expected = [cpu_draw.draw_token(z, allowed, temperature, top_k, top_p, u, *scratch) for u in us]
        assert list(tokens.copy_to_host()[1:]) == expected
        assert not set(expected) & {0, 5}

    @pytest.mark.parametrize("eos", ["banned", "ends", "newline"])
    @pytest.mark.parametrize("temperature,top_k,top_p", [(0.0, 0, 1.0), (0.9, 3, 1.0), (1.1, 0, 0.8)])
    def test_sampling_matches_cpu(temperature, top_k, top_p, eos):
        """Prime, then 20 tokens: the same tokens, hidden state and random draws as the CPU sampler."""
        from charrnn.sample import Draw

        H, V = 12, 8
        params, *_ = make_case(1, 1, H, V, seed=9)
        params["by"][:2] += 1.5  # <unk> and <eos> likely: the rule must leave them out
        draw = Draw(temperature, top_k, top_p, eos)
        prime = np.array([1, 4, 2, 7], np.int64)
        rng = np.random.default_rng(10)
        with CpuSampler(params, prime[:-1], threads=1) as cpu_sampler:
            out = cpu_sampler.sample(int(prime[-1]), 20, draw, rng)
        sampler, d_rng = cb.DeviceSampler(params, max_chunk=20), np.random.default_rng(10)
        sampler.advance(prime[:-1])
        got = sampler.sample(int(prime[-1]), 20, draw, d_rng)
        assert list(got) == list(out) and 0 not in out
        assert len(out) == 20 if eos != "ends" else list(out).count(1) == (out[-1] == 1)
        close(sampler.hidden_state, cpu_sampler.h, "state after sampling")
        assert d_rng.random() == rng.random()  # the same number of draws was used

    def test_sampling_stops_like_cpu():
        from charrnn.sample import Draw

        H, V = 10, 5
        params, *_ = make_case(1, 1, H, V, seed=11)
        empty = np.zeros(0, np.int64)
        with CpuSampler(params, empty, threads=1) as cpu_sampler:
            free = cpu_sampler.sample(0, 12, Draw(eos="newline"), np.random.default_rng(12))
        assert 1 in free[:-1]  # <eos> comes up early: as a record's end it stops the sampler there
        rng = np.random.default_rng(12)
        with CpuSampler(params, empty, threads=1) as cpu_sampler:
            out = cpu_sampler.sample(0, 12, Draw(eos="ends"), rng)
        sampler, d_rng = cb.DeviceSampler(params, max_chunk=12), np.random.default_rng(12)
        got = sampler.sample(0, 12, Draw(eos="ends"), d_rng)
        assert len(out) < 12 and out[-1] == 1 and list(got) == list(out)
        close(sampler.hidden_state, cpu_sampler.h, "state at the stop")
        assert d_rng.random() == rng.random()


    # ------------------------------------------------------------------ properties (as in tests/test_sampling.py)

    from hypothesis import given, settings
    from test_sampling import check_ids, check_weights, logits_and_rule, model_and_rule

    @settings(max_examples=30, deadline=None)
    @given(logits_and_rule())
    def test_device_draw_weights_are_the_reference_distribution(case):
        """The weights the kernel leaves in `work` (after the top-p cut) are the reference distribution."""
        z, allowed, temperature, top_k, top_p = case
        V = len(z)
        tokens, work = cuda.device_array(2, np.int32), dev(np.zeros(V))
        K.draw_token[1, cb._pow2_threads(V)](dev(z[None]), dev(np.zeros(V)), cuda.to_device(allowed), -1, np.float32(temperature),
                                             top_k, top_p, dev([0.5], np.float64), 0, work, dev(np.zeros(2 * V)), tokens)  # fmt: skip
        w = work.copy_to_host()
        check_weights(w, float(w.astype(np.float64).sum()), *case)
        assert allowed[tokens.copy_to_host()[1]]

    @settings(max_examples=12, deadline=None)
    @given(model_and_rule(hidden=(3, 9)))
    def test_device_sampler_never_draws_what_the_rule_leaves_out(case):
        model, rule, n, seed, x = case
        n = min(n, 16)
        sampler = cb.DeviceSampler(model.params, max_chunk=n)
        sampler.advance(np.array([1, 2]))
        check_ids(sampler.sample(x, n, rule, np.random.default_rng(seed)), x, n, rule)


if MODE == "sim":
    # ------------------------------------------------------------------ the wiring: train, sample, eval, CLI on "cuda"

    from typer.testing import CliRunner

    import charrnn.cli
    from charrnn import evaluate as evaluate_module
    from charrnn import sample as sample_module
    from charrnn.checkpoint import load_checkpoint
    from charrnn.config import TrainConfig
    from charrnn.corpus import load_corpus
    from charrnn.evaluate import evaluate_ids
    from charrnn.sample import generate
    from charrnn.resume import load_resume, resume_config
    from charrnn.train import train
    from charrnn.trained import load_model
    from charrnn.vocab import EOS_ID

    WIRING_TOL = 1e-4  # a few steps of training: float32 rounding differences grow a little
    # 26 ids (one record), V = 6; 5 held out (one validation stream: a window of 3 steps, then 1);
    # 3 windows of T=3 over B=2 streams per epoch, so step 4 starts a second epoch (a device-side
    # reset, the decayed learning rate). The simulator takes about 0.5 s per training step here.
    WIRING_TEXT = "abcab cabba bacca abcbac "
    WIRING = dict(hidden=8, seq=3, batch=2, val_frac=0.2, eval_every=2, save_every=100, seed=5, lr_decay=0.8,
                  clip=1.0, threads=1)  # fmt: skip
    cli_runner = CliRunner(env={"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None, "COLUMNS": "160"})

    def near(actual, expected, what="", tol=WIRING_TOL):
        expected = np.asarray(expected, np.float64)
        scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
        np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=0, atol=tol * scale, err_msg=what)

    def events(report, kind, key):
        return [info[key] for k, info in report if k == kind]

    def same_training(a, b, what):
        """Two checkpoints hold the same model and state up to WIRING_TOL."""
        a, b = load_checkpoint(a), load_checkpoint(b)
        assert set(a.params) == set(b.params) and set(a.state) == set(b.state)
        for name in (*a.params, *a.state):  # parameters, optimizer slots, h_carry
            near((a.params | a.state)[name], (b.params | b.state)[name], f"{what}: {name}")
        for key in ("step", "optimizer_updates", "rng", "total_steps", "data_origin"):
            assert a.meta[key] == b.meta[key], key

    def train_logged(corpus, cfg, out, device, resume=None):
        log = []
        train(corpus, cfg, out, report=lambda kind, info: log.append((kind, dict(info))), resume=resume, device=device)
        return log

    @pytest.fixture(scope="module")
    def runs(tmp_path_factory):
        """The same 4 steps trained by train() on "cpu" and on "cuda" (the simulator)."""
        folder = tmp_path_factory.mktemp("wiring")
        (folder / "c.txt").write_text(WIRING_TEXT)
        corpus = load_corpus([str(folder / "c.txt")])
        logs = {d: train_logged(corpus, TrainConfig(**WIRING, steps=4), folder / f"{d}.npz", d) for d in ("cpu", "cuda")}
        return folder, corpus, logs

    def test_train_on_cuda_matches_cpu(runs):
        folder, _, logs = runs
        assert [k for k, _ in logs["cuda"]] == [k for k, _ in logs["cpu"]]  # the same events, saves and evals
        assert events(logs["cuda"], "save", "step") == events(logs["cpu"], "save", "step")
        assert len(events(logs["cuda"], "step", "loss")) == 4 and len(events(logs["cuda"], "eval", "val_loss")) == 2
        near(events(logs["cuda"], "step", "loss"), events(logs["cpu"], "step", "loss"), "training losses")
        near(events(logs["cuda"], "eval", "val_loss"), events(logs["cpu"], "eval", "val_loss"), "validation losses")
        same_training(folder / "cuda.npz", folder / "cpu.npz", "cuda vs cpu")
        cuda, cpu_ = load_checkpoint(folder / "cuda.npz").meta, load_checkpoint(folder / "cpu.npz").meta
        assert (cuda["device"], cuda["workers"]) == ("cuda", None) and (cpu_["device"], cpu_["workers"]) == ("cpu", 1)

    def test_resume_across_devices(runs):
        """4 steps on one device + 2 resumed on the other = 6 steps on the CPU (to rounding)."""
        folder, corpus, _ = runs
        whole = train_logged(corpus, TrainConfig(**WIRING, steps=6), folder / "whole.npz", "cpu")
        for trained, then in (("cuda", "cpu"), ("cpu", "cuda")):
            resumed = load_resume(folder / f"{trained}.npz")
            out = folder / f"{trained}-then-{then}.npz"
            log = train_logged(corpus, resume_config(resumed, steps=2), out, then, resume=resumed)
            near(events(log, "step", "loss"), events(whole, "step", "loss")[4:], f"{trained} then {then}: losses")
            same_training(out, folder / "whole.npz", f"{trained} then {then}")
            assert load_checkpoint(out).meta["device"] == then

    def test_cuda_checkpoint_samples_on_cpu(runs):
        """A checkpoint trained on "cuda" samples on the CPU as the one trained on "cpu" does."""
        folder, *_ = runs
        texts = []
        for trained in ("cuda", "cpu"):
            model = load_model(folder / f"{trained}.npz")
            texts.append("".join(generate(model, model.vocab.encode_text("ab")[0], 20, 0.0, 0, None, "cpu")))
        assert texts[0] == texts[1] and texts[0]

    def test_sample_on_cuda_matches_cpu(runs, monkeypatch):
        """Tokens after a prime, in chunks of 4, 8, 8 (the state carried between them): 20 at temperature
        0, and 12 drawn with a seed, with top-k and with top-p. The model was trained on a whole file,
        so a sample is a stream: <eos> is never drawn and every chunk is full."""
        folder, *_ = runs
        monkeypatch.setattr(sample_module, "FIRST_CHUNK", 4)
        model = load_model(folder / "cuda.npz")
        prime = model.vocab.encode_text("ab c")[0]
        for temperature, top_k, top_p, n, sizes in ((0.0, 0, 1.0, 20, [4, 8, 8]), (1.0, 3, 1.0, 12, [4, 8]),
                                                    (1.3, 0, 0.7, 12, [4, 8])):  # fmt: skip
            chunks = {}
            for device in ("cpu", "cuda"):
                rng = np.random.default_rng(1)
                chunks[device] = list(generate(model, prime, n, temperature, top_k, rng, device, top_p=top_p))
                chunks[device].append(rng.random())  # the same number of draws was used
            assert chunks["cuda"] == chunks["cpu"], f"t={temperature}"
            assert [len(c) for c in chunks["cuda"][:-1]] == sizes

    def test_eval_on_cuda_matches_cpu(runs, monkeypatch):
        folder, corpus, _ = runs
        monkeypatch.setattr(evaluate_module, "EVAL_WINDOW", 6)  # 16 predictions: 3 windows carrying the state
        params = load_model(folder / "cpu.npz").params
        on_cpu, on_cuda = (evaluate_ids(params, corpus.ids[:16], device=d) for d in ("cpu", "cuda"))
        assert on_cuda.chars == on_cpu.chars == 16
        assert abs(on_cuda.loss - on_cpu.loss) <= TOL * max(1.0, on_cpu.loss)

    def test_cli_on_cuda(runs):
        """`sample` and `eval` with --device cuda print what --device cpu prints; `info --devices`."""
        folder, *_ = runs
        (folder / "short.txt").write_text("abca bc")
        out = {}
        for device in ("cpu", "cuda"):
            sample = cli_runner.invoke(charrnn.cli.app, ["sample", "-m", str(folder / "cuda.npz"), "-t", "0", "-l", "8",
                                                         "--prime", "ba", "--device", device])  # fmt: skip
            ev = cli_runner.invoke(charrnn.cli.app, ["eval", str(folder / "short.txt"), "-m", str(folder / "cpu.npz"),
                                                     "--json", "--device", device])  # fmt: skip
            assert sample.exit_code == ev.exit_code == 0, sample.stderr + ev.stderr
            out[device] = sample.stdout, json.loads(ev.stdout)
        assert out["cuda"][0] == out["cpu"][0] and out["cpu"][0].startswith("ba")
        assert out["cuda"][1]["chars"] == out["cpu"][1]["chars"]
        assert abs(out["cuda"][1]["loss"] - out["cpu"][1]["loss"]) <= TOL * max(1.0, out["cpu"][1]["loss"])
        info = cli_runner.invoke(charrnn.cli.app, ["info", "--devices"])
        assert info.exit_code == 0
        assert re.search(r"CUDA\s+usable: numba-cuda's CUDA simulator", info.stdout)
        assert re.search(r"--device auto\s+cpu\b", info.stdout)  # auto never picks the simulator

    def test_bench_trains_charrnn_on_cuda(runs, monkeypatch):
        """benchmarks/bench.py times train() with device="cuda" (tiny B, T here; no torch needed)."""
        _, corpus, _ = runs
        spec = importlib.util.spec_from_file_location("bench", Path(__file__).parents[1] / "benchmarks" / "bench.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        monkeypatch.setattr(bench, "B", 2)
        monkeypatch.setattr(bench, "T", 3)
        rates = bench.charrnn_train_rates(corpus, 8, [1, 3], "cuda")
        assert len(rates) == 1 and rates[0] > 0


if MODE == "ptx":
    from numba import cuda  # noqa: F811 (the sim block above did not run)

    from charrnn.kernels import cuda as K

    FLOAT32_ONLY = {  # kernels with no float64 data at all
        "rnn_forward_step", "rnn_backward_step", "matmul", "embed_backward", "column_sums", "sum_squares", "fill"
    }

    @pytest.fixture(scope="module")
    def nvvm():
        try:
            cuda.compile_ptx(K.fill.py_func, K.SIGNATURES["fill"], cc=(8, 0))
        except Exception as error:  # no NVVM/NVRTC libraries: pip install 'numba-cuda[cu12]' or '[cu13]'
            pytest.skip(f"cannot compile PTX here: {type(error).__name__}: {str(error).strip()[:200]}")

    def assemble(ptx, cc):
        """PTX -> cubin with nvJitLink (no driver needed); None when cuda.core or nvJitLink is missing."""
        try:
            from cuda.core import Linker, LinkerOptions, ObjectCode

            linker = Linker(ObjectCode.from_ptx(ptx.encode()), options=LinkerOptions(arch=f"sm_{cc[0]}{cc[1]}"))
        except Exception:
            return None
        return linker.link("cubin")

    @pytest.mark.parametrize("cc", [(8, 0), (9, 0)])  # A100, H100
    @pytest.mark.parametrize("name", sorted(K.SIGNATURES))
    def test_kernel_compiles_for_gpu(nvvm, name, cc):
        sigs = K.SIGNATURES[name]
        for sig in [sigs] if isinstance(sigs, str) else sigs:
            ptx, _ = cuda.compile_ptx(getattr(K, name).py_func, sig, cc=cc)
            assert f".target sm_{cc[0]}{cc[1]}" in ptx
            if name in FLOAT32_ONLY:  # no accidental float64 arithmetic (the simulator cannot tell)
                assert not re.search(r"\.f64\b", ptx), f"{name} computes in float64"
            cubin = assemble(ptx, cc)
            assert cubin is None or len(cubin.code) > 0

    def test_every_kernel_has_a_signature():
        kernels = {
            n for n, v in vars(K).items() if type(v).__name__ == "CUDADispatcher" and not v.targetoptions.get("device")
        }  # device functions are inlined into the kernels that call them
        assert kernels == set(K.SIGNATURES)
