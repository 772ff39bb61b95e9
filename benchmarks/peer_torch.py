"""The PyTorch peer: the same vanilla RNN, training loop and sampler, written the ordinary PyTorch way.

    nn.RNN(V, H, tanh) fed one-hot float32 (T, B, V) inputs  ->  nn.Linear(H, V)  ->  mean cross-entropy
    Adam lr 2e-3, clip_grad_norm_(5.0), hidden state carried from window to window and detached.

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


def setup(device):
    torch.set_num_threads(THREADS)
    return torch.device(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeerRNN(nn.Module):
    def __init__(self, V, H):
        super().__init__()
        self.V = V
        self.rnn = nn.RNN(V, H, nonlinearity="tanh", batch_first=False)
        self.out = nn.Linear(H, V)

    def forward(self, x, h):
        """x (T, B) int64 ids, h (1, B, H) -> logits (T, B, V), last state (1, B, H)."""
        hs, h = self.rnn(F.one_hot(x, self.V).float(), h)
        return self.out(hs), h

    def load_charrnn(self, params):
        """Copy a charrnn FlatParams into this module (nn.RNN's second bias b_hh is set to zero)."""
        with torch.no_grad():
            for mine, theirs in ((self.rnn.weight_ih_l0, "Wxh"), (self.rnn.weight_hh_l0, "Whh"),
                                 (self.rnn.bias_ih_l0, "bh"), (self.out.weight, "Why"), (self.out.bias, "by")):
                mine.copy_(torch.from_numpy(np.ascontiguousarray(params[theirs])))
            self.rnn.bias_hh_l0.zero_()
        return self


def train_rates(ids, V, H, B, T, warmup, bounds, device):
    """Steady-state training throughput: `warmup` untimed steps, then characters per second of each
    block of steps between consecutive `bounds` (step counts, the first equal to warmup)."""
    torch.manual_seed(0)
    model = PeerRNN(V, H).to(device)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    streams = stream_view(ids, B)
    per_epoch = windows_per_epoch(streams, T)
    xs, ys = np.empty((T, B), streams.dtype), np.empty((T, B), streams.dtype)
    h = torch.zeros(1, B, H, device=device)

    def step(n):
        nonlocal h
        epoch, k = divmod(n, per_epoch)
        if k == 0:
            h = torch.zeros(1, B, H, device=device)  # every epoch starts from a zero state, as in charrnn
        fill_window(streams, k * T, xs, ys)
        x = torch.from_numpy(xs.astype(np.int64)).to(device)
        y = torch.from_numpy(ys.astype(np.int64)).to(device)
        logits, h_last = model(x, h)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        h = h_last.detach()

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
    """n tokens from one stream, one nn.RNN step at a time, starting from <eos> and h = 0."""
    H = model.rnn.hidden_size
    h = torch.zeros(1, 1, H, device=device)
    x = torch.full((1, 1), EOS_ID, dtype=torch.int64, device=device)
    out = []
    for _ in range(n):
        hs, h = model.rnn(F.one_hot(x, model.V).float(), h)
        probs = torch.softmax(model.out(hs[0, 0]) / temperature, dim=-1)
        x = torch.multinomial(probs, 1).view(1, 1)
        out.append(x)
    return torch.cat(out).view(-1).cpu().numpy()


def sample_rate(params, vocab, n, temperature, repeats, device):
    """Sampling throughput (characters per second, best of `repeats`) of the per-step loop,
    with charrnn's weights `params` copied in; the ids are decoded to text, as charrnn does."""
    torch.manual_seed(0)
    model = PeerRNN(vocab.size, params.hidden).load_charrnn(params).to(device)
    sample_ids(model, 200, temperature, device)  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        text = vocab.decode(sample_ids(model, n, temperature, device))
        best = max(best, len(text) / (time.perf_counter() - start))
    return best
