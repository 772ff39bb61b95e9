"""The PyTorch peer: the same models, training loop and sampler, written the ordinary PyTorch way.

    nn.RNN(V, H, tanh) / nn.LSTM(V, H) / nn.GRU(V, H), num_layers L, fed one-hot float32 (T, B, V)
    inputs  ->  nn.Dropout(p)  ->  nn.Linear(H, V)  ->  mean cross-entropy
    Adam lr 2e-3, clip_grad_norm_(5.0), state carried from window to window and detached.

Dropout: torch's own `dropout=p` between stacked layers (on every layer's output but the last) and
nn.Dropout before the Linear (on the last layer's output): inverted dropout on every layer's
output, never on the recurrence, as in charrnn's model contract. The defaults (rnn, 1 layer, no
dropout) are the vanilla peer bench.py has always measured.

No nn.Embedding: the input is F.one_hot(x, V).float(), as charrnn's model is defined on one-hot inputs.
Windows come from charrnn's own layout (stream_view + fill_window), so both see identical data.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from charrnn.batches import fill_window, stream_view, windows_per_epoch
from charrnn.vocab import EOS_ID

THREADS = 2
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# charrnn's vanilla-RNN checkpoints (before cells existed) -> the names of the model contract
OLD_NAMES = {"Wxh": "weight_ih_l0", "Whh": "weight_hh_l0", "bh": "bias_ih_l0", "Why": "weight_out", "by": "bias_out"}


def setup(device, threads=THREADS):
    torch.set_num_threads(threads)
    return torch.device(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeerRNN(nn.Module):
    def __init__(self, V, H, cell="rnn", layers=1, dropout=0.0):
        super().__init__()
        self.V, self.cell, self.layers = V, cell, layers
        kwargs = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        # torch warns about (and ignores) dropout with one layer: there it is only the nn.Dropout below
        self.rnn = CELLS[cell](V, H, num_layers=layers, dropout=dropout if layers > 1 else 0.0, batch_first=False, **kwargs)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()  # the vanilla rows' forward unchanged
        self.out = nn.Linear(H, V)

    def forward(self, x, state):
        """x (T, B) int64 ids, state from zero_state -> logits (T, B, V), last state."""
        hs, state = self.rnn(F.one_hot(x, self.V).float(), state)
        return self.out(self.drop(hs)), state

    def zero_state(self, B, device):
        """(L, B, H) zeros; a pair (h, c) for lstm."""
        h = torch.zeros(self.layers, B, self.rnn.hidden_size, device=device)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h

    def one_bias(self):
        """Zero and freeze bias_hh for rnn and lstm, where it only adds to bias_ih: the parameters
        are then exactly charrnn's (gru's b_hh sits inside r * (W_hh h + b_hh) and stays)."""
        if self.cell != "gru":
            for k in range(self.layers):
                bias = getattr(self.rnn, f"bias_hh_l{k}")
                with torch.no_grad():
                    bias.zero_()
                bias.requires_grad_(False)
        return self

    def load_charrnn(self, params):
        """Copy charrnn's weights (a FlatParams or a checkpoint's {name: array}, named as in the model
        contract or, for the vanilla RNN, Wxh/Whh/bh/Why/by) into this module. bias_hh is set to
        zero for rnn and lstm, which keep one bias."""
        mine = {f"{n}_l{k}": getattr(self.rnn, f"{n}_l{k}") for k in range(self.layers)
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}  # fmt: skip
        mine.update(weight_out=self.out.weight, bias_out=self.out.bias)
        with torch.no_grad():
            for name, tensor in mine.items():
                value = lookup(params, name)
                if value is None:
                    if not name.startswith("bias_hh") or self.cell == "gru":
                        raise KeyError(f"charrnn's parameters have no {name} (a {self.cell} of {self.layers} layers?)")
                    tensor.zero_()
                else:
                    tensor.copy_(torch.from_numpy(np.ascontiguousarray(value, np.float32)))
        return self


def lookup(params, name):
    """params[name] under the contract's name or the vanilla RNN's old one; None when absent.
    (A FlatParams has __getitem__ but no `in`.)"""
    for key in [name] + [old for old, new in OLD_NAMES.items() if new == name]:
        try:
            return params[key]
        except KeyError:
            continue
    return None


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def train_rates(ids, V, H, B, T, warmup, bounds, device, cell="rnn", layers=1, dropout=0.0):
    """Steady-state training throughput: `warmup` untimed steps, then characters per second of each
    block of steps between consecutive `bounds` (step counts, the first equal to warmup)."""
    torch.manual_seed(0)
    model = PeerRNN(V, H, cell, layers, dropout).to(device)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    streams = stream_view(ids, B)
    per_epoch = windows_per_epoch(streams, T)
    xs, ys = np.empty((T, B), streams.dtype), np.empty((T, B), streams.dtype)
    state = model.zero_state(B, device)

    def step(n):
        nonlocal state
        epoch, k = divmod(n, per_epoch)
        if k == 0:
            state = model.zero_state(B, device)  # every epoch starts from a zero state, as in charrnn
        fill_window(streams, k * T, xs, ys)
        x = torch.from_numpy(xs.astype(np.int64)).to(device)
        y = torch.from_numpy(ys.astype(np.int64)).to(device)
        logits, last = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        state = detach(last)

    for n in range(warmup):
        step(n)
    rates = []
    for first, end in zip(bounds, bounds[1:]):
        sync(device)
        start = time.perf_counter()
        for n in range(first, end):
            step(n)
        sync(device)
        rates.append((end - first) * T * B / (time.perf_counter() - start))
    return rates


@torch.no_grad()
def sample_ids(model, n, temperature, device):
    """n tokens from one stream, one step of the recurrent module at a time, from <eos> and a zero state."""
    state = model.zero_state(1, device)
    x = torch.full((1, 1), EOS_ID, dtype=torch.int64, device=device)
    out = []
    for _ in range(n):
        hs, state = model.rnn(F.one_hot(x, model.V).float(), state)
        probs = torch.softmax(model.out(hs[0, 0]) / temperature, dim=-1)
        x = torch.multinomial(probs, 1).view(1, 1)
        out.append(x)
    return torch.cat(out).view(-1).cpu().numpy()


def sample_rate(params, vocab, n, temperature, repeats, device, cell="rnn", layers=1):
    """Sampling throughput (characters per second, best of `repeats`) of the per-step loop,
    with charrnn's weights `params` copied in; the ids are decoded to text, as charrnn does."""
    torch.manual_seed(0)
    H = lookup(params, "weight_hh_l0").shape[1]
    model = PeerRNN(vocab.size, H, cell, layers).load_charrnn(params).to(device).eval()
    sample_ids(model, 200, temperature, device)  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        text = vocab.decode(sample_ids(model, n, temperature, device))
        best = max(best, len(text) / (time.perf_counter() - start))
    return best


@torch.no_grad()
def stream_loss_sum(model, rows, T, device):
    """(total cross-entropy, positions) over a (B, L+1) stream view (charrnn.batches), each row run
    from a zero state with the state carried across windows of T steps: charrnn.evaluate.rows_loss."""
    B, L = rows.shape[0], rows.shape[1] - 1
    T = min(T, L)
    xs, ys = np.empty((T, B), rows.dtype), np.empty((T, B), rows.dtype)
    state = model.zero_state(B, device)
    total = 0.0
    for start in range(0, L, T):
        t = min(T, L - start)
        fill_window(rows, start, xs[:t], ys[:t])
        x = torch.from_numpy(xs[:t].astype(np.int64)).to(device)
        y = torch.from_numpy(ys[:t].astype(np.int64)).to(device)
        logits, state = model(x, state)
        total += float(F.cross_entropy(logits.reshape(-1, model.V).double(), y.reshape(-1), reduction="sum"))
    return total, B * L
