"""Loss of a model on a text: the shared routine behind validation during training and `charrnn eval`.

Protocol: the text is encoded as in training (unknown characters -> UNK, EOS after each record),
preceded by one EOS (the record-start context the model saw after every earlier record), and run
as one stream from h = 0. The loss is the mean over the text's tokens of -log p(token | everything
before it), in nats; bits per character = loss / ln 2; perplexity = exp(loss).
"""

import math
from dataclasses import dataclass

import numpy as np

from charrnn.batches import stream_view
from charrnn.model import Workspace, forward_loss_sum
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
    ws = Workspace.allocate(T, B, params.hidden, params.vocab_size, params.flat.dtype)
    xs = np.empty((T, B), rows.dtype)
    ys = np.empty((T, B), rows.dtype)
    h = np.zeros((B, params.hidden), params.flat.dtype)
    total = 0.0
    for start in range(0, L, T):
        t = min(T, L - start)
        xs[:t] = rows[:, start : start + t].T
        ys[:t] = rows[:, start + 1 : start + t + 1].T
        total += forward_loss_sum(params, xs[:t], ys[:t], h, ws)
        h[...] = ws.hs[t]
    return total, B * L


def evaluate_ids(params, ids, eos_id=EOS_ID):
    """EvalResult for encoded text ids (N,) under the protocol above."""
    stream = np.concatenate([np.array([eos_id], ids.dtype), ids])
    total, count = stream_loss(params, stream, 1, EVAL_WINDOW)
    return EvalResult(loss=total / count, chars=count)


def validation_loss(params, ids, batch, T, runner=None):
    """Mean loss on held-out ids, as up to `batch` parallel streams (each from h = 0), their
    groups spread over the threads of `runner` (a charrnn.parallel.WindowRunner) when given."""
    rows = stream_view(ids, max(1, min(batch, (len(ids) - 1) // T)))
    workers = 1 if runner is None else min(runner.workers, rows.shape[0])
    groups = [rows[a:b] for a, b in split_streams(rows.shape[0], workers)]
    run_all = map if runner is None else runner.map
    parts = list(run_all(lambda group: rows_loss(params, group, T), groups))
    return sum(total for total, _ in parts) / sum(count for _, count in parts)


def evaluate_files(model, paths, encoding_errors="strict", stdin=None):
    """(EvalResult, unknown characters) for text files (or "-") under the model's vocabulary."""
    from charrnn.corpus import load_corpus

    corpus = load_corpus(paths, lines=model.lines, encoding_errors=encoding_errors, vocab=model.vocab, stdin=stdin)
    with compute_threads():
        result = evaluate_ids(model.params, corpus.ids, EOS_ID)
    return result, corpus.unknown
