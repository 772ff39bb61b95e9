"""Benchmark charrnn against a PyTorch peer: training and sampling throughput, achieved GFLOP/s, start-up.

    python benchmarks/bench.py [--corpus PATH] [--device cpu|cuda] [--quick] [--cells rnn lstm gru] [--layers 1 2]

Prints the machine, then one markdown table, to stdout; progress goes to stderr.
See benchmarks/README.md for what each row measures. With --device cuda both sides run on the GPU:
charrnn through the same train()/generate() calls with device="cuda" (and `--device cuda` on the
command lines it times), the peer with torch on "cuda".
"""

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bench_cells

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"
B, T = 32, 64
SIZES = (128, 512)
TRAIN_STEPS = {128: 2000, 512: 250}  # timed steps: about 10 s each for charrnn on a 2-core Xeon
WARMUP_STEPS = 20
BLOCKS = 5  # the timed steps are cut into blocks; the median block rate is reported
UNSTABLE = 0.25  # blocks further apart than this (relative to the median) mark a busy machine
SAMPLE_CHARS, SAMPLE_REPEATS, TEMPERATURE, TOP_P = 20_000, 5, 0.8, 0.95
QUICK = 5  # --quick divides the work by this (about 2 s per measurement)


def fail(message):
    sys.exit(f"bench: error: {message}")


def progress(message):
    print(f"bench: {message} ...", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the machine


def machine_lines(device):
    import numba
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    lines = [
        f"CPU: {cpu}; {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable); "
        f"load average {os.getloadavg()[0]:.2f}",
        f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, torch {torch.__version__}",
    ]
    if device == "cuda":
        from importlib.metadata import version

        lines.append(f"GPU: {torch.cuda.get_device_name()}; numba-cuda {version('numba-cuda')}, torch CUDA {torch.version.cuda}")
    return lines


def check_device(device):
    """Exit with one line when `device` cannot be benchmarked here."""
    if device == "cpu":
        return
    import torch

    from charrnn.cuda_probe import cuda_status, simulated

    usable, reason = cuda_status()
    if not usable:
        fail(f"--device cuda: charrnn cannot use CUDA here: {reason}")
    if simulated():
        fail("--device cuda: numba-cuda's simulator is on (NUMBA_ENABLE_CUDASIM); unset it to benchmark a GPU")
    if not torch.cuda.is_available():
        fail("--device cuda: torch sees no CUDA device (a CPU-only torch build?)")


# --------------------------------------------------------------------------- charrnn's side


def block_bounds(warmup, steps):
    """Step counts at the block boundaries: warmup, ..., warmup + steps."""
    return [warmup + steps * i // BLOCKS for i in range(BLOCKS + 1)]


def charrnn_train_rates(corpus, H, bounds, device, cell="rnn", layers=1):
    """Characters per second of `charrnn.train_loop.train` itself, for each block of steps between `bounds`.
    cell, layers: TrainConfig's (by default the vanilla RNN, whatever charrnn train's default).

    The rates come from the `elapsed` the library reports with each step, so they time the real loop
    (window, loss and gradients, clipping, Adam, carried state), after bounds[0] warm-up steps (which
    include the compile); no validation (val_frac=0) and no checkpoint until after the last step.
    """
    from charrnn.config import TrainConfig
    from charrnn.train_loop import train

    elapsed = {}

    def report(kind, info):
        if kind == "step":
            elapsed[info["step"]] = info["elapsed"]

    total = bounds[-1]
    cfg = TrainConfig(cell=cell, layers=layers, hidden=H, seq=T, batch=B, steps=total, val_frac=0.0, save_every=total + 1)
    with tempfile.TemporaryDirectory() as tmp:
        train(corpus, cfg, out=os.path.join(tmp, "bench.npz"), report=report, device=device)
    return [(end - first) * T * B / (elapsed[end] - elapsed[first]) for first, end in zip(bounds, bounds[1:])]


def steady(rates, unstable, label):
    """The median of the block rates; the measurement is noted in `unstable` when the blocks disagree."""
    median = float(np.median(rates))
    if (max(rates) - min(rates)) / median > UNSTABLE:
        unstable.append(f"{label}: {min(rates):,.0f} to {max(rates):,.0f} chars/s")
    return median


def random_model(corpus, H, cell="rnn", layers=1):
    """A charrnn Model of `layers` layers of `cell`, hidden size H, with random weights (init_params,
    seed 0), trained on whole files, so that its samples are streams (charrnn never draws <eos> there)."""
    from charrnn.model import Model

    rng = np.random.default_rng(0)
    try:
        from charrnn.params import Arch, init_params
    except ImportError:  # a charrnn from before cells: the vanilla RNN only
        from charrnn.model import init_params

        params = init_params(H, corpus.vocab.size, rng)
    else:
        params = init_params(Arch(cell, layers, H, corpus.vocab.size), rng)
    return Model(params=params, vocab=corpus.vocab, meta={"lines": False})


def charrnn_sample_rates(model, n, repeats, device, top_ps=(1.0,)):
    """{top_p: characters per second} of `charrnn.sample.generate` (one stream), best of `repeats`,
    counting the characters it actually produced. The top-p values take turns, so that a change in
    the machine's speed during the measurement falls on all of them alike."""
    from charrnn.sample import generate

    rng = np.random.default_rng(0)
    "".join(generate(model, [], 500, TEMPERATURE, 0, rng, device))  # compiles, or loads the numba cache
    best = dict.fromkeys(top_ps, 0.0)
    for _ in range(repeats):
        for top_p in top_ps:
            start = time.perf_counter()
            text = "".join(generate(model, [], n, TEMPERATURE, 0, rng, device, top_p=top_p))
            best[top_p] = max(best[top_p], len(text) / (time.perf_counter() - start))
    return best


def matmul_gflops(threads, device, n=2048, repeats=5):
    """Best-of-`repeats` float32 n x n @ n x n rate: numpy with `threads` BLAS threads, or torch on the GPU."""
    a, b = (np.random.default_rng(i).standard_normal((n, n), dtype=np.float32) for i in (1, 2))
    if device == "cuda":
        import torch

        a, b = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        matmul, sync = torch.matmul, torch.cuda.synchronize
    else:
        matmul, sync = np.matmul, lambda: None
    from threadpoolctl import threadpool_limits

    best = float("inf")
    with threadpool_limits(limits=threads, user_api="blas"):
        matmul(a, b)
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            matmul(a, b)
            sync()
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


# --------------------------------------------------------------------------- start-up


def charrnn_command():
    exe = Path(sys.executable).with_name("charrnn")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "charrnn"]


def wall(args, cache=None, repeats=1):
    """Best wall time in seconds of `charrnn *args` (NUMBA_CACHE_DIR=cache when given)."""
    env = dict(os.environ, **({"NUMBA_CACHE_DIR": str(cache)} if cache else {}))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(charrnn_command() + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        best = min(best, time.perf_counter() - start)
        if done.returncode:
            fail(f"charrnn {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return best


def startup_times(corpus_path, tmp, device):
    """{name: seconds}: --help; sample with a warm cache (H = 64 and 512); first runs (empty
    NUMBA_CACHE_DIR) of sample and train. On the CPU the commands run as a user types them, with
    the default --device auto (which then finds no GPU); else with --device cuda."""
    flag = [] if device == "cpu" else ["--device", device]
    ckpt = {H: str(tmp / f"h{H}.npz") for H in (64, 512)}
    tiny_train = ["train", str(corpus_path), "--cell", "rnn", "--hidden", "64", "--steps", "50", "--out", ckpt[64], "--quiet", *flag]
    sample = {H: ["sample", "-m", ckpt[H], "--length", "200", "--seed", "0", *flag] for H in ckpt}
    times = {"help": wall(["--help"], repeats=5)}
    times["train_cold"] = wall(tiny_train, cache=tmp / "cache-train")
    times["train_warm"] = wall(tiny_train, cache=tmp / "cache-train", repeats=3)
    wall(["train", str(corpus_path), "--cell", "rnn", "--hidden", "512", "--steps", "3", "--out", ckpt[512], "--quiet", *flag], cache=tmp / "cache-train")
    times["sample_cold"] = wall(sample[64], cache=tmp / "cache-sample")
    for H in ckpt:
        times[f"sample_warm_{H}"] = wall(sample[H], cache=tmp / "cache-sample", repeats=5)
    return times


# --------------------------------------------------------------------------- memory


MEMORY_CORPUS_BYTES = 100_000_000
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss_mb(args, env):
    """Peak resident memory (MB) of `charrnn *args`, measured by a parent that runs nothing else."""
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *charrnn_command(), *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        fail(f"charrnn {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return int(done.stdout.split()[-1]) / 1024


def training_memory(corpus_path, tmp, device):
    """(first run, cached run) peak RSS in MB (host memory) of training H=512 on a ~100 MB corpus (the given one repeated)."""
    text = corpus_path.read_bytes()
    big = tmp / "big.txt"
    with open(big, "wb") as f:
        for _ in range(-(-MEMORY_CORPUS_BYTES // len(text))):
            f.write(text)
    env = dict(os.environ, CHARRNN_CACHE_DIR=str(tmp / "corpora"))
    args = ["train", str(big), "--cell", "rnn", "--hidden", "512", "--steps", "20", "--eval-every", "10", "--out", str(tmp / "m.npz"), "--quiet",
            "--device", device]
    return peak_rss_mb(args, env), peak_rss_mb(args, env), big.stat().st_size


# --------------------------------------------------------------------------- the table


def table(rows):
    head = ("measurement", "H", "charrnn", "reference", "ratio")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def startup_rows(args):
    """The start-up rows, and the memory rows unless --skip-memory."""
    progress("start-up: charrnn --help, sample, first runs with an empty numba cache")
    with tempfile.TemporaryDirectory() as tmp:
        s = startup_times(args.corpus, Path(tmp), args.device)
    rows = [
        ("start-up: `charrnn --help`, s (best of 5)", "", f"{s['help']:.2f}", "", ""),
        ("start-up: `charrnn sample --length 200`, warm cache, s (best of 5)", 64, f"{s['sample_warm_64']:.2f}", "", ""),
        ("start-up: `charrnn sample --length 200`, warm cache, s (best of 5)", 512, f"{s['sample_warm_512']:.2f}",
         "0.5 (target)", ""),
        ("first run: `charrnn sample`, empty cache, s (compile ≈ cold − warm)", 64, f"{s['sample_cold']:.2f}",
         f"{s['sample_warm_64']:.2f} (warm)", f"+{s['sample_cold'] - s['sample_warm_64']:.1f} s"),
        ("first run: `charrnn train --steps 50`, empty cache, s (compile ≈ cold − warm)", 64, f"{s['train_cold']:.2f}",
         f"{s['train_warm']:.2f} (warm, best of 3)", f"+{s['train_cold'] - s['train_warm']:.1f} s"),
    ]
    if not args.skip_memory:
        progress("memory: training H=512 on a ~100 MB corpus, first run then with the encoded corpus cached")
        with tempfile.TemporaryDirectory() as tmp:
            first, cached, size = training_memory(args.corpus, Path(tmp), args.device)
        rows += [
            (f"memory: peak RSS training on {size / 1e6:.0f} MB, first run (encodes), MB", 512, f"{first:.0f}", "400 (target)", ""),
            (f"memory: peak RSS training on {size / 1e6:.0f} MB, cached corpus, MB", 512, f"{cached:.0f}", "400 (target)", ""),
        ]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help=f"text to train on (default: {DEFAULT_CORPUS})")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both sides compute")
    parser.add_argument("--quick", action="store_true", help="about 2 s per measurement instead of about 10 s")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the 100 MB memory measurement")
    parser.add_argument("--cells", nargs="+", choices=bench_cells.CELLS, default=list(bench_cells.CELLS),
                        help="whose training and sampling rows to run (default: all); the start-up and memory rows "
                             "come with rnn")  # fmt: skip
    parser.add_argument("--layers", nargs="+", type=int, choices=(1, 2), default=[1, 2],
                        help="layer counts of the lstm and gru rows (default: 1 2)")
    args = parser.parse_args()
    if importlib.util.find_spec("torch") is None:
        fail("the PyTorch peer needs torch: pip install -e '.[bench]'")
    check_device(args.device)
    vanilla = "rnn" in args.cells
    grid = [(cell, layers, H) for cell in args.cells if cell != "rnn" for layers in args.layers for H in SIZES]
    missing = bench_cells.missing_settings() if grid else ""
    if missing:
        fail(f"the {' and '.join(c for c in args.cells if c != 'rnn')} rows need charrnn.config.TrainConfig fields "
             f"it does not have yet ({missing}); run with --cells rnn")  # fmt: skip
    import peer_torch
    from charrnn.corpus import load_corpus

    if not args.corpus.is_file():
        fail(f"corpus {args.corpus} not found (pass --corpus PATH)")
    scale = QUICK if args.quick else 1
    corpus = load_corpus([str(args.corpus)])
    V = corpus.vocab.size
    device = peer_torch.setup(args.device)
    print("\n".join(machine_lines(args.device)))
    print(f"corpus: {args.corpus.name}, {len(corpus.ids):,} tokens, V = {V}; B = {B}, T = {T}\n")

    rows, train_rates, peer_rates, unstable = [], {}, {}, []  # (cell, layers, H) -> chars/s
    for H in SIZES if vanilla else ():
        steps, warmup = TRAIN_STEPS[H] // scale, WARMUP_STEPS // scale
        bounds = block_bounds(warmup, steps)
        progress(f"training H={H}: {warmup} warm-up + {steps} timed steps, charrnn then PyTorch")
        ours = train_rates["rnn", 1, H] = steady(charrnn_train_rates(corpus, H, bounds, args.device), unstable, f"charrnn H={H}")
        peer = steady(peer_torch.train_rates(corpus.ids, V, H, B, T, warmup, bounds, device), unstable, f"PyTorch H={H}")
        rows.append((f"training, chars/s ({steps} steps)", H, f"{ours:,.0f}", f"{peer:,.0f} (PyTorch)", f"{ours / peer:.2f}×"))
    for cell, layers, H in grid:  # the same measurement, with fewer steps as a step costs more
        warmup, steps = bench_cells.plan(cell, layers, H, V, TRAIN_STEPS[H], WARMUP_STEPS, scale, BLOCKS)
        bounds, label = block_bounds(warmup, steps), f"{cell} L={layers} H={H}"
        progress(f"training {label}: {warmup} warm-up + {steps} timed steps, charrnn then PyTorch")
        ours = train_rates[cell, layers, H] = steady(charrnn_train_rates(corpus, H, bounds, args.device, cell, layers),
                                                     unstable, f"charrnn {label}")  # fmt: skip
        peer = peer_rates[cell, layers, H] = steady(
            peer_torch.train_rates(corpus.ids, V, H, B, T, warmup, bounds, device, cell, layers), unstable,
            f"PyTorch {label}")  # fmt: skip
        rows.append((f"training {cell}, {layers} layer{'s' * (layers > 1)}, chars/s ({steps} steps)", H, f"{ours:,.0f}",
                     f"{peer:,.0f} (PyTorch)", f"{ours / peer:.2f}×"))  # fmt: skip
    nucleus = []
    for H in SIZES if vanilla else ():
        n = SAMPLE_CHARS // scale
        progress(f"sampling H={H}: {n:,} chars, best of {SAMPLE_REPEATS}, plain and with top-p {TOP_P}")
        model = random_model(corpus, H)
        ours = charrnn_sample_rates(model, n, SAMPLE_REPEATS, args.device, (1.0, TOP_P))
        peer = peer_torch.sample_rate(model.params, corpus.vocab, n, TEMPERATURE, SAMPLE_REPEATS, device)
        rows.append((f"sampling, chars/s (t={TEMPERATURE}, 1 stream)", H, f"{ours[1.0]:,.0f}", f"{peer:,.0f} (PyTorch)",
                     f"{ours[1.0] / peer:.2f}×"))  # fmt: skip
        nucleus.append((f"sampling with --top-p {TOP_P}, chars/s (t={TEMPERATURE})", H, f"{ours[TOP_P]:,.0f}",
                        f"{ours[1.0]:,.0f} (charrnn, no top-p)", f"{ours[TOP_P] / ours[1.0]:.2f}×"))  # fmt: skip
    for cell, layers, H in grid:
        n = SAMPLE_CHARS // scale
        progress(f"sampling {cell} L={layers} H={H}: {n:,} chars, best of {SAMPLE_REPEATS}")
        model = random_model(corpus, H, cell, layers)
        ours = charrnn_sample_rates(model, n, SAMPLE_REPEATS, args.device)[1.0]
        peer = peer_torch.sample_rate(model.params, corpus.vocab, n, TEMPERATURE, SAMPLE_REPEATS, device, cell, layers)
        rows.append((f"sampling {cell}, {layers} layer{'s' * (layers > 1)}, chars/s (t={TEMPERATURE}, 1 stream)", H,
                     f"{ours:,.0f}", f"{peer:,.0f} (PyTorch)", f"{ours / peer:.2f}×"))  # fmt: skip
    rows += nucleus

    progress("float32 2048² matrix product")
    threads = peer_torch.THREADS
    peak = matmul_gflops(threads, args.device)
    where = "GPU sgemm" if args.device == "cuda" else f"numpy sgemm, {threads} threads"
    beyond = []  # rows where twice the peer's rate would need more than the machine's sgemm
    for (cell, layers, H), rate in train_rates.items():
        what = "6(H²+HV) per char"
        if cell != "rnn":
            what = f"{cell}, {layers} layer{'s' * (layers > 1)}, 6(G·H²·(2L−1)+HV) per char"
        flops = bench_cells.flops_per_char(cell, layers, H, V)
        achieved = rate * flops / 1e9
        rows.append((f"training, GFLOP/s ({what})", H, f"{achieved:.2f}", f"{peak:.1f} ({where})", f"{achieved / peak:.1%}"))
        if (cell, layers, H) in peer_rates:  # the peer's work counted the same way: a lower bound on what it does
            theirs = peer_rates[cell, layers, H] * flops / 1e9
            rows.append((f"training, GFLOP/s, PyTorch ({what})", H, f"{theirs:.2f}", f"{peak:.1f} ({where})",
                         f"{theirs / peak:.1%}"))  # fmt: skip
            if 2 * theirs > peak:
                beyond.append(f"{cell} L={layers} H={H} ({2 * theirs / peak:.0%})")
    if vanilla:
        rows += startup_rows(args)
    print(table(rows))
    if beyond:
        print(f"\nTwice the peer's training rate would take more than the reference's {peak:.1f} GFLOP/s ({where}, "
              f"2048²), counting only the arithmetic the model needs (the share of it 2× takes): {', '.join(beyond)}.")
    if unstable:
        print(f"\nwarning: training blocks differ by more than {UNSTABLE:.0%} ({'; '.join(unstable)}): "
              "the machine was busy; run again when it is idle.")
    if args.device == "cpu":
        one = matmul_gflops(1, "cpu")
        print(f"\ncharrnn trains with one worker thread per core, each with 1 BLAS thread; the peer uses torch.set_num_threads({threads}). "
              f"numpy sgemm with 1 thread: {one:.1f} GFLOP/s.")


if __name__ == "__main__":
    main()
