"""train, sample, eval and the CLI on "cuda" against "cpu" (an LSTM of 2 layers with dropout and
weight decay, and the other cells), through the same calls the CLI makes: part of the inner `sim`
/ `device` suites of tests/test_cuda_sim.py (see its header; nothing runs here otherwise).
"""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from cuda_helpers import MODE, TOL, UINT64_WRAPS

pytestmark = UINT64_WRAPS

if MODE in ("sim", "device"):

    from typer.testing import CliRunner

    import charrnn.cli
    from charrnn import evaluate as evaluate_module
    from charrnn import sample as sample_module
    from charrnn.checkpoint import load_checkpoint
    from charrnn.config import TrainConfig
    from charrnn.corpus import load_corpus
    from charrnn.evaluate import evaluate_ids
    from charrnn.sample import generate
    from charrnn.resuming import load_resume, resume_config
    from charrnn.train_loop import train
    from charrnn.model import load_model

    WIRING_TOL = 1e-4  # a few steps of training: float32 rounding differences grow a little
    # 26 ids (one record), V = 6; 5 held out (one validation stream: a window of 3 steps, then 1);
    # 3 windows of T=3 over B=2 streams per epoch, so step 4 starts a second epoch (a device-side
    # reset, the decayed learning rate). The simulator takes about 2 s per training step here.
    WIRING_TEXT = "abcab cabba bacca abcbac "
    # A 2-layer LSTM with dropout and weight decay: every part of the device step is on the path.
    WIRING = dict(cell="lstm", layers=2, hidden=6, dropout=0.2, weight_decay=0.01, seq=3, batch=2, val_frac=0.2, eval_every=2,
                  save_every=100, seed=5, lr_decay=0.8, clip=1.0, threads=1,
                  lr_schedule="constant")  # fmt: skip; constant: 4 steps + 2 resumed are one 6-step run
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
        for name in (*a.params, *a.state):  # parameters, optimizer slots, h_carry, loss history
            x, y = (a.params | a.state)[name], (b.params | b.state)[name]
            if name.startswith("history."):  # steps and losses; the seconds differ
                x, y = x[:, [0, 2]], y[:, [0, 2]]
            near(x, y, f"{what}: {name}")
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

    @pytest.mark.parametrize("cell", ["rnn", "gru"])
    def test_train_other_cells_on_cuda_matches_cpu(runs, tmp_path, cell):
        """2 steps of a 1-layer rnn and a 2-layer gru, with dropout, on both devices."""
        _, corpus, _ = runs
        cfg = TrainConfig(**dict(WIRING, cell=cell, layers=1 if cell == "rnn" else 2, eval_every=100), steps=2)
        logs = {d: train_logged(corpus, cfg, tmp_path / f"{d}.npz", d) for d in ("cpu", "cuda")}
        near(events(logs["cuda"], "step", "loss"), events(logs["cpu"], "step", "loss"), f"{cell}: training losses")
        same_training(tmp_path / "cuda.npz", tmp_path / "cpu.npz", f"{cell}: cuda vs cpu")

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
        if MODE == "sim":
            assert re.search(r"CUDA\s+usable: numba-cuda's CUDA simulator", info.stdout)
            assert re.search(r"--device auto\s+cpu\b", info.stdout)  # auto never picks the simulator
        else:
            assert re.search(r"CUDA\s+usable: a CUDA GPU was found", info.stdout)
            assert re.search(r"--device auto\s+cuda\b", info.stdout)

    def test_bench_trains_charrnn_on_cuda(runs, monkeypatch):
        """benchmarks/bench.py times train() with device="cuda" (tiny B, T here; no torch needed)."""
        _, corpus, _ = runs
        folder = Path(__file__).parents[1] / "benchmarks"
        monkeypatch.syspath_prepend(str(folder))  # bench.py imports its neighbours, as when run as a script
        spec = importlib.util.spec_from_file_location("bench", folder / "bench.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        monkeypatch.setattr(bench, "B", 2)
        monkeypatch.setattr(bench, "T", 3)
        rates = bench.charrnn_train_rates(corpus, 8, [1, 3], "cuda")
        assert len(rates) == 1 and rates[0] > 0
