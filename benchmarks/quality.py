"""Held-out quality of charrnn's cells against the PyTorch peer, each trained for the same wall-clock budget.

    python benchmarks/quality.py [--seconds 600] [--seeds 0 1] [--cells rnn gru lstm] [--only charrnn|peer]
                                 [--no-peer] [--set lstm.dropout=0.1] [--json results.json]

tiny Shakespeare (../shared/corpora/tinyshakespeare.txt from the repository root) is cut at the
first line break after 90% of its characters: the first part is the training corpus, the rest the
held-out file (both written to a temporary folder, never into the repository). Each run trains
for --seconds (`charrnn train --time`; the peer: benchmarks/peer_quality.py with the same flags),
then both the final checkpoint and the best-validated one are scored on the held-out file
(`charrnn eval --json`; the peer with the same protocol) and the better one is reported, with
which it was. Prints a markdown table to stdout; progress goes to stderr; each run's own stderr
goes to a file in the temporary folder, and only a failing run's last line is shown.
See benchmarks/README.md.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"
PEER = Path(__file__).resolve().parent / "peer_quality.py"
HELD_OUT = 0.10

# Recommended settings per cell: a starting point for the team to tune. Edit them here, or for
# one run with --set KEY=VALUE (every cell) / --set CELL.KEY=VALUE. Both sides get the same ones.
SETTINGS = {
    "rnn": dict(hidden=512, layers=1, dropout=0.2, lr=2e-3, lr_schedule="cosine", warmup=100, min_lr=2e-4,
                weight_decay=0.0, seq=64, batch=32),
    "gru": dict(hidden=512, layers=1, dropout=0.2, lr=2e-3, lr_schedule="cosine", warmup=100, min_lr=2e-4,
                weight_decay=0.0, seq=64, batch=32),
    "lstm": dict(hidden=512, layers=1, dropout=0.2, lr=2e-3, lr_schedule="cosine", warmup=100, min_lr=2e-4,
                 weight_decay=0.0, seq=64, batch=32),
}  # fmt: skip
COMMON = dict(clip=5.0, val_frac=0.05, eval_every=200)  # charrnn's defaults, passed to both sides
BUSY = 0.5  # a load average above this when the runs begin gets a warning under the table
SUMMARY = re.compile(r"trained ([\d,]+) steps at ([\d,.]+) chars/s")


def fail(message):
    sys.exit(f"quality: error: {message}")


def progress(message):
    print(f"quality: {message}", file=sys.stderr, flush=True)


def charrnn_command():
    exe = Path(sys.executable).with_name("charrnn")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "charrnn"]


def apply_overrides(settings, overrides):
    """--set KEY=VALUE / CELL.KEY=VALUE, each value read as the type of the setting it replaces."""
    for item in overrides:
        key, eq, value = item.partition("=")
        cell, dot, name = key.rpartition(".")
        cells = [cell] if dot else list(settings)
        if not eq or any(c not in settings or name not in settings[c] for c in cells):
            fail(f"--set {item}: expected KEY=VALUE or CELL.KEY=VALUE with CELL in {', '.join(settings)} "
                 f"and KEY in {', '.join(next(iter(settings.values())))}")  # fmt: skip
        for c in cells:
            kind = type(settings[c][name])
            try:
                settings[c][name] = kind(float(value)) if kind is int else kind(value)
            except ValueError:
                fail(f"--set {item}: {value!r} is not a {kind.__name__}")


def flags(cell, settings):
    """The training flags of one row, shared by `charrnn train` and peer_quality.py."""
    values = dict(cell=cell, **settings, **COMMON)
    if values["lr_schedule"] == "constant":
        values.pop("min_lr")  # only the cosine decays to it
    # every setting, even one at today's default: the defaults of charrnn train may change
    return [arg for name, value in values.items() for arg in ("--" + name.replace("_", "-"), str(value))]


def describe(s):
    """A short form of a row's settings for the table."""
    text = f"H={s['hidden']} L={s['layers']} p={s['dropout']:g} lr={s['lr']:g} {s['lr_schedule']}"
    if s["lr_schedule"] == "cosine":
        text += f"→{s['min_lr']:g}"
    if s["warmup"]:
        text += f" warmup={s['warmup']}"
    if s["weight_decay"]:
        text += f" wd={s['weight_decay']:g}"
    return text + f" T={s['seq']} B={s['batch']}"


def cpu_name():
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def last_line(path):
    lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def run_logged(cmd, log, env):
    """Run `cmd` with stdout kept and stderr to `log`; (ok, stdout or the last stderr line)."""
    with open(log, "w") as err:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    return (True, done.stdout) if done.returncode == 0 else (False, f"exit {done.returncode}: {last_line(log)}")


def charrnn_run(cell, settings, seed, seconds, split, work, env, device):
    out = work / f"charrnn-{cell}-{seed}.npz"
    log = work / f"charrnn-{cell}-{seed}.log"
    cmd = [*charrnn_command(), "train", str(split["train"]), *flags(cell, settings), "--time", str(seconds),
           "--seed", str(seed), "--out", str(out), "--device", device]  # fmt: skip
    result = dict(command=cmd)
    ok, text = run_logged(cmd, log, env)
    if not ok:
        return dict(result, error=text)
    found = SUMMARY.search(Path(log).read_text(errors="replace"))  # "trained N steps at R chars/s; ..."
    if found:
        result.update(steps=int(found[1].replace(",", "")), chars_per_s=float(found[2].replace(",", "")))
    scores = {}
    for kept, path in (("final", out), ("best", out.with_name(out.name[: -len(".npz")] + ".best.npz"))):
        if path.exists():
            ok, text = run_logged([*charrnn_command(), "eval", str(split["heldout"]), "-m", str(path), "--json",
                                   "--device", device], work / f"eval-{cell}-{seed}-{kept}.log", env)  # fmt: skip
            if not ok:
                return dict(result, error=f"charrnn eval {path.name}: {text}")
            scores[kept] = json.loads(text)["loss"]
    return dict(result, heldout=scores)


def peer_run(cell, settings, seed, seconds, split, work, env, device):
    out = work / f"peer-{cell}-{seed}.json"
    cmd = [sys.executable, str(PEER), str(split["train"]), str(split["heldout"]), *flags(cell, settings),
           "--time", str(seconds), "--seed", str(seed), "--device", device, "--json", str(out)]  # fmt: skip
    ok, text = run_logged(cmd, work / f"peer-{cell}-{seed}.log", env)
    if not ok:
        return dict(command=cmd, error=text)
    return dict(json.loads(out.read_text()), command=cmd)


def split_corpus(source, work):
    """Training and held-out files: cut at the first line break after HELD_OUT's share from the end."""
    text = source.read_text(encoding="utf-8")
    cut = text.find("\n", int(len(text) * (1 - HELD_OUT))) + 1 or len(text)
    split = {"train": work / "train.txt", "heldout": work / "heldout.txt"}
    split["train"].write_text(text[:cut], encoding="utf-8")
    split["heldout"].write_text(text[cut:], encoding="utf-8")
    return split, cut, len(text) - cut


def summarize(runs):
    """(row, cell) -> the table's cells, from the runs that succeeded."""
    rows = {}
    for r in runs:
        rows.setdefault((r["row"], r["cell"]), []).append(r)
    lines = []
    for (row, cell), group in rows.items():
        good = [r for r in group if "loss" in r]
        seeds = " ".join(str(r["seed"]) for r in good)
        if len(good) < len(group):
            seeds += f" ({len(group) - len(good)} failed)"
        if not good:
            lines.append((row, cell, group[0]["settings_text"], seeds, "failed", "", "", ""))
            continue
        losses = [r["loss"] for r in good]
        mean = sum(losses) / len(losses)
        loss = f"{mean:.4f}" + (f" ({min(losses):.4f}–{max(losses):.4f})" if len(losses) > 1 else "")
        kept = ", ".join(sorted({r["kept"] for r in good}))
        steps = [r["steps"] for r in good if r.get("steps") is not None]
        rates = [r["chars_per_s"] for r in good if r.get("chars_per_s") is not None]
        lines.append((row, cell, good[0]["settings_text"], seeds, loss, kept,
                      f"{sum(steps) / len(steps):,.0f}" if steps else "?",
                      f"{sum(rates) / len(rates):,.0f}" if rates else "?"))  # fmt: skip
    head = ("row", "cell", "settings", "seeds", "held-out loss, nats/char: mean (min–max)", "kept", "steps", "chars/s")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(out + ["| " + " | ".join(map(str, line)) + " |" for line in lines])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="training budget of each run (default: 600)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds per row (default: 0 1)")
    parser.add_argument("--cells", nargs="+", choices=tuple(SETTINGS), default=list(SETTINGS), help="rows to run")
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True, help="the PyTorch rows")
    parser.add_argument("--only", choices=("charrnn", "peer"), help="one side only")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="[CELL.]KEY=VALUE",
                        help="change a setting of the table at the top of this file for this run")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help=f"default: {CORPUS}")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both sides compute")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    if not args.corpus.is_file():
        fail(f"corpus {args.corpus} not found (tiny Shakespeare is expected there; or pass --corpus PATH)")
    sides = [s for s in ("charrnn", "peer") if (args.only or s) == s and (args.peer or s != "peer")]
    if not sides:
        fail("--only peer with --no-peer leaves nothing to run")
    settings = {cell: dict(SETTINGS[cell]) for cell in SETTINGS}
    apply_overrides(settings, args.overrides)
    runners = {"charrnn": charrnn_run, "peer": peer_run}
    runs = []
    with tempfile.TemporaryDirectory(prefix="charrnn-quality-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, CHARRNN_CACHE_DIR=str(work / "corpora"))  # the encoded-corpus cache, not the user's
        split, n_train, n_held = split_corpus(args.corpus, work)
        total = len(args.seeds) * len(args.cells) * len(sides)
        load = os.getloadavg()[0]
        print(f"machine: {cpu_name()}, {len(os.sched_getaffinity(0))} usable cores, "
              f"load average {load:.2f}")  # fmt: skip
        print(f"corpus: {args.corpus.name}, {n_train:,} characters to train on, the last {n_held:,} held out; "
              f"{args.seconds:g} s of training per run, device {args.device}\n")  # fmt: skip
        progress(f"{total} runs of {args.seconds:g} s (plus start-up and scoring): about {total * args.seconds / 60:.0f} min")
        try:
            for seed in args.seeds:  # seeds outermost: an interrupted run still has every row once
                for cell in args.cells:
                    for side in sides:
                        progress(f"{side} {cell} seed {seed} ({describe(settings[cell])}) ...")
                        start = time.perf_counter()
                        r = runners[side](cell, settings[cell], seed, args.seconds, split, work, env, args.device)
                        r.update(row="charrnn" if side == "charrnn" else "PyTorch", cell=cell, seed=seed,
                                 settings=dict(settings[cell], **COMMON), settings_text=describe(settings[cell]),
                                 wall_s=time.perf_counter() - start)  # fmt: skip
                        if "error" not in r and not r.get("heldout"):
                            r["error"] = "no checkpoint to score"
                        if "error" in r:
                            progress(f"  failed: {r['error']}")
                        else:
                            r["kept"], r["loss"] = min(r["heldout"].items(), key=lambda kv: kv[1])
                            if len(set(r["heldout"].values())) < len(r["heldout"]):
                                r["kept"] = "final = best"  # the last validation was the best one
                            progress(f"  held-out loss {r['loss']:.4f} ({r['kept']}), {r.get('steps', '?')} steps")
                        runs.append(r)
        except KeyboardInterrupt:
            progress("interrupted: the table shows the runs that finished")
    if runs:
        print(summarize(runs))
    failed = [r for r in runs if "error" in r]
    for r in failed:
        print(f"\n{r['row']} {r['cell']} seed {r['seed']} failed: {r['error']}")
    print("\nkept: which checkpoint scored better on the held-out text (final, or best: the best-validated one).")
    if load > BUSY:
        why = " (and the PyTorch side's OpenMP threads can slow down much more than charrnn's)" if "peer" in sides else ""
        print(f"\nwarning: the load average was {load:.2f} when the runs began: other work shares the cores{why}; "
              "run again when the machine is idle.")
    if args.json:
        report = dict(corpus=str(args.corpus), train_chars=n_train, heldout_chars=n_held, seconds=args.seconds,
                      device=args.device, load_average=load, runs=runs)  # fmt: skip
        args.json.write_text(json.dumps(report, indent=1))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
