"""The CUDA side (charrnn/kernels/cuda*.py, charrnn/cells/*/cuda.py, charrnn/network_cuda.py,
charrnn/cuda_backend.py, charrnn/sample_cuda.py, charrnn/cuda_probe.py) without a GPU, and on one
when there is one.

numba's CUDA simulator must be switched on before numba is imported, so the outer tests run this
same file (and tests/test_cuda_wiring.py) again in a fresh `python -m pytest`, with
CHARRNN_CUDA_TESTS naming the inner suite:
  sim     the kernels, every cell at 1 and 2 layers with dropout (loss, every gradient, the final
          state, training steps with weight decay, evaluation, sampling), and train / sample /
          eval / the CLI on "cuda", in the simulator (NUMBA_ENABLE_CUDASIM=1) against the CPU
          kernels and charrnn.network, at tiny sizes, to 1e-5 (float32);
  ptx     every kernel compiled to PTX for real GPUs (sm_80, sm_90) by NVVM and assembled to a cubin
          by nvJitLink, neither of which needs a driver;
  device  the `sim` tests on a real GPU (never run by the outer tests: benchmarks/gpu_check.sh runs
          it: CHARRNN_CUDA_TESTS=device python -m pytest tests/test_cuda_sim.py tests/test_cuda_wiring.py).
An inner failure fails the outer test with the inner report. Both skip when numba-cuda is not
installed; `ptx` also skips when the CUDA toolkit libraries (NVVM, NVRTC) are missing.
"""

import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cuda_helpers import MODE, TOL, UINT64_WRAPS

HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
NO_NUMBA_CUDA = "numba-cuda is not installed (pip install -e '.[test]')"
pytestmark = UINT64_WRAPS
INNER_FILES = ("test_cuda_network.py", "test_cuda_wiring.py")  # more of the sim / device suite (helpers: cuda_helpers.py)


def run_inner(mode, files=None):
    """Run `mode` tests of `files` (this file by default) in a subprocess; fail with its report,
    skip if it skipped any."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NUMBA_ENABLE_CUDASIM"))}
    env["CHARRNN_CUDA_TESTS"] = mode
    if mode == "sim":
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    files = [str(Path(__file__).with_name(f)) for f in files or [Path(__file__).name]]
    cmd = [sys.executable, "-m", "pytest", *files, "-q", "-rfEs", "-p", "no:cacheprovider", "-p", "no:xdist"]
    proc = subprocess.run(cmd, env=env, cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=1500)
    report = (proc.stdout + proc.stderr)[-12000:]
    if proc.returncode != 0:
        pytest.fail(f"inner '{mode}' tests failed (exit {proc.returncode}):\n{report}", pytrace=False)
    summary = report.strip().splitlines()[-1]
    if " skipped" in summary:  # e.g. no NVVM for `ptx`: what was to be checked was not
        reasons = [line for line in report.splitlines() if line.startswith("SKIPPED")]
        pytest.skip(f"inner '{mode}' tests: {summary}; {reasons[:1]}")


if MODE is None:

    @pytest.mark.slow  # minutes: every kernel, cell and command in the simulator
    @pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason=NO_NUMBA_CUDA)
    @pytest.mark.parametrize("inner", [Path(__file__).name, *INNER_FILES])  # one each: xdist shares them out
    def test_cuda_kernels_in_simulator(inner):
        run_inner("sim", [inner])

    @pytest.mark.slow  # NVVM compiles every kernel twice, where its libraries are installed
    @pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason=NO_NUMBA_CUDA)
    def test_cuda_kernels_compile_to_ptx():
        run_inner("ptx")

    CUDA_MODULES = "[m for m in sys.modules if m == 'numba.cuda' or m.startswith(('numba.cuda.', 'numba_cuda'))]"

    def test_importing_charrnn_leaves_cuda_alone():
        code = (
            "import sys, charrnn, charrnn.cli, charrnn.train_loop, charrnn.sample, charrnn.evaluate, charrnn.train_backends\n"
            "import charrnn.model, charrnn.device, charrnn.cuda_probe, charrnn.cuda_backend\n"
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
        from charrnn.cuda_probe import driver_loads

        if driver_loads():
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
        from charrnn.cuda_probe import cuda_available, cuda_status

        usable, reason = cuda_status()
        assert not usable and not cuda_available() and "numba-cuda" in reason


if MODE in ("sim", "device"):
    from numba import cuda

    from charrnn import cuda_backend as cb
    from charrnn.kernels import cpu
    from charrnn.kernels import cuda as K
    from charrnn.kernels import cuda_dropout
    from charrnn.kernels.dropout import dropout_mask, threshold
    from charrnn.optim import Optimizer
    from charrnn.params import Arch, FlatParams
    from cuda_helpers import CELLS, close, dev, make_case

    # ------------------------------------------------------------------ shared kernels

    @pytest.mark.parametrize("ta", [False, True])
    @pytest.mark.parametrize("tb", [False, True])
    def test_matmul_every_transpose_and_linear(ta, tb):
        M, Kd, N = 5, 11, 9  # none a multiple of the tile
        rng = np.random.default_rng(2)
        A, Bm, bias = rng.normal(size=(M, Kd)), rng.normal(size=(Kd, N)), rng.normal(size=N)
        C = cuda.device_array((M, N), np.float32)
        K.product(dev(A.T if ta else A), dev(Bm.T if tb else Bm), C, ta, tb)
        expected = A.astype(np.float32) @ Bm.astype(np.float32)
        close(C.copy_to_host(), expected, f"ta={ta} tb={tb}")
        if ta and tb:
            K.linear[K.tiled(M, N)](dev(A), dev(Bm.T), dev(bias), C)
            close(C.copy_to_host(), expected + bias.astype(np.float32), "linear")

    @pytest.mark.parametrize("V", [5, 16, 37])  # V above the block size: strided loops
    def test_softmax_xent_and_loss_sum(V):
        N = 6
        rng = np.random.default_rng(3)
        z, by = rng.normal(0, 2, (N, V)).astype(np.float32), rng.normal(0, 1, V).astype(np.float32)
        ys = rng.integers(0, V, N).astype(np.int32)
        d_z, rows, stats = dev(z), cuda.device_array(N, np.float64), dev(np.zeros(2), np.float64)
        K.softmax_xent[N, K.pow2_threads(V)](d_z, dev(by), dev(ys, np.int32), d_z, rows, np.float32(1 / N), True)
        K.finish_sum[1, K.REDUCE_THREADS](rows, stats, K.LOSS, 1.0 / N, False)
        expected = z + by
        loss = cpu.softmax_xent(expected, ys, expected)
        assert abs(stats.copy_to_host()[K.LOSS] - loss) <= TOL * max(1, loss)
        close(d_z.copy_to_host(), expected, "dlogits, in place")

    def test_gather_scatter_rows_and_column_sums():
        N, M, V = 9, 10, 4  # few tokens: atomics collide
        rng = np.random.default_rng(4)
        xs, d = rng.integers(0, V, N).astype(np.int32), rng.normal(size=(N, M)).astype(np.float32)
        Wt, bias = rng.normal(size=(V, M)).astype(np.float32), rng.normal(size=M).astype(np.float32)
        out, dWt = np.zeros((N, M), np.float32), np.zeros((V, M), np.float32)
        cpu.gather_rows(xs, Wt, bias, out)
        cpu.scatter_rows(xs, d, dWt)
        d_out, d_dWt, sums, row = cuda.device_array((N, M), np.float32), dev(np.zeros((V, M))), cuda.device_array(M, np.float32), cuda.device_array((1, M), np.float32)
        K.gather_rows[K.flat(N * M)](dev(xs, np.int32), dev(Wt), dev(bias), d_out)
        K.gather_row[K.flat(M)](dev(xs, np.int32), 3, dev(Wt), dev(bias), row)
        K.scatter_rows[K.flat(N * M)](dev(xs, np.int32), dev(d), d_dWt)
        K.sums_of_columns(dev(d), sums)
        close(d_out.copy_to_host(), out, "gather_rows")
        close(row.copy_to_host()[0], out[3], "gather_row")
        close(d_dWt.copy_to_host(), dWt, "scatter_rows")
        close(sums.copy_to_host(), d.sum(0), "column sums")

    def test_windows_cut_on_the_device_match_fill_window():
        """The training ids go up once; every window the device cuts equals charrnn.batches'."""
        from charrnn.batches import fill_window, stream_view, windows_per_epoch

        T, B, H, V = 3, 2, 4, 6
        ids = np.random.default_rng(7).integers(0, V, 40).astype(np.uint8)
        streams = stream_view(ids, B)  # L = 19: 6 windows per epoch, one id left over per row
        trainer = cb.DeviceTrainer(FlatParams(Arch("rnn", 1, H, V)), T, B)
        trainer.upload_streams(streams)
        xs, ys = np.empty((T, B), np.uint8), np.empty((T, B), np.uint8)
        for k in (0, 1, windows_per_epoch(streams, T) - 1):  # first, next, last window of the epoch
            fill_window(streams, k * T, xs, ys)
            grid = (K.blocks(B, K.TILE), K.blocks(T, K.TILE)), (K.TILE, K.TILE)
            K.gather_window[grid](trainer.stream_ids, trainer.stream_stride, k * T, trainer.ws.xy)
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
    @pytest.mark.parametrize("weight_decay", [0.0, 0.3])
    def test_optimizer_updates(name, weight_decay):
        params, *_ = make_case("gru", 2, 2, 2, 3, 5)  # biases of both kinds: no decay on them
        arch, rng = params.arch, np.random.default_rng(6)
        grads, opt = params.like(), Optimizer(name, params, weight_decay)
        dp, dg = cb.DeviceParams.from_host(params), cb.DeviceParams(arch)
        dopt, stats = cb.DeviceOptimizer(name, arch, weight_decay), dev([1.0, 1.0], np.float64)
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
        dopt.step(dp, dg, 0.01, dev([np.nan, 1.0], np.float64))  # a diverged step changes nothing, decay included
        np.testing.assert_array_equal(dp.flat.copy_to_host(), before)

    @pytest.mark.parametrize("seed,step,layer,stream0,p", [(0, 0, 0, 0, 0.5), (2**63 - 1, 123456, 1, 7, 0.1),
                                                           (12345, 2**31 + 5, 3, 40000, 0.9)])  # fmt: skip
    def test_dropout_masks_are_the_cpus_bit_for_bit(seed, step, layer, stream0, p):
        T, B, H = 3, 4, 9
        mask = np.empty((T, B, H), np.float32)
        scale = np.float32(1.0 / (1.0 - p))
        dropout_mask(seed, step, layer, threshold(p), scale, stream0, mask)
        h = np.random.default_rng(1).normal(size=(T, B, H)).astype(np.float32)
        d_mask, d_y = cuda.device_array((T, B, H), np.float32), cuda.device_array((T, B, H), np.float32)
        cuda_dropout.dropout_forward[K.flat(T * B * H)](seed, step, layer, threshold(p), scale, stream0, dev(h), d_mask, d_y)
        np.testing.assert_array_equal(d_mask.copy_to_host(), mask)
        np.testing.assert_array_equal(d_y.copy_to_host(), h * mask)
        assert 0 < (mask == 0).sum() < mask.size


if MODE == "ptx":
    import importlib

    from numba import cuda  # noqa: F811 (the sim block above did not run)

    from charrnn.cells import CELLS

    MODULES = [importlib.import_module(f"charrnn.{m}") for m in ("kernels.cuda", "kernels.cuda_optim", "kernels.cuda_dropout",
                                                                 *(f"cells.{c}.cuda" for c in CELLS))]  # fmt: skip
    KERNELS = [(m.__name__, name) for m in MODULES for name in sorted(m.SIGNATURES)]

    @pytest.fixture(scope="module")
    def nvvm():
        K = MODULES[0]
        try:
            cuda.compile_ptx(K.fill.py_func, K.SIGNATURES["fill"], cc=(8, 0))
        except Exception as error:  # no NVVM/NVRTC libraries: pip install 'numba-cuda[cu12]' or '[cu13]'
            pytest.skip(f"cannot compile PTX here: {type(error).__name__}: {str(error).strip()[:200]}")

    @functools.lru_cache(maxsize=None)
    def compiled(module, name, cc):
        """The PTX of every signature of one kernel (cached: the two tests below share it)."""
        mod = sys.modules[module]
        sigs = mod.SIGNATURES[name]
        return [cuda.compile_ptx(getattr(mod, name).py_func, sig, cc=cc)[0] for sig in ([sigs] if isinstance(sigs, str) else sigs)]

    @pytest.fixture(scope="module")
    def linker():
        """PTX -> cubin with nvJitLink (no driver needed); skips when cuda.core or nvJitLink is missing."""
        try:
            from cuda.core import Linker, LinkerOptions, ObjectCode
        except Exception as error:
            pytest.skip(f"cannot assemble cubins here: {type(error).__name__}: {error}")

        def link(ptx, cc):
            return Linker(ObjectCode.from_ptx(ptx.encode()), options=LinkerOptions(arch=f"sm_{cc[0]}{cc[1]}")).link("cubin")

        try:
            link(".version 8.0\n.target sm_80\n.address_size 64\n", (8, 0))
        except Exception as error:
            pytest.skip(f"cannot assemble cubins here: {type(error).__name__}: {str(error).strip()[:200]}")
        return link

    @pytest.mark.parametrize("cc", [(8, 0), (9, 0)])  # A100, H100
    @pytest.mark.parametrize("module,name", KERNELS)
    def test_kernel_compiles_for_gpu(nvvm, module, name, cc):
        for ptx in compiled(module, name, cc):
            assert f".target sm_{cc[0]}{cc[1]}" in ptx
            if name in sys.modules[module].FLOAT32_ONLY:  # no accidental float64 arithmetic (the simulator cannot tell)
                assert not re.search(r"\.f64\b", ptx), f"{module}.{name} computes in float64"

    @pytest.mark.parametrize("cc", [(8, 0), (9, 0)])
    @pytest.mark.parametrize("module,name", KERNELS)
    def test_kernel_assembles_to_a_cubin(nvvm, linker, module, name, cc):
        for ptx in compiled(module, name, cc):
            assert len(linker(ptx, cc).code) > 0

    def test_every_kernel_has_a_signature():
        """Every kernel of every CUDA module (device functions aside: they are inlined into the
        kernels that call them) has its argument types in SIGNATURES, so the PTX check covers it."""
        from charrnn.kernels import cuda_draw, cuda_recurrence

        def kernels(mod):
            return {(v.py_func.__module__, n) for n, v in vars(mod).items()
                    if type(v).__name__ == "CUDADispatcher" and not v.targetoptions.get("device")}  # fmt: skip

        defined = set().union(*(kernels(m) for m in [*MODULES, cuda_draw, cuda_recurrence]))
        signed = {(getattr(m, n).py_func.__module__, n) for m in MODULES for n in m.SIGNATURES}
        assert defined == signed
