"""The training loop: windows -> loss and gradients -> clip -> optimizer step, with evaluation and
checkpoints. It never prints: it reports events to a callback and raises CharrnnError.

A run can continue from a checkpoint (charrnn.resuming: `load_resume`, `resume_config`, then `train(..., resume=...)`):
parameters, optimizer slots and update count, step, learning-rate schedule, position in the data,
carried hidden state, validation losses, RNG state and number of worker threads all come back, so
on the CPU k steps plus a resume for N-k more give bitwise the parameters of one run of N steps.

device="cuda" keeps parameters, optimizer state and the carried state on a GPU (charrnn.train_backends);
checkpoints are the same on both devices, so a run can be resumed on the other one (its results then
differ from a one-device run by float rounding only). meta "device" records where the last run trained.

Events passed to `report(kind, info)`:
    "start"    info: params, train_tokens, val_tokens, windows_per_epoch, total_steps (None: time-bound),
               start_step (0, or the step a resumed run continues from), last_val_loss (None or a resumed one)
    "step"     info: step, total_steps, epoch, loss, chars_per_s, elapsed, eta (seconds or None),
               grad_norm (before clipping), lr (the rate of this step)
    "eval"     info: step, val_loss, best_val_loss, improved
    "save"     info: step, path, best (bool)
    "sample"   info: step, text (the prime and the sample; only with `live`)
"""

import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from charrnn import __version__
from charrnn.batches import split_rows, windows_per_epoch
from charrnn.checkpoint import Checkpoint, remove_temp_files, save_checkpoint
from charrnn.config import FROM_CHECKPOINT, TrainConfig, flag, plan_steps
from charrnn.device import resolve_device
from charrnn.errors import CharrnnError, CheckpointError, UsageError
from charrnn.history import History
from charrnn.lock import writing
from charrnn.optim import Optimizer
from charrnn.params import FlatParams, init_params
from charrnn.schedule import Schedule
from charrnn.resuming import corpus_matches
from charrnn.threads import compute_threads
from charrnn.model import best_path
from charrnn.train_backends import make_steps
from charrnn.vocab import EOS_ID, UNK_ID


VAL_MAX_TOKENS = 1 << 18  # validation scores at most about this many held-out ids, to stay quick


@dataclass
class TrainResult:
    steps: int
    chars_per_s: float
    best_val_loss: float | None
    last_val_loss: float | None
    checkpoint: str
    best_checkpoint: str | None
    stopped_early: bool
    corpus_paths: tuple[str, ...] | None = None  # the corpus files (None: stdin, a pipe or text)

    def as_dict(self):
        return asdict(self)


def check_writable(out):
    folder = Path(out).resolve().parent
    if not folder.is_dir():
        raise UsageError(f"cannot write checkpoint {out}: folder {folder} does not exist")
    if Path(out).is_dir():
        raise UsageError(f"cannot write checkpoint {out}: it is a folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write checkpoint {out}: folder {folder} is not writable")


# ------------------------------------------------------------------ training


class _Run:
    """Everything a checkpoint holds, in one place."""

    def __init__(self, corpus, cfg, resume=None, same_corpus=True, device="cpu"):
        self.corpus, self.cfg, self.device = corpus, cfg, device
        self.rng = np.random.default_rng(cfg.seed)
        self.arch = cfg.arch(corpus.vocab.size)
        self.state = np.zeros(self.arch.state_shape(cfg.batch), np.float32)  # (L, S, B, H) carried across windows
        self.workers = None  # CPU worker threads, set once the steps exist (None on CUDA)
        self.total = None
        self.elapsed = 0.0  # seconds this run has trained
        if resume is None:
            self.params = init_params(self.arch, self.rng)
            self.opt = Optimizer(cfg.optimizer, self.params, cfg.weight_decay)
            self.step = 0
            self.best_val_loss = self.last_val_loss = None
            self.history = History()
            self.data_origin = 0  # the step at which the current corpus started
            self.epoch_origin = 0  # epochs of learning-rate decay done before that
        else:
            ckpt, meta = resume.checkpoint, resume.meta
            self.params = FlatParams(self.arch).load(ckpt.params)
            self.opt = Optimizer(cfg.optimizer, self.params, cfg.weight_decay)
            self.opt.load_state(ckpt.state, meta["optimizer_updates"])
            self.rng.bit_generator.state = meta["rng"]
            self.step = meta["step"]
            self.history = History(ckpt.state, meta)
            self.best_val_loss, self.last_val_loss = meta["best_val_loss"], meta.get("last_val_loss")
            self.data_origin, self.epoch_origin = meta.get("data_origin", 0), meta.get("epoch_origin", 0)
            if same_corpus:
                self.state[...] = ckpt.state["h_carry"]
            else:  # fine-tuning on another corpus: from its beginning, h = 0, the decay kept
                done = (self.step - self.data_origin) // meta["windows_per_epoch"]
                self.epoch_origin += done
                self.data_origin = self.step
                self.best_val_loss = self.last_val_loss = None  # another validation set: not comparable
        self.grads = self.params.like()

    def position(self, per_epoch):
        """(epoch, window) of the next step in the current corpus."""
        return divmod(self.step - self.data_origin, per_epoch)

    def epochs_done(self, per_epoch):
        """Epochs of learning-rate decay, fractional: what progress shows."""
        return self.epoch_origin + (self.step - self.data_origin) / per_epoch

    def checkpoint(self, per_epoch):
        vocab = self.corpus.vocab
        corpus = {"fingerprint": self.corpus.fingerprint, "chars": self.corpus.n_chars,
                  "encoding_errors": getattr(self.corpus, "encoding_errors", "strict")}  # fmt: skip
        paths = getattr(self.corpus, "paths", None)
        if paths:
            corpus["paths"] = list(paths)
        meta = {
            "unk_id": UNK_ID,
            "eos_id": EOS_ID,
            "model": {"cell": self.cfg.cell, "layers": self.cfg.layers, "hidden": self.cfg.hidden,
                      "vocab_size": vocab.size, "dropout": self.cfg.dropout},  # fmt: skip
            "step": self.step,
            "best_val_loss": self.best_val_loss,
            "last_val_loss": self.last_val_loss,
            "lines": self.cfg.lines,
            "corpus": corpus,
            "train": self.cfg.to_dict(),
            "windows_per_epoch": per_epoch,
            "total_steps": self.total,
            "data_origin": self.data_origin,
            "epoch_origin": self.epoch_origin,
            "workers": self.workers,
            "device": self.device,
            "optimizer_updates": self.opt.updates,
            "rng": self.rng.bit_generator.state,
            "charrnn_version": __version__,
            **self.history.meta(self.elapsed),
        }
        state = dict(self.opt.state_arrays(), h_carry=self.state.copy(), **self.history.arrays())
        return Checkpoint(params=self.params.as_dict(), vocab=list(vocab.tokens), meta=meta, state=state)


def train(corpus, cfg: TrainConfig, out="charrnn.npz", report=lambda kind, info: None, should_stop=lambda: False,
          resume=None, device="cpu", live=None):  # fmt: skip
    """Train a model on corpus (charrnn.corpus.Corpus) and checkpoint it to `out`.

    resume: a Resume (`load_resume`) to continue instead of starting afresh; then cfg comes from
    `resume_config` and the corpus must be encoded with the checkpoint's vocabulary (and be the
    checkpoint's corpus, unless resume.force). It may have been trained on either device.
    device: "cpu", "cuda" or "auto" (charrnn.device.resolve_device); cfg.threads applies to the CPU.
    live: charrnn.live.LiveSamples, samples reported as "sample" events while training (None: none).
    """
    device = resolve_device(device)
    check_writable(out)
    with writing(out):  # a second run on the same `out` is refused, naming this one's process
        return _train(corpus, cfg, out, report, should_stop, resume, device, live)


def _train(corpus, cfg, out, report, should_stop, resume, device, live):
    same_corpus = True
    if resume is not None:
        same_corpus = corpus_matches(resume, corpus)
        for name in FROM_CHECKPOINT:
            if getattr(cfg, name) != getattr(resume.settings, name):
                raise UsageError(f"{flag(name)} must be the checkpoint's when resuming (use resume_config)")
    T, B = cfg.seq, cfg.batch
    try:
        streams, val_rows = split_rows(corpus.ids, B, T, cfg.val_frac, cfg.val_split, VAL_MAX_TOKENS)  # (B, L+1), (b, l+1)
    except ValueError:
        streams = None
    n_val = int(len(corpus.ids) * cfg.val_frac)
    train_tokens = len(corpus.ids) - (n_val if n_val >= 2 else 0)
    if streams is None or streams.shape[1] - 1 < T:
        raise UsageError(
            f"the corpus gives {train_tokens} training tokens, too few for --batch {B} x --seq {T} "
            f"(needs at least {B * T + 1}); lower --batch or --seq"
        )
    per_epoch = windows_per_epoch(streams, T)
    if same_corpus and resume is not None and per_epoch != resume.meta["windows_per_epoch"]:
        raise CheckpointError(
            f"{resume.path}: cannot resume from it: it counts {resume.meta['windows_per_epoch']:,} steps per epoch, "
            f"the corpus gives {per_epoch:,}"
        )
    run = _Run(corpus, cfg, resume, same_corpus, device)
    sampler = None
    if live is not None and live.every:
        from charrnn.live import LiveSampler

        sampler = LiveSampler(live, run.params, corpus.vocab, cfg.lines, cfg.seed)
    total = run.total = plan_steps(cfg, per_epoch, run.step)
    # The schedule spans the run on this corpus: a resume within its plan gets the same rates,
    # a longer one stretches the cosine, and fine-tuning on another corpus starts a new one.
    schedule = Schedule.of(cfg, run.data_origin, total)
    # a warm-up asked for that the run never leaves is a mistake; the default's is not the user's, nor
    # is a resumed run's (its checkpoint records the warm-up its first plan had, asked for or not)
    if resume is None and total is not None and cfg.warmup is not None and cfg.warmup > total:
        raise UsageError(f"--warmup {cfg.warmup:,} is past the end of the run ({total:,} steps); lower it")
    if resume is None and cfg.lr_schedule == "constant" and cfg.min_lr is not None:  # it would be ignored
        raise UsageError("--min-lr is where the cosine schedule ends; it does nothing with --lr-schedule constant")
    for stale in (out, best_path(out)):  # temporary files of saves a kill -9 cut short
        remove_temp_files(stale)
    report(
        "start",
        dict(
            params=run.params.flat.size,
            train_tokens=train_tokens,
            val_tokens=0 if val_rows is None else val_rows.size,
            windows_per_epoch=per_epoch,
            total_steps=total,
            start_step=run.step,
            last_val_loss=run.last_val_loss,
        ),
    )
    with compute_threads():
        steps = make_steps(device, run, T, B, streams)
        try:
            run.workers = steps.workers
            stopped_early, rate, has_best = _loop(run, steps, schedule, val_rows, per_epoch, total, out, report, should_stop, resume, sampler)
        finally:
            steps.close()
    return TrainResult(
        steps=run.step,
        chars_per_s=rate,
        best_val_loss=run.best_val_loss,
        last_val_loss=run.last_val_loss,
        checkpoint=str(out),
        best_checkpoint=best_path(out) if has_best else None,
        stopped_early=stopped_early,
        corpus_paths=getattr(corpus, "paths", None),
    )


def _loop(run, steps, schedule, val_rows, per_epoch, total, out, report, should_stop, resume, sampler):
    cfg = run.cfg
    T, B = cfg.seq, cfg.batch
    start_time = time.perf_counter()
    speed = _Throughput()
    stopped_early = False
    saved_step = -1
    on_disk = _OnDisk(out, resume, run)

    def save(best):
        with speed.paused():
            return _save(best)

    def diverged(step, detail):
        return CharrnnError(f"training diverged at step {step:,} ({detail}); {on_disk.kept()}; try a lower --lr or --clip")

    def check_weights():
        steps.to_host()  # the state a save writes (a no-op on the CPU)
        if not np.isfinite(run.params.flat).all():  # finite gradients, but the update overflowed
            raise diverged(run.step, "the weights are no longer finite")

    def _save(best):
        check_weights()
        ckpt = run.checkpoint(per_epoch)
        for path in (out, best_path(out)) if best else (out,):
            try:
                save_checkpoint(path, ckpt)
            except CheckpointError as err:
                raise CheckpointError(f"{err} (at step {run.step:,}); {on_disk.kept()}") from None
            on_disk.saved(path, run.step)
            report("save", dict(step=run.step, path=str(path), best=path != out))
        return run.step

    def evaluate():
        with speed.paused():
            loss = steps.validation_loss(val_rows)
        if not math.isfinite(loss):
            check_weights()
            raise diverged(run.step, f"validation loss {loss}")
        improved = run.best_val_loss is None or loss < run.best_val_loss
        run.last_val_loss = loss
        run.history.validation(run.step, run.elapsed, loss)
        if improved:
            run.best_val_loss = loss
        report("eval", dict(step=run.step, val_loss=loss, best_val_loss=run.best_val_loss, improved=improved))
        return improved

    while total is None or run.step < total:
        epoch, k = run.position(per_epoch)
        if k == 0:
            steps.reset_hidden()  # every epoch starts from a zero state
        lr = schedule.rate(run.step, run.epoch_origin + epoch, time.perf_counter() - start_time)
        loss, norm = steps.step(k * T, lr)  # carries the hidden state forward; no update unless finite
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise diverged(run.step + 1, f"loss {loss}, gradient norm {norm}")
        run.step += 1

        now = time.perf_counter()
        rate = speed.add(now, T * B)
        elapsed = run.elapsed = now - start_time
        run.history.step(run.step, elapsed, loss)
        eta = None
        if rate > 0:
            left = [] if total is None else [(total - run.step) * T * B / rate]
            if cfg.time_limit is not None:
                left.append(max(0.0, cfg.time_limit - elapsed))
            eta = min(left) if left else None
        report("step", dict(step=run.step, total_steps=total, epoch=run.epochs_done(per_epoch), loss=loss, chars_per_s=rate,
                            elapsed=elapsed, eta=eta, grad_norm=norm, lr=lr))  # fmt: skip

        improved = False
        if val_rows is not None and run.step % cfg.eval_every == 0:
            improved = evaluate()
        if improved or run.step % cfg.save_every == 0:
            saved_step = save(best=improved)
        if sampler is not None and sampler.live.due(run.step):
            with speed.paused():
                steps.to_host()  # the weights it reads (a no-op on the CPU)
                report("sample", dict(step=run.step, text=sampler.text(run.step)))
        if cfg.time_limit is not None and elapsed >= cfg.time_limit:
            break
        if should_stop():
            stopped_early = True
            break

    improved = False
    if val_rows is not None and (run.last_val_loss is None or run.step % cfg.eval_every):
        improved = evaluate()  # unless the last step was just evaluated
    if saved_step != run.step:
        save(best=improved)
    return stopped_early, speed.rate, on_disk.has_best


class _OnDisk:
    """What `out` holds, for the message when training cannot go on."""

    def __init__(self, out, resume, run):
        self.out = str(out)
        self.step = None  # the step `out` holds, when known
        self.has_best = False  # whether <stem>.best.npz belongs to this run (or the one it resumes)
        self.before = os.path.exists(self.out)
        if resume is not None and self.before:
            try:
                if os.path.samefile(self.out, resume.path):  # continuing to write the resumed file
                    self.step = resume.step
                    self.has_best = run.best_val_loss is not None and os.path.exists(best_path(out))
            except OSError:
                pass

    def saved(self, path, step):
        if str(path) == self.out:
            self.step = step
        else:
            self.has_best = True

    def kept(self):
        if self.step is not None:
            return f"{self.out} still holds the state of step {self.step:,}"
        if self.before:
            return f"{self.out} is left as it was"
        return f"nothing was saved to {self.out}"


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
