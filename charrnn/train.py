"""The training loop: windows -> loss and gradients -> clip -> optimizer step, with evaluation and
checkpoints. It never prints: it reports events to a callback and raises CharrnnError.

Events passed to `report(kind, info)`:
    "start"    info: params, train_tokens, val_tokens, windows_per_epoch, total_steps (None: time-bound)
    "step"     info: step, total_steps, epoch, loss, chars_per_s, elapsed, eta (seconds or None)
    "eval"     info: step, val_loss, best_val_loss, improved
    "save"     info: step, path, best (bool)
"""

import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn import __version__
from charrnn.batches import fill_window, split_train_val, stream_view, windows_per_epoch
from charrnn.checkpoint import Checkpoint, save_checkpoint
from charrnn.config import DEFAULT_EPOCHS, TrainConfig
from charrnn.errors import CharrnnError, UsageError
from charrnn.evaluate import validation_loss
from charrnn.kernels import cpu
from charrnn.model import init_params
from charrnn.optim import Optimizer
from charrnn.parallel import WindowRunner
from charrnn.threads import compute_threads
from charrnn.vocab import EOS_ID, UNK_ID


VAL_MAX_TOKENS = 1 << 18  # validation scores at most this much of the held-out tail, to stay quick


@dataclass
class TrainResult:
    steps: int
    chars_per_s: float
    best_val_loss: float | None
    last_val_loss: float | None
    checkpoint: str
    best_checkpoint: str | None
    stopped_early: bool


def best_path(out):
    """`model.npz` -> `model.best.npz`."""
    out = Path(out)
    stem = out.name[: -len(".npz")] if out.name.endswith(".npz") else out.name
    return str(out.with_name(stem + ".best.npz"))


def check_writable(out):
    folder = Path(out).resolve().parent
    if not folder.is_dir():
        raise UsageError(f"cannot write checkpoint {out}: folder {folder} does not exist")
    if Path(out).is_dir():
        raise UsageError(f"cannot write checkpoint {out}: it is a folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write checkpoint {out}: folder {folder} is not writable")


def plan_steps(cfg, per_epoch):
    """Total steps, or None when only the time limit bounds the run."""
    if cfg.steps is not None:
        return cfg.steps
    if cfg.epochs is not None:
        return max(1, math.ceil(cfg.epochs * per_epoch))
    if cfg.time_limit is not None:
        return None
    return DEFAULT_EPOCHS * per_epoch


class _Run:
    """Everything a checkpoint holds, in one place."""

    def __init__(self, corpus, cfg):
        self.corpus, self.cfg = corpus, cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.params = init_params(cfg.hidden, corpus.vocab.size, self.rng)
        self.grads = self.params.like()
        self.opt = Optimizer(cfg.optimizer, self.params)
        self.h = np.zeros((cfg.batch, cfg.hidden), np.float32)  # (B, H) carried across windows
        self.step = 0
        self.best_val_loss = None
        self.last_val_loss = None

    def checkpoint(self, per_epoch):
        vocab = self.corpus.vocab
        meta = {
            "unk_id": UNK_ID,
            "eos_id": EOS_ID,
            "model": {"cell": "rnn", "hidden": self.cfg.hidden, "vocab_size": vocab.size},
            "step": self.step,
            "best_val_loss": self.best_val_loss,
            "last_val_loss": self.last_val_loss,
            "lines": self.cfg.lines,
            "corpus": {"fingerprint": self.corpus.fingerprint, "chars": self.corpus.n_chars},
            "train": self.cfg.to_dict(),
            "windows_per_epoch": per_epoch,
            "optimizer_updates": self.opt.updates,
            "rng": self.rng.bit_generator.state,
            "charrnn_version": __version__,
        }
        state = dict(self.opt.state_arrays(), h_carry=self.h.copy())
        return Checkpoint(params=self.params.as_dict(), vocab=list(vocab.tokens), meta=meta, state=state)


def train(corpus, cfg: TrainConfig, out="charrnn.npz", report=lambda kind, info: None, should_stop=lambda: False):
    """Train a fresh model on corpus (charrnn.corpus.Corpus) and checkpoint it to `out`."""
    check_writable(out)
    train_ids, val_ids = split_train_val(corpus.ids, cfg.val_frac)
    val_ids = val_ids[:VAL_MAX_TOKENS]
    T, B = cfg.seq, cfg.batch
    if (len(train_ids) - 1) // B < T:
        raise UsageError(
            f"the corpus gives {len(train_ids)} training tokens, too few for --batch {B} x --seq {T} "
            f"(needs at least {B * T + 1}); lower --batch or --seq"
        )
    streams = stream_view(train_ids, B)  # (B, L+1)
    per_epoch = windows_per_epoch(streams, T)
    total = plan_steps(cfg, per_epoch)
    run = _Run(corpus, cfg)
    report(
        "start",
        dict(
            params=run.params.flat.size,
            train_tokens=len(train_ids),
            val_tokens=len(val_ids),
            windows_per_epoch=per_epoch,
            total_steps=total,
        ),
    )
    with compute_threads(), WindowRunner(run.params, T, B, streams.dtype, workers=cfg.threads or None) as runner:
        stopped_early, rate = _loop(run, runner, streams, val_ids, per_epoch, total, out, report, should_stop)
    return TrainResult(
        steps=run.step,
        chars_per_s=rate,
        best_val_loss=run.best_val_loss,
        last_val_loss=run.last_val_loss,
        checkpoint=str(out),
        best_checkpoint=best_path(out) if run.best_val_loss is not None else None,
        stopped_early=stopped_early,
    )


def _loop(run, runner, streams, val_ids, per_epoch, total, out, report, should_stop):
    cfg = run.cfg
    T, B = cfg.seq, cfg.batch
    xs = np.empty((T, B), streams.dtype)
    ys = np.empty((T, B), streams.dtype)
    start_time = time.perf_counter()
    speed = _Throughput()
    stopped_early = False
    saved_step = -1

    def save(best):
        with speed.paused():
            return _save(best)

    def _save(best):
        ckpt = run.checkpoint(per_epoch)
        save_checkpoint(out, ckpt)
        report("save", dict(step=run.step, path=str(out), best=False))
        if best:
            save_checkpoint(best_path(out), ckpt)
            report("save", dict(step=run.step, path=best_path(out), best=True))
        return run.step

    def evaluate():
        with speed.paused():
            loss = float(validation_loss(run.params, val_ids, B, T, runner))
        improved = run.best_val_loss is None or loss < run.best_val_loss
        run.last_val_loss = loss
        if improved:
            run.best_val_loss = loss
        report("eval", dict(step=run.step, val_loss=loss, best_val_loss=run.best_val_loss, improved=improved))
        return improved

    while total is None or run.step < total:
        epoch, k = divmod(run.step, per_epoch)
        if k == 0:
            run.h[...] = 0.0  # every epoch starts from a zero state
        fill_window(streams, k * T, xs, ys)
        loss = runner.loss_and_grads(run.params, run.grads, xs, ys, run.h)  # carries run.h forward
        norm = cpu.clip_by_global_norm(run.grads.flat, cfg.clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise CharrnnError(
                f"training diverged at step {run.step + 1} (loss {loss}, gradient norm {norm}); "
                f"the last good checkpoint is kept; try a lower --lr or --clip"
            )
        run.opt.step(run.params, run.grads, cfg.learning_rate * cfg.lr_decay**epoch)
        run.step += 1

        now = time.perf_counter()
        rate = speed.add(now, T * B)
        elapsed = now - start_time
        eta = None
        if rate > 0:
            left = [] if total is None else [(total - run.step) * T * B / rate]
            if cfg.time_limit is not None:
                left.append(max(0.0, cfg.time_limit - elapsed))
            eta = min(left) if left else None
        report("step", dict(step=run.step, total_steps=total, epoch=run.step / per_epoch, loss=loss, chars_per_s=rate, elapsed=elapsed, eta=eta))

        improved = False
        if len(val_ids) and run.step % cfg.eval_every == 0:
            improved = evaluate()
        if improved or run.step % cfg.save_every == 0:
            saved_step = save(best=improved)
        if cfg.time_limit is not None and elapsed >= cfg.time_limit:
            break
        if should_stop():
            stopped_early = True
            break

    improved = False
    if len(val_ids) and (run.last_val_loss is None or run.step % cfg.eval_every):
        improved = evaluate()  # unless the last step was just evaluated
    if saved_step != run.step:
        save(best=improved)
    return stopped_early, speed.rate


class _Throughput:
    """Training characters per second, leaving out the first step (which compiles the kernels)
    and the time spent validating and saving."""

    def __init__(self):
        self.origin = None
        self.chars = 0
        self.excluded = 0.0
        self.rate = 0.0

    def add(self, now, chars):
        if self.origin is None:
            self.origin = now
        else:
            self.chars += chars
            busy = now - self.origin - self.excluded
            self.rate = self.chars / busy if busy > 0 else 0.0
        return self.rate

    @contextmanager
    def paused(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.origin is not None:
                self.excluded += time.perf_counter() - start
