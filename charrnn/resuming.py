"""Continuing a run from its checkpoint: what an exact resume needs, checked up front.

`load_resume` reads and checks a checkpoint, `resume_config` merges the checkpoint's settings with
the stop conditions given now, `corpus_matches` decides between continuing and fine-tuning; then
`charrnn.train_loop.train(..., resume=...)` picks the run up where it stopped.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from charrnn.checkpoint import Checkpoint, load_checkpoint
from charrnn.config import FROM_CHECKPOINT, MAX_STEPS, RUN_SETTINGS, SETTINGS, STOPS, TrainConfig, flag, plan_steps
from charrnn.corpus import ENCODING_ERRORS
from charrnn.errors import CharrnnError, CheckpointError, CorpusError, UsageError
from charrnn.optim import SLOTS
from charrnn.params import layout
from charrnn.vocab import Vocab


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x):
    if isinstance(x, float):
        return math.isfinite(x)
    return _is_int(x)  # any size: the range checks come later


# What a checkpoint's value of a setting must be, by the setting's type (config.SETTINGS).
_RECORDED = {int: _is_int, float: _is_number, str: lambda x: isinstance(x, str), bool: lambda x: isinstance(x, bool)}


@dataclass
class Resume:
    """A checkpoint checked for everything an exact resume needs (made by `load_resume`)."""

    checkpoint: Checkpoint
    path: str
    settings: TrainConfig  # as it was trained
    force: bool = False  # train on a corpus other than the checkpoint's (fine-tune)

    @property
    def meta(self):
        return self.checkpoint.meta

    @property
    def step(self):
        return self.meta["step"]

    @property
    def fingerprint(self):
        return self.meta["corpus"]["fingerprint"]

    @property
    def vocab(self):
        return Vocab.from_tokens(self.checkpoint.vocab)

    @property
    def corpus_paths(self):
        """The regular files it was trained on (absolute paths), or None (stdin, pipes, older files)."""
        return self.meta["corpus"].get("paths")

    @property
    def encoding_errors(self):
        """The invalid-UTF-8 policy its corpus was read with, or None when not recorded."""
        return self.meta["corpus"].get("encoding_errors")

    @property
    def workers(self):
        return self.meta.get("workers")

    @property
    def planned_total(self):
        """The step its run was to stop at (None: only a time limit)."""
        if "total_steps" in self.meta:
            return self.meta["total_steps"]
        return plan_steps(self.settings, self.meta["windows_per_epoch"])


def load_resume(path, force=False):
    """Load a checkpoint to continue training from; CheckpointError when it cannot be resumed exactly."""
    ckpt = load_checkpoint(path)
    path = str(path)
    meta = ckpt.meta

    def need(ok, reason):
        if not ok:
            raise CheckpointError(f"{path}: cannot resume from it: {reason}")

    raw = meta["train"]
    for s in SETTINGS:  # one it lacks: the default of then (TrainConfig.from_dict)
        value = raw.get(s.name)
        if s.name in raw and not (value is None and s.type in (int, float)):  # a null number: TrainConfig's to judge
            need(_RECORDED[s.type](value), f"meta 'train.{s.name}' must be {s.kind}, not {value!r}")
    try:
        settings = TrainConfig.from_dict(raw)
    except (CharrnnError, TypeError, ValueError) as err:
        need(False, f"its training settings are invalid ({err})")
    arch = ckpt.arch
    need(settings.cell == arch.cell, f"its settings say --cell {settings.cell} but its weights are of the {arch.cell} cell")
    need(settings.layers == arch.layers, f"its settings say --layers {settings.layers} but its weights have {arch.layers}")
    need(settings.hidden == arch.hidden, f"its settings say --hidden {settings.hidden} but its weights have {arch.hidden} units")
    need(meta.get("lines", settings.lines) == settings.lines, "meta 'lines' and 'train.lines' differ")
    step = meta["step"]
    need(step <= MAX_STEPS, f"meta 'step' must be at most {MAX_STEPS:,}, not {step}")
    updates = meta.get("optimizer_updates")
    need(_is_int(updates) and 0 <= updates <= step, f"meta 'optimizer_updates' must be an integer from 0 to the step, not {updates!r}")
    per_epoch = meta.get("windows_per_epoch")
    need(_is_int(per_epoch) and per_epoch >= 1, f"meta 'windows_per_epoch' must be a positive integer, not {per_epoch!r}")
    origin = meta.get("data_origin", 0)
    need(_is_int(origin) and 0 <= origin <= step, f"meta 'data_origin' must be an integer from 0 to the step, not {origin!r}")
    epoch_origin = meta.get("epoch_origin", 0)
    need(_is_int(epoch_origin) and 0 <= epoch_origin < 2**31, f"meta 'epoch_origin' must be a non-negative integer, not {epoch_origin!r}")
    workers = meta.get("workers")
    need(workers is None or (_is_int(workers) and 1 <= workers <= 256), f"meta 'workers' must be an integer from 1 to 256, not {workers!r}")
    total = meta.get("total_steps")
    need(total is None or (_is_int(total) and total >= 0), f"meta 'total_steps' must be a non-negative integer or null, not {total!r}")
    need(total is not None or "total_steps" not in meta or settings.time_limit is not None,
         "meta 'total_steps' is null but no time limit was set")  # fmt: skip
    last = meta.get("last_val_loss")
    need(last is None or _is_number(last), f"meta 'last_val_loss' must be a finite number or null, not {last!r}")
    try:
        np.random.default_rng().bit_generator.state = meta["rng"]
    except (KeyError, ValueError, TypeError, OverflowError, AttributeError):
        need(False, "its random generator state (meta 'rng') is missing or invalid")
    corpus = meta["corpus"]
    paths = corpus.get("paths")
    need(paths is None or (isinstance(paths, list) and paths and all(isinstance(p, str) and p for p in paths)),
         "meta 'corpus.paths' must be a list of file paths")  # fmt: skip
    need(corpus.get("encoding_errors") in (None, *ENCODING_ERRORS), "meta 'corpus.encoding_errors' is invalid")
    slots = [f"opt.{slot}.{name}" for slot in SLOTS[settings.optimizer] for name in layout(arch)]
    missing = [name for name in slots if name not in ckpt.state]
    need(not missing, f"it holds no {settings.optimizer} optimizer state ({missing[0] if missing else ''})")
    h = ckpt.state.get("h_carry")
    need(h is not None, "it holds no carried hidden state (h_carry)")
    want = arch.state_shape(settings.batch)
    need(h.shape == want, f"h_carry has shape {h.shape}, expected {want}")
    return Resume(ckpt, path, settings, force)


def resume_config(resume, given=None, **more):
    """The settings of a run that continues `resume`.

    given, more: {setting: value} the user gave (None: not given), by TrainConfig's names. The model
    and data settings (config.FROM_CHECKPOINT, and "encoding_errors") must equal the checkpoint's,
    else a UsageError names the flag; the others (config.RUN_SETTINGS) are this run's. Of those,
    steps / epochs / time_limit are how much MORE to train; with none of them the run continues to
    its original plan (its step total; a time-only plan: the same time again). threads None
    reuses the checkpoint's worker count, which keeps the results bitwise exact.
    """
    saved = resume.settings
    run = {}
    for name, value in {**(given or {}), **more}.items():
        if value is None:
            continue
        if name in RUN_SETTINGS:
            run[name] = value
        elif name in FROM_CHECKPOINT or name == "encoding_errors":
            _same_as_recorded(resume, name, value)
        else:
            raise ValueError(f"{name!r} is not a setting of TrainConfig")
    stops = {name: run.pop(name, None) for name in STOPS}
    if all(v is None for v in stops.values()):
        total = resume.planned_total
        stops["time_limit"] = saved.time_limit
        if total is not None:
            left = total - resume.step
            if left <= 0:
                raise UsageError(
                    f"{resume.path} has finished its plan of {total:,} steps; "
                    f"give --steps, --epochs or --time to train it further"
                )
            stops["steps"] = left
    run.setdefault("threads", resume.workers if resume.workers is not None else saved.threads)
    return replace(saved, **stops, **run)


def _same_as_recorded(resume, name, value):
    """A setting given to a resumed run: a UsageError unless it is what the checkpoint recorded."""
    if name == "encoding_errors":
        current = resume.encoding_errors
        if current is None:
            return  # not recorded: the caller's choice stands
    else:
        current = resume.settings.learning_rate if name == "lr" else getattr(resume.settings, name)
    if value == current:
        return
    f = flag(name)
    if isinstance(current, bool):
        had = f"trained {'with' if current else 'without'} {f}"
        mine = f if value else f"no {f}"
    else:
        had, mine = f"trained with {f} {current}", f"{f} {value}"
    raise UsageError(
        f"{mine} conflicts with {resume.path}, {had}; a resumed run keeps the checkpoint's settings "
        f"(leave {f} out, or train a new model)"
    )


def corpus_matches(resume, corpus, names="this corpus"):
    """Check the corpus may continue `resume`: True for the checkpoint's own corpus, False for
    another one when `resume.force` (fine-tuning); CorpusError otherwise. `names`: for the message."""
    if list(corpus.vocab.tokens) != list(resume.checkpoint.vocab):
        raise CorpusError(f"{names}: not encoded with the vocabulary of {resume.path}")
    if corpus.fingerprint == resume.fingerprint:
        return True
    if resume.force:
        return False
    short = lambda fp: fp.split(":", 1)[-1][:12]  # noqa: E731
    raise CorpusError(
        f"{names} is not the corpus {resume.path} was trained on (fingerprint {short(corpus.fingerprint)} "
        f"vs {short(resume.fingerprint)}); pass --force to fine-tune it on this corpus"
    )
