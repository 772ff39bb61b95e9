"""Loss of a model on a text: the shared routine behind validation during training and `charrnn eval`.

Protocol: the text is encoded as in training (unknown characters -> UNK, EOS after each record),
preceded by one EOS (the record-start context the model saw after every earlier record), and run
as one stream from h = 0. The loss is the mean over the text's tokens of -log p(token | everything
before it), in nats; bits per character = loss / ln 2; perplexity = exp(loss).

With device="cuda" the windows run on the GPU (charrnn.cuda_backend: DeviceParams, window_loss_sum;
charrnn.network_cuda: DeviceWorkspace); the loss is the same up to float32 rounding.
"""

import math
from dataclasses import dataclass

import numpy as np

from charrnn.batches import fill_window, stream_view
from charrnn.device import resolve_device
from charrnn.network import Workspace, forward_loss_sum
from charrnn.parallel import split_streams
from charrnn.threads import compute_threads
from charrnn.vocab import EOS_ID

EVAL_WINDOW = 512  # steps per compiled call; any value gives the same loss


@dataclass
class EvalResult:
    loss: float  # nats per token
    chars: int  # tokens predicted

    @property
    def bpc(self):
        return self.loss / math.log(2)

    @property
    def perplexity(self):
        return math.exp(self.loss)

    def as_dict(self):
        return {"loss": self.loss, "bpc": self.bpc, "perplexity": self.perplexity, "chars": self.chars}


def stream_loss(params, ids, streams, T):
    """Total loss and count over ids (N,) cut into `streams` rows, each run from h = 0 with the
    state carried across windows of T steps. Every position of every row is scored once.
    """
    return rows_loss(params, stream_view(ids, streams), T)


def rows_loss(params, rows, T):
    """stream_loss over a (B, L+1) stream view (see charrnn.batches)."""
    B, L = rows.shape[0], rows.shape[1] - 1
    T = min(T, L)
    ws = Workspace(params.arch, T, B, params.flat.dtype)
    xs = np.empty((T, B), rows.dtype)
    ys = np.empty((T, B), rows.dtype)
    state = np.zeros(params.arch.state_shape(B), params.flat.dtype)  # (L, S, B, H)
    total = 0.0
    for start in range(0, L, T):
        t = min(T, L - start)
        fill_window(rows, start, xs[:t], ys[:t])
        total += forward_loss_sum(params, xs[:t], ys[:t], state, ws)
        state[...] = ws.state
    return total, B * L


def device_rows_loss(dparams, rows, T, ws=None):
    """rows_loss on the CUDA device: dparams a cuda_backend.DeviceParams, rows a (B, L+1) stream
    view on the host, ws a network_cuda.DeviceWorkspace of B streams and at least min(T, L) steps
    (made when None). Only each window's ids go to the device, and its summed loss comes back."""
    from charrnn import cuda_backend
    from charrnn.network_cuda import DeviceWorkspace

    B, L = rows.shape[0], rows.shape[1] - 1
    T = min(T, L)
    if ws is None:
        ws = DeviceWorkspace(dparams.arch, T, B)
    xs = np.empty((T, B), rows.dtype)
    ys = np.empty((T, B), rows.dtype)
    ws.state.copy_to_device(np.zeros(ws.state.shape, np.float32))  # (L, S, B, H): each stream from 0
    total = 0.0
    for start in range(0, L, T):
        t = min(T, L - start)
        fill_window(rows, start, xs[:t], ys[:t])
        total += cuda_backend.window_loss_sum(dparams, ws, xs[:t], ys[:t])  # carries ws.state
    return total, B * L


def evaluate_ids(params, ids, eos_id=EOS_ID, device="cpu"):
    """EvalResult for encoded text ids (N,) under the protocol above, computed on `device`
    ("cpu", "cuda" or "auto")."""
    device = resolve_device(device)
    stream = np.concatenate([np.array([eos_id], ids.dtype), ids])
    if device == "cuda":
        from charrnn import cuda_backend

        total, count = device_rows_loss(cuda_backend.DeviceParams.from_host(params), stream_view(stream, 1), EVAL_WINDOW)
    else:
        total, count = stream_loss(params, stream, 1, EVAL_WINDOW)
    return EvalResult(loss=total / count, chars=count)


def validation_loss(params, rows, T, runner=None):
    """Mean loss on the validation rows (charrnn.batches.split_rows), each from h = 0 in windows of T, their
    groups spread over the threads of `runner` (a charrnn.parallel.WindowRunner) when given."""
    workers = 1 if runner is None else min(runner.workers, rows.shape[0])
    groups = [rows[a:b] for a, b in split_streams(rows.shape[0], workers)]
    run_all = map if runner is None else runner.map
    parts = list(run_all(lambda group: rows_loss(params, group, T), groups))
    return sum(total for total, _ in parts) / sum(count for _, count in parts)


def evaluate_files(model, paths, encoding_errors="strict", stdin=None, device="cpu"):
    """(EvalResult, unknown characters) for text files (or "-") under the model's vocabulary.
    device: "cpu", "cuda" or "auto" (charrnn.device.resolve_device)."""
    from charrnn.corpus import load_corpus

    device = resolve_device(device)
    corpus = load_corpus(paths, lines=model.lines, encoding_errors=encoding_errors, vocab=model.vocab, stdin=stdin)
    with compute_threads():
        result = evaluate_ids(model.params, corpus.ids, EOS_ID, device)
    return result, corpus.unknown
