"""Where the start-up time of `charrnn sample --length 200` goes, stage by stage, with a warm kernel cache.

    python benchmarks/startup.py                 # H = 512, 15 fresh processes
    python benchmarks/startup.py --hidden 64 --runs 30

A checkpoint of hidden size H is trained for 3 steps on charrnn/corpora/lighthouse.txt in a temporary folder,
with its own numba cache, warmed by one run of the command. Then each run is a fresh Python process
that takes the command's own path (charrnn.cli's sample) one stage at a time, stamping the clock
after each; the parent stamps the spawn and the exit. The table gives each stage's fastest and median
time over the runs, and the last row the whole real command, best of the same number of runs.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The child, given the command's flags (-m CKPT --length 200 --seed 0): the stages of charrnn.cli's
# main and sample, one after the other. Prints the wall clock (time.time) after each stage, as JSON.
CHILD = r"""
import time; stamps = [time.time()]
import gc, json, sys
gc.disable()  # as charrnn.cli.main
def stage(): stamps.append(time.time())
import charrnn.cli; stage()
import typer; typer.main.get_command(charrnn.cli.app).commands["sample"].make_context("sample", sys.argv[1:]); stage()
import numpy as np; stage()
from charrnn.sample import CpuSampler, encode_prime, generate, sample_rngs; from charrnn.model import load_model; stage()
from charrnn.device import resolve_device; device = resolve_device("auto"); stage()
model = load_model(sys.argv[2]); stage()
sampler = CpuSampler(model.params, np.array([1], np.int64), threads=1); stage()  # packs the weights, feeds the context
ids, _ = encode_prime(model.vocab, "", model.lines)
text = "".join(generate(model, ids, 200, 1.0, 0, next(sample_rngs(0)), device)); stage()
sys.stdout.write(json.dumps(stamps) + "\n"); sys.stdout.flush()
gc.freeze()
"""

STAGES = [
    "interpreter start-up (python, site, numba-cuda's import hook when installed)",
    "import charrnn.cli (typer)",
    "typer parses and checks the flags (typer 0.29 and later import pydantic for it)",
    "import numpy",
    "import numba and charrnn's kernel modules (charrnn.sample)",
    "--device auto (is there a CUDA driver?)",
    "load and validate the checkpoint",
    "the sampler: packing the weights, feeding the context (sampling.loops(step).advance: load from the cache, run)",
    "200 characters (the loops' sample_tokens: load from the cache, run; decoding)",
    "interpreter exit",
]


def charrnn_command():
    exe = Path(sys.executable).with_name("charrnn")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "charrnn"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512, help="hidden size H of the checkpoint (default 512)")
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per measurement (default 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba"), CHARRNN_CACHE_DIR=str(Path(tmp) / "corpora"))
        env.pop("CHARRNN_DEVICE", None)
        ckpt = str(Path(tmp) / "model.npz")
        train = ["train", str(REPO / "charrnn" / "corpora" / "lighthouse.txt"), "--cell", "rnn", "--hidden", str(args.hidden), "--steps", "3",
                 "--out", ckpt, "-q"]  # fmt: skip
        command = charrnn_command() + ["sample", "-m", ckpt, "--length", "200", "--seed", "0"]
        subprocess.run(charrnn_command() + train, env=env, check=True)
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)  # warms the kernel cache
        times = [[] for _ in STAGES]
        for _ in range(args.runs):
            spawn = time.time()
            child = [sys.executable, "-c", CHILD, *command[command.index("sample") + 1 :]]
            done = subprocess.run(child, env=env, check=True, capture_output=True, text=True)
            end = time.time()
            stamps = [spawn, *json.loads(done.stdout), end]
            for i, (a, b) in enumerate(zip(stamps, stamps[1:])):
                times[i].append(b - a)
        whole = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
            whole.append(time.perf_counter() - start)
    from importlib.metadata import version

    versions = ", ".join(f"{name} {version(name)}" for name in ("numpy", "numba", "typer"))
    print(f"`charrnn sample --length 200`, H = {args.hidden}, warm kernel cache, {args.runs} fresh processes; "
          f"Python {sys.version.split()[0]}, {versions}\n")  # fmt: skip
    print("| stage | fastest, ms | median, ms |\n|---|---|---|")
    for name, spans in zip(STAGES, times):
        print(f"| {name} | {1000 * min(spans):.0f} | {1000 * statistics.median(spans):.0f} |")
    sums = [sum(run) for run in zip(*times)]
    print(f"| all stages | {1000 * min(sums):.0f} | {1000 * statistics.median(sums):.0f} |")
    print(f"| the real command, end to end | {1000 * min(whole):.0f} | {1000 * statistics.median(whole):.0f} |")


if __name__ == "__main__":
    main()
