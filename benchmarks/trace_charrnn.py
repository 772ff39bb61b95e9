"""One quality run of charrnn, scored on a held-out text along the way: the charrnn side of
benchmarks/quality.py, with the same interface as benchmarks/peer_plain.py.

    python benchmarks/trace_charrnn.py TRAIN HELDOUT --json out.json [--trace-every STEPS] [--target LOSS]
        [--steps N | --epochs E | --time S] [--cell gru] [--hidden 512] ... (any charrnn train setting)

It runs `charrnn.train` on TRAIN with the settings given (those not given are charrnn's defaults),
and every --trace-every steps scores the latest checkpoint on HELDOUT (`Model.evaluate`, as
`charrnn eval` does) with the clock stopped: `seconds` counts training, charrnn's own validation and
saves included, and leaves out the held-out scoring. --target stops the run at the first trace at
or below it. At the end both the final and the best-validated checkpoint are scored.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import charrnn

SETTINGS = {"cell": str, "layers": int, "hidden": int, "dropout": float, "seq": int, "batch": int, "lr": float,
            "lr_schedule": str, "warmup": int, "min_lr": float, "weight_decay": float, "clip": float,
            "val_frac": float, "val_split": str, "eval_every": int, "seed": int}  # fmt: skip


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("train")
    p.add_argument("heldout")
    p.add_argument("--json", required=True)
    p.add_argument("--trace-every", type=int, help="score the held-out text every this many steps")
    p.add_argument("--target", type=float, help="stop at the first trace at or below this held-out loss")
    p.add_argument("--steps", type=int)
    p.add_argument("--epochs", type=float)
    p.add_argument("--time", type=float)
    p.add_argument("--threads", type=int, default=0)
    for name, kind in SETTINGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind)
    return p.parse_args()


def main():
    args = parse()
    settings = {name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None}
    held = open(args.heldout, encoding="utf-8").read()
    work = tempfile.mkdtemp(prefix="charrnn-trace-")
    out = os.path.join(work, "run.npz")
    trace, scoring, last = [], 0.0, {}
    reached = []
    t0 = time.perf_counter()

    def trained():
        return time.perf_counter() - t0 - scoring

    def on_event(kind, info):
        nonlocal scoring
        if kind == "step":
            last.update(info)
        elif kind == "save" and not info["best"] and args.trace_every and info["step"] % args.trace_every == 0:
            start = time.perf_counter()
            loss = charrnn.load(info["path"]).evaluate(held).loss
            trace.append(dict(seconds=trained(), step=info["step"], heldout=loss))
            print(f"charrnn: {trace[-1]['seconds']:.0f} s, step {info['step']:,}, held-out {loss:.4f}", file=sys.stderr, flush=True)
            if args.target is not None and loss <= args.target and not reached:
                reached.append(trace[-1])
            scoring += time.perf_counter() - start

    extra = {} if not args.trace_every else {"save_every": args.trace_every}
    result = charrnn.train(args.train, out, on_event=on_event, should_stop=lambda: bool(reached), device="cpu",
                           steps=args.steps, epochs=args.epochs, time=args.time, threads=args.threads,
                           **settings, **extra)  # fmt: skip
    seconds = trained()
    scores = {"final": charrnn.load(out).evaluate(held).loss}
    if result.best_checkpoint:
        scores["best"] = charrnn.load(result.best_checkpoint).evaluate(held).loss
    report = dict(steps=result.steps, seconds=seconds, chars_per_s=result.chars_per_s, heldout=scores,
                  best_val_loss=result.best_val_loss, epochs=last.get("epoch"), planned_steps=last.get("total_steps"), trace=trace,
                  reached=reached[0] if reached else None, settings=charrnn.load(out).settings)  # fmt: skip
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)
    print(f"charrnn: {result.steps:,} steps in {seconds:.0f} s at {result.chars_per_s:,.0f} chars/s; held-out {scores}",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
