"""The quality benchmark's peer: a character-level RNN trained by an ordinary PyTorch loop, as a
user would write it, sharing no code with charrnn.

    python benchmarks/peer_plain.py TRAIN HELDOUT --json out.json [--cell gru] [--hidden 512]
        [--layers 1] [--dropout 0] [--seq 64] [--batch 32] [--lr 2e-3] [--lr-schedule constant|cosine]
        [--warmup 0] [--min-lr LR] [--clip 5] [--steps N] [--time S] [--trace-every STEPS] [--target LOSS]
        [--seed 0] [--threads 0]

The loop: the text's characters sorted into a vocabulary; the ids cut into --batch contiguous
streams read in windows of --seq steps with the hidden state carried from window to window and
detached (char-rnn's layout); one-hot inputs into nn.GRU / nn.LSTM / nn.RNN, nn.Dropout on the last
layer's output (torch's own dropout between stacked layers), nn.Linear, mean cross-entropy, Adam,
clip_grad_norm_, the rate set by hand each step (a linear warm-up, then constant or a cosine down to
--min-lr over the rest of the run: over --steps, or over --time when only that bounds it). No validation runs
inside the budget, so the clock counts training steps only.

Scoring, after training (and every --trace-every steps, with the clock stopped): the
held-out text, every character the training text also has, as one stream from a zero state in
float64, predicting each character from those before it. The first character has no context here;
charrnn predicts it from its <eos> token, and predicts an <eos> after the last: two predictions of
111,540 on tiny Shakespeare's last tenth. With charrnn's weights copied in, the two scorers differed
by 2e-4 nats/char on 20,000 characters of it (a 30-step model, whose <eos> costs more than a trained
one's). --target stops the run at the first trace at or below it.
"""

import argparse
import copy
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("train")
    p.add_argument("heldout")
    p.add_argument("--json", required=True, help="where to write the result")
    p.add_argument("--cell", choices=sorted(CELLS), default="gru")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--min-lr", type=float, help="where the cosine ends (default: a tenth of --lr)")
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--steps", type=int, help="stop after this many steps")
    p.add_argument("--time", type=float, help="stop after this many seconds of training")
    p.add_argument("--trace-every", type=int, help="score the held-out text every this many steps")
    p.add_argument("--target", type=float, help="stop at the first trace whose held-out loss is at or below this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: one per usable core)")
    args = p.parse_args()
    if args.steps is None and args.time is None:
        p.error("give --steps, --time or both")
    return args


class CharRNN(nn.Module):
    def __init__(self, V, H, cell, layers, dropout):
        super().__init__()
        self.V = V
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.rnn = CELLS[cell](V, H, num_layers=layers, dropout=dropout if layers > 1 else 0.0, **extra)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(H, V)

    def forward(self, x, state=None):  # x (T, B) ids -> logits (T, B, V), state
        hs, state = self.rnn(F.one_hot(x, self.V).to(self.head.weight.dtype), state)
        return self.head(self.drop(hs)), state


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


@torch.no_grad()
def heldout_loss(model, ids, window=1024):
    """Mean -log p(char | the chars before it) over ids[1:], one stream from a zero state, float64."""
    scorer = copy.deepcopy(model).double().eval()
    total, state = 0.0, None
    for a in range(0, len(ids) - 1, window):
        x = ids[a : a + window + 1]
        logits, state = scorer(x[:-1].view(-1, 1), state)
        total += F.cross_entropy(logits.view(-1, scorer.V), x[1:], reduction="sum").item()
    return total / (len(ids) - 1)


def rate_at(args, step, trained):
    """The rate of update `step` (0-based), `trained` seconds in: a linear warm-up over the first
    --warmup steps, then constant or a cosine over the rest of --steps (else of --time)."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if args.lr_schedule == "constant":
        return args.lr
    if args.steps:
        span = args.steps - args.warmup
        progress = (step - args.warmup) / span if span > 0 else 1.0
    else:
        progress = trained / args.time
    progress = min(1.0, max(0.0, progress))
    return args.min_lr + (args.lr - args.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def main():
    args = parse()
    args.min_lr = args.lr / 10 if args.min_lr is None else args.min_lr
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    torch.manual_seed(args.seed)
    text = open(args.train, encoding="utf-8").read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    held_text = open(args.heldout, encoding="utf-8").read()
    held = torch.tensor([index[c] for c in held_text if c in index], dtype=torch.long)
    V, B, T = len(chars), args.batch, args.seq

    n = (len(data) - 1) // B  # B contiguous streams of n steps; targets are the inputs shifted by one
    xs = data[: B * n].view(B, n).t().contiguous()  # (n, B)
    ys = data[1 : B * n + 1].view(B, n).t().contiguous()
    per_epoch = n // T

    model = CharRNN(V, args.hidden, args.cell, args.layers, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    trace, state, step, trained = [], None, 0, 0.0
    last_loss, reached = math.nan, None
    clock = time.perf_counter()
    while True:
        k = step % per_epoch
        if k == 0:
            state = None  # each epoch starts from a zero state
        for group in opt.param_groups:
            group["lr"] = rate_at(args, step, trained)
        logits, state = model(xs[k * T : (k + 1) * T], state)
        loss = F.cross_entropy(logits.view(-1, V), ys[k * T : (k + 1) * T].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        state = detach(state)
        step += 1
        now = time.perf_counter()
        trained += now - clock
        last_loss = loss.item()
        if not math.isfinite(last_loss):
            sys.exit(f"peer: error: training diverged at step {step:,}")
        done = (args.steps is not None and step >= args.steps) or (args.time is not None and trained >= args.time)
        if args.trace_every and (step % args.trace_every == 0 or done):
            trace.append(dict(seconds=trained, step=step, heldout=heldout_loss(model, held)))
            print(f"peer: {trained:.0f} s, step {step:,}, held-out {trace[-1]['heldout']:.4f}", file=sys.stderr, flush=True)
            if args.target is not None and trace[-1]["heldout"] <= args.target:
                reached, done = trace[-1], True
        clock = time.perf_counter()  # scoring is not training time
        if done:
            break
    final = trace[-1]["heldout"] if trace and trace[-1]["step"] == step else heldout_loss(model, held)
    result = dict(steps=step, seconds=trained, chars_per_s=step * B * T / trained, heldout=final, final_train_loss=last_loss,
                  epochs=step / per_epoch, heldout_chars=len(held) - 1, trace=trace, reached=reached,
                  threads=torch.get_num_threads())  # fmt: skip
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print(f"peer: {step:,} steps in {trained:.0f} s at {result['chars_per_s']:,.0f} chars/s; held-out {final:.4f}",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
