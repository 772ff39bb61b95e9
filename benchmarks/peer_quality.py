"""One quality run of the PyTorch peer: train for a wall-clock budget, then score a held-out text,
the way `charrnn train --time S` and `charrnn eval` do it. benchmarks/quality.py runs it as a
subprocess, the same way it runs `charrnn train`, so both sides start alike and their progress
(stderr) is kept out of the way.

    python benchmarks/peer_quality.py TRAIN HELDOUT --cell lstm --layers 2 --dropout 0.2 --hidden 512 \
        --lr 2e-3 --lr-schedule cosine --warmup 100 --min-lr 2e-4 --time 600 --seed 0 --json out.json

What it mirrors of charrnn (so that the two losses are comparable):
- data: charrnn's vocabulary and encoding of TRAIN (load_corpus), the last --val-frac of it held
  out for validation (at most charrnn.train.VAL_MAX_TOKENS), the rest cut into --batch streams and
  windows of --seq steps (stream_view + fill_window), the state reset to zero at each epoch start;
- validation every --eval-every steps and after the last one, as up to --batch streams from a zero
  state (charrnn.evaluate.validation_rows); the best validated weights are kept, as `.best.npz`;
- the budget: the clock starts at the first step and the run stops after the step that reaches
  --time seconds, validation included;
- chars/s as charrnn's summary line counts it: without the first step and without validation;
- the held-out score: HELDOUT encoded with TRAIN's vocabulary, one stream that starts with <eos>,
  from a zero state, in eval mode (no dropout): charrnn.evaluate.evaluate_ids;
- the learning rate: charrnn.schedule's warm-up, then constant or cosine (a time-bound run's
  cosine on the fraction of --time used).
Optimizer: torch's AdamW (betas 0.9/0.999, eps 1e-8, as charrnn's Adam), weight decay on the
weight matrices only, clip_grad_norm_(--clip). bias_hh is zeroed and frozen for rnn and lstm
(PeerRNN.one_bias), so the peer has exactly charrnn's parameters. Weights start as torch's default.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import peer_torch
from charrnn.batches import fill_window, split_train_val, stream_view, windows_per_epoch
from charrnn.corpus import load_corpus
from charrnn.evaluate import EVAL_WINDOW, validation_rows
from charrnn.schedule import Schedule
from charrnn.vocab import EOS_ID

try:
    from charrnn.train import VAL_MAX_TOKENS
except ImportError:  # moved or renamed: charrnn's value when this was written
    VAL_MAX_TOKENS = 1 << 18
PROGRESS_EVERY = 10.0  # seconds between progress lines on stderr, as charrnn's plain progress


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("train", help="training text (charrnn's corpus)")
    p.add_argument("heldout", help="text to score after training")
    p.add_argument("--json", required=True, help="where to write the result")
    p.add_argument("--cell", choices=sorted(peer_torch.CELLS), default="rnn")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--min-lr", type=float, help="where the cosine ends (default: a tenth of --lr, as charrnn)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--time", type=float, required=True, help="seconds of training")
    p.add_argument("--steps", type=int, help="stop after this many steps, if that comes before --time (equal-step comparisons)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-frac", type=float, default=0.05)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: one per usable core, as charrnn)")
    return p.parse_args()


def learning_rate(args, step, elapsed):
    """The rate of the update at `step` (0-based), `elapsed` seconds into the run: charrnn's own
    schedule (charrnn.schedule), planned over --steps when given, else over --time, as charrnn plans
    a step-bound or a time-bound run."""
    plan = Schedule(args.lr, args.lr_schedule, args.warmup, args.min_lr, total=args.steps or None, time_limit=args.time)
    return plan.rate(step, 0, elapsed)


def optimizer(model, args):
    """AdamW with decoupled weight decay on the weight matrices only (not on biases)."""
    groups = {True: [], False: []}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups[not name.rsplit(".", 1)[-1].startswith("bias")].append(param)
    return torch.optim.AdamW([{"params": groups[True], "weight_decay": args.weight_decay},
                              {"params": groups[False], "weight_decay": 0.0}],
                             lr=args.lr, betas=(0.9, 0.999), eps=1e-8)  # fmt: skip


def mean_loss(model, rows, T, device):
    model.eval()
    total, count = peer_torch.stream_loss_sum(model, rows, T, device)
    model.train()
    return total / count


def main():
    args = parse()
    args.min_lr = args.lr / 10 if args.min_lr is None else args.min_lr
    threads = args.threads or len(os.sched_getaffinity(0))
    device = peer_torch.setup(args.device, threads)
    corpus = load_corpus([args.train])
    V, T, B = corpus.vocab.size, args.seq, args.batch
    train_ids, val_ids = split_train_val(corpus.ids, args.val_frac)
    val_ids = val_ids[:VAL_MAX_TOKENS]
    held = load_corpus([args.heldout], vocab=corpus.vocab)
    held_rows = stream_view(np.concatenate([np.array([EOS_ID], held.ids.dtype), held.ids]), 1)
    val_rows = validation_rows(val_ids, B, T) if len(val_ids) else None

    torch.manual_seed(args.seed)
    model = peer_torch.PeerRNN(V, args.hidden, args.cell, args.layers, args.dropout).one_bias().to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer(model, args)
    streams = stream_view(train_ids, B)
    per_epoch = windows_per_epoch(streams, T)
    xs, ys = np.empty((T, B), streams.dtype), np.empty((T, B), streams.dtype)

    step, state, loss = 0, None, math.nan
    best_val = last_val = None
    best_weights = None
    evaluated_at = -1
    excluded = 0.0  # validation time, left out of chars/s
    origin = None  # the end of the first step, where chars/s starts counting
    last_print = start = time.perf_counter()

    def validate():
        nonlocal best_val, last_val, best_weights, excluded, evaluated_at
        t0 = time.perf_counter()
        last_val = mean_loss(model, val_rows, T, device)
        if best_val is None or last_val < best_val:
            best_val = last_val
            best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        evaluated_at = step
        excluded += time.perf_counter() - t0
        print(f"peer: step {step:,}  val {last_val:.4f}", file=sys.stderr, flush=True)

    while True:
        epoch, k = divmod(step, per_epoch)
        if k == 0:
            state = model.zero_state(B, device)  # every epoch starts from a zero state, as in charrnn
        lr = learning_rate(args, step, time.perf_counter() - start)
        for group in opt.param_groups:
            group["lr"] = lr
        fill_window(streams, k * T, xs, ys)
        x = torch.from_numpy(xs.astype(np.int64)).to(device)
        y = torch.from_numpy(ys.astype(np.int64)).to(device)
        logits, last = model(x, state)
        loss_t = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss_t.backward()
        if args.clip > 0:
            nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        state = peer_torch.detach(last)
        loss = float(loss_t.detach())
        if not math.isfinite(loss):
            sys.exit(f"peer: error: training diverged at step {step + 1:,} (loss {loss}); try a lower --lr")
        step += 1
        peer_torch.sync(device)
        now = time.perf_counter()
        elapsed = now - start
        origin = now if origin is None else origin
        if now - last_print >= PROGRESS_EVERY:
            last_print = now
            print(f"peer: step {step:,}  epoch {step / per_epoch:.2f}  loss {loss:.4f}  val {last_val}  lr {lr:.2e}",
                  file=sys.stderr, flush=True)  # fmt: skip
        if val_rows is not None and step % args.eval_every == 0:
            validate()
        if elapsed >= args.time or step == args.steps:
            break
    if val_rows is not None and evaluated_at != step:
        validate()
    busy = time.perf_counter() - origin - excluded
    rate = (step - 1) * T * B / busy if step > 1 and busy > 0 else 0.0

    scores = {"final": mean_loss(model, held_rows, EVAL_WINDOW, device)}
    if best_weights is not None and (evaluated_at, best_val) == (step, last_val):
        scores["best"] = scores["final"]  # the last validation was the best: the same weights
    elif best_weights is not None:
        model.load_state_dict(best_weights)
        scores["best"] = mean_loss(model, held_rows, EVAL_WINDOW, device)
    result = dict(steps=step, chars_per_s=rate, seconds=time.perf_counter() - start, threads=threads,
                  last_train_loss=loss, best_val_loss=best_val, last_val_loss=last_val, final_lr=lr,
                  heldout=scores, heldout_chars=held_rows.shape[1] - 1, windows_per_epoch=per_epoch)  # fmt: skip
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print(f"peer: trained {step:,} steps at {rate:,.0f} chars/s; held-out {scores}", file=sys.stderr)


if __name__ == "__main__":
    main()
