"""Held-out quality of charrnn against a plain PyTorch training loop, in three kinds of row.

    python benchmarks/quality.py [--rows steps time target] [--seeds 0 1] [--steps 2000] [--seconds 300]
                                 [--target 1.60] [--trace-every 100] [--set KEY=VALUE] [--json results.json]

tiny Shakespeare (../shared/corpora/tinyshakespeare.txt from the repository root) is cut at the
first line break after 90% of its characters: the first part is the training text, the rest the
held-out text (both written to a temporary folder, never into the repository).

- steps: both sides train the same model with the same settings (MODEL) for --steps steps on the
  same windows: charrnn with --val-frac 0, so neither holds any text out. Tells whether the two
  learn alike per step.
- time: `charrnn train TRAIN --time S` with every setting at charrnn's defaults (validation
  included, in the clock, the cosine over the S seconds), against the peer with its own best
  settings (PEER, the cosine over the same S seconds of training).
- target: seconds of training to reach --target held out, each side scored every --trace-every
  steps with its clock stopped: charrnn's defaults as a user runs them (`charrnn train TRAIN`),
  the peer with the same settings and plan (MODEL over as many steps as that charrnn run planned).
  Both run to the end, so this row's loss is also what the defaults give.

Each run is a subprocess (benchmarks/trace_charrnn.py, benchmarks/peer_plain.py), one at a time,
seeds outermost. charrnn's score is the better of its final and best-validated checkpoint (the
`kept` column); the peer has no validation, so its final one. Prints a markdown table to stdout and
progress to stderr. See benchmarks/README.md.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpora" / "tinyshakespeare.txt"
HELD_OUT = 0.10
# charrnn's defaults spelt out (charrnn.config.TrainConfig), for rows where both sides must agree
MODEL = dict(cell="gru", layers=1, hidden=512, dropout=0.2, seq=64, batch=32, lr=8e-3, lr_schedule="cosine",
             warmup=100, min_lr=8e-4, clip=5.0)  # fmt: skip
# the peer's best for the time row, chosen by measurement (benchmarks/README.md, "The peer's settings")
PEER = dict(MODEL)
PLANNED = "{planned}"
BUSY = 0.5  # a load average above this when the runs begin gets a warning under the table


def fail(message):
    sys.exit(f"quality: error: {message}")


def progress(message):
    print(f"quality: {message}", file=sys.stderr, flush=True)


def flags(settings):
    return [arg for name, value in settings.items() for arg in ("--" + name.replace("_", "-"), str(value))]


def split_corpus(source, work):
    """Training and held-out files: cut at the first line break after HELD_OUT's share from the end."""
    text = source.read_text(encoding="utf-8")
    cut = text.find("\n", int(len(text) * (1 - HELD_OUT))) + 1 or len(text)
    split = {"train": work / "train.txt", "heldout": work / "heldout.txt"}
    split["train"].write_text(text[:cut], encoding="utf-8")
    split["heldout"].write_text(text[cut:], encoding="utf-8")
    return split, cut, len(text) - cut


def run(side, args, split, work, seed, extra):
    script = HERE / ("trace_charrnn.py" if side == "charrnn" else "peer_plain.py")
    out = work / f"{side}-{seed}-{time.monotonic_ns()}.json"
    cmd = [sys.executable, str(script), str(split["train"]), str(split["heldout"]), "--json", str(out),
           "--seed", str(seed), *extra]  # fmt: skip
    log = out.with_suffix(".log")
    with open(log, "w") as err:
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ, CHARRNN_CACHE_DIR=str(work)))
    if done.returncode:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] or ["(no output)"]
        return dict(command=cmd, error=f"exit {done.returncode}: {lines[-1]}")
    result = json.loads(out.read_text())
    scores = result["heldout"] if isinstance(result["heldout"], dict) else {"final": result["heldout"]}
    kept, loss = min(scores.items(), key=lambda kv: kv[1])
    return dict(result, command=cmd, kept=kept, loss=loss)


def crossing(trace, target):
    """Seconds of training at which the held-out loss first reached target, interpolated linearly
    between the two traces around it; None when it never did."""
    before = None
    for point in trace:
        if point["heldout"] <= target:
            if before is None:
                return point["seconds"]
            f = (before["heldout"] - target) / (before["heldout"] - point["heldout"])
            return before["seconds"] + f * (point["seconds"] - before["seconds"])
        before = point
    return None


def plans(args):
    """(row, side, flags) for every run of one seed; PLANNED in a flag is the steps the seed's
    charrnn target run planned, known once it has run."""
    model, peer = dict(MODEL, **args.overrides), dict(PEER, **args.overrides)
    rows = {
        "steps": [("charrnn", [*flags(model), "--val-frac", "0", "--steps", str(args.steps)]),
                  ("peer", [*flags(model), "--steps", str(args.steps)])],
        "time": [("charrnn", [*flags(args.overrides), "--time", str(args.seconds)]),
                 ("peer", [*flags(peer), "--time", str(args.seconds)])],
        "target": [("charrnn", [*flags(args.overrides), "--trace-every", str(args.trace_every)]),
                   ("peer", [*flags(model), "--steps", PLANNED, "--trace-every", str(args.trace_every)])],
    }  # fmt: skip
    return [(row, side, extra) for row in args.rows for side, extra in rows[row]]


def table(runs, args):
    head = ("row", "side", "seeds", "held-out nats/char: mean (min–max)", "kept", "steps", "train s", "chars/s",
            f"s to {args.target}")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups = {}
    for r in runs:
        groups.setdefault((r["row"], r["side"]), []).append(r)
    for (row, side), group in groups.items():
        good = [r for r in group if "error" not in r]
        if not good:
            lines.append(f"| {row} | {side} | | failed | | | | | |")
            continue
        losses = [r["loss"] for r in good]
        loss = f"{sum(losses) / len(losses):.4f}" + (f" ({min(losses):.4f}–{max(losses):.4f})" if len(losses) > 1 else "")

        def mean(key, fmt):
            values = [r[key] for r in good if r.get(key) is not None]
            return format(sum(values) / len(values), fmt) if len(values) == len(good) else "–"

        seeds = " ".join(str(r["seed"]) for r in good) + (f" ({len(group) - len(good)} failed)" if len(good) < len(group) else "")
        kept = ", ".join(sorted({r["kept"] for r in good}))
        lines.append(f"| {row} | {side} | {seeds} | {loss} | {kept} | {mean('steps', ',.0f')} | {mean('seconds', '.0f')} "
                     f"| {mean('chars_per_s', ',.0f')} | {mean('to_target', '.0f') if row == 'target' else ''} |")  # fmt: skip
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", choices=("steps", "time", "target"), default=["steps", "time", "target"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=2000, help="the steps row's length (default: 2000)")
    parser.add_argument("--seconds", type=float, default=150, help="the time row's budget (default: 150)")
    parser.add_argument("--target", type=float, default=1.60, help="the target row's held-out loss (default: 1.60)")
    parser.add_argument("--trace-every", type=int, default=100, help="the target row's steps between scores")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change a setting for every run of both sides (MODEL, PEER and charrnn's defaults)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help=f"default: {CORPUS}")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    if not args.corpus.is_file():
        fail(f"corpus {args.corpus} not found (tiny Shakespeare is expected there; or pass --corpus PATH)")
    overrides = {}
    for item in args.overrides:
        key, eq, value = item.partition("=")
        if not eq or key not in MODEL:
            fail(f"--set {item}: expected KEY=VALUE with KEY in {', '.join(MODEL)}")
        overrides[key] = type(MODEL[key])(float(value) if isinstance(MODEL[key], int) else value)
    args.overrides = overrides
    runs = []
    with tempfile.TemporaryDirectory(prefix="charrnn-quality-") as tmp:
        work = Path(tmp)
        split, n_train, n_held = split_corpus(args.corpus, work)
        load = os.getloadavg()[0]
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), platform.machine())  # fmt: skip
        print(f"machine: {cpu}, {len(os.sched_getaffinity(0))} usable cores, load average {load:.2f}")
        print(f"corpus: {args.corpus.name}, {n_train:,} characters to train on, the last {n_held:,} held out\n")
        todo = plans(args)
        try:
            for seed in args.seeds:
                planned = None
                for row, side, extra in todo:
                    if PLANNED in extra:
                        if planned is None:
                            progress(f"{row} row, {side}, seed {seed}: skipped, charrnn's run gave no plan")
                            continue
                        extra = [str(planned) if arg == PLANNED else arg for arg in extra]
                    progress(f"{row} row, {side}, seed {seed} ...")
                    r = dict(run(side, args, split, work, seed, extra), row=row, side=side, seed=seed)
                    if "error" in r:
                        progress(f"  failed: {r['error']}")
                    else:
                        r["to_target"] = crossing(r.get("trace") or [], args.target)
                        if row == "target" and side == "charrnn":
                            planned = r.get("planned_steps")
                        progress(f"  held-out {r['loss']:.4f} ({r['kept']}), {r['steps']:,} steps, {r['seconds']:.0f} s"
                                 + (f", {args.target} at {r['to_target']:.0f} s" if r["to_target"] else ""))  # fmt: skip
                    runs.append(r)
        except KeyboardInterrupt:
            progress("interrupted: the table shows the runs that finished")
    print(table(runs, args))
    print(f"\nsettings: MODEL {MODEL}; PEER {PEER}; overrides {args.overrides or 'none'}")
    for r in runs:
        if "error" in r:
            print(f"\n{r['row']} {r['side']} seed {r['seed']} failed: {r['error']}")
    if load > BUSY:
        print(f"\nwarning: the load average was {load:.2f} when the runs began: run again on an idle machine.")
    if args.json:
        args.json.write_text(json.dumps(dict(corpus=str(args.corpus), load_average=load, runs=runs), indent=1))
    sys.exit(1 if any("error" in r for r in runs) else 0)


if __name__ == "__main__":
    main()
