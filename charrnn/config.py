"""Training settings: one dataclass, validated in one place, stored in every checkpoint."""

import math
from dataclasses import asdict, dataclass, fields

from charrnn.cells import CELLS  # the registry's names only: no cell is loaded
from charrnn.errors import UsageError

OPTIMIZERS = ("adam", "adagrad", "sgd")
SCHEDULES = ("constant", "cosine")
VAL_SPLITS = ("spread", "tail")  # charrnn.batches.split_rows
MAX_LAYERS = 64  # also the most a checkpoint may declare
DEFAULT_LR = {"adam": 8e-3, "adagrad": 0.1, "sgd": 0.5}  # adam's: benchmarks/README.md, "Where the loss went"
# Checkpoints record the rate they were trained at; one written before 2026-12-03 may say null, "the
# optimizer's default" of then, and must resume at that rate whatever today's default is.
UNRECORDED_LR = {"adam": 2e-3, "adagrad": 0.1, "sgd": 0.5}
DEFAULT_EPOCHS = 5  # when none of steps / epochs / time_limit is given
DEFAULT_WARMUP = 100  # steps, when --warmup is not given (a run shorter than that is never refused for it)
# The model settings of charrnn before they could be chosen: a format-1 checkpoint (a vanilla RNN)
# records none of them, and it must resume as what it is whatever today's defaults are.
UNRECORDED = dict(cell="rnn", layers=1, dropout=0.0, lr_schedule="constant", warmup=0, min_lr=None, weight_decay=0.0,
                  val_split="tail")
MAX_EPOCHS = 1_000_000
MAX_STEPS = 10**15
MAX_SECONDS = 1e12

# The settings that define the model and the data layout: a resumed run takes them from the checkpoint.
FROM_CHECKPOINT = (
    "cell", "layers", "hidden", "dropout", "seq", "batch", "optimizer", "lr", "lr_decay", "lr_schedule", "warmup",
    "min_lr", "weight_decay", "clip", "val_frac", "val_split", "eval_every", "save_every", "lines", "min_count", "seed",
)  # fmt: skip


def flag(name):
    """The command-line flag of a setting: "lr_decay" -> "--lr-decay"."""
    return "--time" if name == "time_limit" else "--" + name.replace("_", "-")


@dataclass
class TrainConfig:
    cell: str = "gru"  # charrnn.cells; the defaults: benchmarks/README.md, "Where the loss went"
    layers: int = 1  # L
    hidden: int = 512  # H
    dropout: float = 0.2  # on every layer's output, in training
    seq: int = 64  # T, steps per truncated-BPTT window
    batch: int = 32  # B, contiguous streams
    lr: float | None = None  # None: the optimizer's default
    lr_decay: float = 1.0  # learning rate multiplied by this after every epoch
    lr_schedule: str = "cosine"  # down to min_lr over the planned steps (or the time limit); or "constant"
    warmup: int | None = None  # steps of linear warm-up from lr/warmup to lr; None: DEFAULT_WARMUP
    min_lr: float | None = None  # where cosine ends; None: a tenth of the learning rate
    weight_decay: float = 0.0  # decoupled (AdamW), on weights only
    optimizer: str = "adam"
    clip: float = 5.0  # global gradient norm; 0 disables clipping
    steps: int | None = None
    epochs: float | None = None
    time_limit: float | None = None  # seconds
    seed: int = 0
    val_frac: float = 0.05
    val_split: str = "spread"  # where validation comes from: VAL_SPLITS
    eval_every: int = 200  # steps
    save_every: int = 1000  # steps
    threads: int = 0  # worker threads, each taking a share of the B streams; 0: one per core
    lines: bool = False  # every line of the corpus is a record
    min_count: int = 1

    def __post_init__(self):
        for name in ("lr", "lr_decay", "clip", "epochs", "time_limit", "val_frac", "dropout", "min_lr", "weight_decay"):
            value = getattr(self, name)
            if value is None:
                continue
            try:  # kernels take these as float scalars: an enormous int or a string must stop here
                setattr(self, name, float(value))
            except (TypeError, ValueError, OverflowError):
                flag = "time" if name == "time_limit" else name.replace("_", "-")
                raise UsageError(f"--{flag} must be a number (got {value!r})") from None
        self.validate()

    @property
    def learning_rate(self):
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    @property
    def warmup_steps(self):
        return DEFAULT_WARMUP if self.warmup is None else self.warmup

    @property
    def final_lr(self):
        """Where the cosine schedule ends."""
        return self.learning_rate / 10 if self.min_lr is None else self.min_lr

    def validate(self):
        def need(ok, flag, what, value):
            if not ok:
                raise UsageError(f"--{flag} must be {what} (got {value!r})")

        need(self.cell in CELLS, "cell", "one of " + ", ".join(CELLS), self.cell)
        for name, limit in (("layers", MAX_LAYERS), ("hidden", 1 << 14), ("seq", 1 << 16), ("batch", 1 << 16)):
            value = getattr(self, name)
            need(isinstance(value, int) and 1 <= value <= limit, name, f"an integer from 1 to {limit}", value)
        need(0 <= self.dropout < 1, "dropout", "a probability in [0, 1)", self.dropout)
        need(self.lr_schedule in SCHEDULES, "lr-schedule", "one of " + ", ".join(SCHEDULES), self.lr_schedule)
        need(self.warmup is None or isinstance(self.warmup, int) and 0 <= self.warmup <= MAX_STEPS, "warmup", "a non-negative number of steps", self.warmup)
        need(0 <= self.weight_decay <= 10, "weight-decay", "a number from 0 to 10", self.weight_decay)
        need(self.optimizer in OPTIMIZERS, "optimizer", "one of " + ", ".join(OPTIMIZERS), self.optimizer)
        need(self.lr is None or 0 < self.lr <= 100, "lr", "a number in (0, 100]", self.lr)
        need(self.min_lr is None or 0 <= self.min_lr <= self.learning_rate, "min-lr", "a number from 0 to the learning rate", self.min_lr)
        need(0 < self.lr_decay <= 1, "lr-decay", "a number in (0, 1]", self.lr_decay)
        need(0 <= self.clip < float("inf"), "clip", "a non-negative number (0 disables clipping)", self.clip)
        need(self.steps is None or self.steps >= 1, "steps", "at least 1", self.steps)
        need(self.steps is None or self.steps <= MAX_STEPS, "steps", f"at most {MAX_STEPS:,}", self.steps)
        need(self.epochs is None or 0 < self.epochs <= MAX_EPOCHS, "epochs", f"a positive number up to {MAX_EPOCHS:,}", self.epochs)
        need(self.time_limit is None or 0 < self.time_limit <= MAX_SECONDS, "time", "a positive number of seconds", self.time_limit)
        need(0 <= self.val_frac < 0.5, "val-frac", "a fraction in [0, 0.5)", self.val_frac)
        need(self.val_split in VAL_SPLITS, "val-split", "one of " + ", ".join(VAL_SPLITS), self.val_split)
        need(self.eval_every >= 1, "eval-every", "at least 1", self.eval_every)
        need(self.save_every >= 1, "save-every", "at least 1", self.save_every)
        need(self.min_count >= 1, "min-count", "at least 1", self.min_count)
        need(isinstance(self.threads, int) and 0 <= self.threads <= 256, "threads", "an integer from 0 (one per core) to 256", self.threads)
        need(0 <= self.seed < 2**63, "seed", "a non-negative integer", self.seed)

    def arch(self, vocab_size):
        """The parameters' shapes for a vocabulary of this size (charrnn.params.Arch)."""
        from charrnn.params import Arch

        return Arch(self.cell, self.layers, self.hidden, vocab_size)

    def to_dict(self):
        # the rate and warm-up themselves, not "the default": a checkpoint resumes as it was trained
        return {**asdict(self), "lr": self.learning_rate, "warmup": self.warmup_steps}

    @classmethod
    def from_dict(cls, data):
        """The settings a checkpoint recorded; one it lacks is what it was trained with then
        (UNRECORDED), not today's default."""
        known = {f.name for f in fields(cls)}
        values = {**UNRECORDED, **{k: v for k, v in data.items() if k in known}}
        values["lr"] = recorded_lr(values)  # an unknown optimizer: refused below
        return cls(**values)


def recorded_lr(train):
    """The rate a checkpoint's settings say it was trained at: a null or missing one is the
    optimizer's default of before 2026-12-03 (UNRECORDED_LR)."""
    lr = train.get("lr")
    return UNRECORDED_LR.get(train.get("optimizer", "adam")) if lr is None else lr


def plan_steps(cfg, per_epoch, start=0):
    """The step to stop at, or None when only the time limit bounds the run. On a resumed run
    (start > 0) --steps and --epochs count from `start`."""
    if cfg.steps is not None:
        return start + cfg.steps
    if cfg.epochs is not None:
        return start + max(1, math.ceil(cfg.epochs * per_epoch))
    if cfg.time_limit is not None:
        return None
    return start + DEFAULT_EPOCHS * per_epoch
