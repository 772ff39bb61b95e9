"""Training settings: one dataclass, validated in one place, stored in every checkpoint.

Each setting is declared once, as a TrainConfig field made by `setting()`: its default, its help
text, and whether a resumed run takes it from the checkpoint. The rest is derived from those
fields: SETTINGS (the options of `charrnn train`, the keywords of charrnn.train and resume),
FROM_CHECKPOINT and RUN_SETTINGS, flag(), the type checks here and those of a checkpoint's settings
(charrnn.resuming). Adding a field adds its flag, its keyword and its place in checkpoints.
"""

import math
import operator
import typing
from dataclasses import asdict, dataclass, field, fields

from charrnn.cells import CELLS  # the registry's names only: no cell is loaded
from charrnn.errors import UsageError

OPTIMIZERS = ("adam", "adagrad", "sgd")
SCHEDULES = ("constant", "cosine")
VAL_SPLITS = ("spread", "tail")  # charrnn.batches.split_rows
MAX_LAYERS = 64  # also the most a checkpoint may declare
DEFAULT_LR = {"adam": 8e-3, "adagrad": 0.1, "sgd": 0.5}  # adam's: benchmarks/README.md, "Where the loss went"
# Checkpoints record the rate they were trained at; an older one may say null, "the optimizer's
# default" of when it was written, and must resume at that rate whatever today's default is.
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
STOPS = ("steps", "epochs", "time_limit")  # on a resumed run: how much more (plan_steps)


def one_of(names):
    """("rnn", "lstm", "gru") -> "rnn, lstm or gru"."""
    return names[-1] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def setting(default, help, *, from_checkpoint, option=None, choices=None, default_text=None):
    """A TrainConfig field, declared with all the command and the API need to know of it.

    help: its flag's help text. from_checkpoint: True for a setting of the model or of the data
    layout, which a resumed run takes from its checkpoint (another value is refused); False for
    one of this run's own (how long it trains, on how many threads). option: its keyword in
    charrnn.train and its flag (--option), when not the field's name. choices: the values it may
    take. default_text: the default as `--help` shows it, for a field whose None stands for it.
    """
    meta = dict(help=help, from_checkpoint=from_checkpoint, option=option, choices=choices, default_text=default_text)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    # The defaults: benchmarks/README.md, "Where the loss went". The help texts are those of
    # `charrnn train --help`, which adds the defaults.
    cell: str = setting("gru", f"The recurrent cell: {one_of(CELLS)}.", from_checkpoint=True, choices=CELLS)
    layers: int = setting(1, "Stacked layers L.", from_checkpoint=True)
    hidden: int = setting(512, "Hidden units H per layer.", from_checkpoint=True)
    dropout: float = setting(0.2, "Drop this fraction of each layer's outputs in training.", from_checkpoint=True)
    seq: int = setting(64, "Time steps T per truncated-BPTT window.", from_checkpoint=True)
    batch: int = setting(32, "Parallel streams B.", from_checkpoint=True)
    optimizer: str = setting("adam", f"{one_of(OPTIMIZERS)}.", from_checkpoint=True, choices=OPTIMIZERS)
    lr: float | None = setting(None, "Learning rate.", from_checkpoint=True,
                               default_text=", ".join(f"{name} {lr}" for name, lr in DEFAULT_LR.items()))
    lr_decay: float = setting(1.0, "Multiply the learning rate by this after every epoch.", from_checkpoint=True)
    lr_schedule: str = setting("cosine", "constant, or cosine down to --min-lr over the run.",
                               from_checkpoint=True, choices=SCHEDULES)
    warmup: int | None = setting(None, "Raise the learning rate linearly over this many first steps.",
                                 from_checkpoint=True, default_text=str(DEFAULT_WARMUP))
    min_lr: float | None = setting(None, "Where cosine ends.", from_checkpoint=True, default_text="a tenth of --lr")
    weight_decay: float = setting(0.0, "Decoupled weight decay (AdamW), not on biases.", from_checkpoint=True)
    clip: float = setting(5.0, "Clip the gradient to this global norm (0: off).", from_checkpoint=True)
    steps: int | None = setting(None, "Stop after this many steps (with --resume: this many more).", from_checkpoint=False)
    epochs: float | None = setting(None, "Stop after this many epochs (with --resume: this many more).",
                                   from_checkpoint=False, default_text=f"{DEFAULT_EPOCHS} without --steps or --time")
    time_limit: float | None = setting(None, "Stop after this many seconds.", from_checkpoint=False, option="time")
    seed: int = setting(0, "Random seed (initial weights).", from_checkpoint=True)
    val_frac: float = setting(0.05, "Fraction held out for validation.", from_checkpoint=True)
    val_split: str = setting("spread", "Where validation comes from: spread (the end of each stream's share of the "
                             "corpus) or tail (the corpus's end).", from_checkpoint=True, choices=VAL_SPLITS)
    eval_every: int = setting(200, "Validate every this many steps.", from_checkpoint=True)
    save_every: int = setting(1000, "Save the latest state every this many steps.", from_checkpoint=True)
    threads: int = setting(0, "Worker threads sharing the streams (0: one per core; with --resume: the checkpoint's "
                           "count).", from_checkpoint=False)
    lines: bool = setting(False, "Every line is a record (names, titles, ...).", from_checkpoint=True)
    min_count: int = setting(1, "Characters seen fewer times become <unk>.", from_checkpoint=True)

    def __post_init__(self):
        for s in SETTINGS:
            setattr(self, s.name, s.checked(getattr(self, s.name)))
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
        def need(ok, name, what):
            if not ok:
                raise UsageError(f"{flag(name)} must be {what} (got {getattr(self, name)!r})")

        for s in SETTINGS:  # first: the learning rate's default depends on the optimizer
            if s.choices is not None:
                need(getattr(self, s.name) in s.choices, s.name, "one of " + ", ".join(s.choices))
        for name, limit in (("layers", MAX_LAYERS), ("hidden", 1 << 14), ("seq", 1 << 16), ("batch", 1 << 16)):
            need(1 <= getattr(self, name) <= limit, name, f"an integer from 1 to {limit}")
        need(0 <= self.dropout < 1, "dropout", "a probability in [0, 1)")
        need(self.warmup is None or 0 <= self.warmup <= MAX_STEPS, "warmup", "a non-negative number of steps")
        need(0 <= self.weight_decay <= 10, "weight_decay", "a number from 0 to 10")
        need(self.lr is None or 0 < self.lr <= 100, "lr", "a number in (0, 100]")
        need(self.min_lr is None or 0 <= self.min_lr <= self.learning_rate, "min_lr", "a number from 0 to the learning rate")
        need(0 < self.lr_decay <= 1, "lr_decay", "a number in (0, 1]")
        need(0 <= self.clip < float("inf"), "clip", "a non-negative number (0 disables clipping)")
        need(self.steps is None or self.steps >= 1, "steps", "at least 1")
        need(self.steps is None or self.steps <= MAX_STEPS, "steps", f"at most {MAX_STEPS:,}")
        need(self.epochs is None or 0 < self.epochs <= MAX_EPOCHS, "epochs", f"a positive number up to {MAX_EPOCHS:,}")
        need(self.time_limit is None or 0 < self.time_limit <= MAX_SECONDS, "time_limit", "a positive number of seconds")
        need(0 <= self.val_frac < 0.5, "val_frac", "a fraction in [0, 0.5)")
        need(self.eval_every >= 1, "eval_every", "at least 1")
        need(self.save_every >= 1, "save_every", "at least 1")
        need(self.min_count >= 1, "min_count", "at least 1")
        need(0 <= self.threads <= 256, "threads", "an integer from 0 (one per core) to 256")
        need(0 <= self.seed < 2**63, "seed", "a non-negative integer")

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


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@dataclass(frozen=True)
class Setting:
    """One TrainConfig field as the command, the API and a resume see it (from its `setting()`)."""

    name: str  # the field's, and the checkpoint's (meta "train")
    option: str  # the keyword of charrnn.train / resume and the flag's name: "time" for time_limit
    type: type  # int, float, str or bool
    optional: bool  # None is a value: its default, which stands for default_text or for no limit
    default: object
    help: str
    from_checkpoint: bool
    choices: tuple | None
    default_text: str | None

    @property
    def flag(self):
        return "--" + self.option.replace("_", "-")

    @property
    def kind(self):
        """What a value must be: "an integer", "a number", "true or false" or "a string"."""
        return _KINDS[self.type]

    def checked(self, value):
        """The value as its type (an int for an integer, a float for a number), or a UsageError:
        the kernels take them as scalars of that type, and an enormous int or a string must stop here."""
        if value is None and self.optional:
            return value
        if self.type is str and self.choices is not None:
            return value  # validate() names the choices
        try:
            if self.type is float:
                return float(value)
            if self.type is int:
                if not isinstance(value, bool):
                    return operator.index(value)  # a numpy integer too, not 2.0 or "2"
            elif isinstance(value, self.type):
                return value
        except (TypeError, ValueError, OverflowError):
            pass
        raise UsageError(f"{self.flag} must be {self.kind} (got {value!r})")


def _settings():
    """The Setting of each TrainConfig field, in their order."""
    hints = typing.get_type_hints(TrainConfig)  # the annotations as types, even if written as strings
    made = []
    for f in fields(TrainConfig):
        kinds = [t for t in typing.get_args(hints[f.name]) if t is not type(None)] or [hints[f.name]]
        meta = dict(f.metadata)
        option = meta.pop("option") or f.name
        optional = type(None) in typing.get_args(hints[f.name])
        made.append(Setting(f.name, option, kinds[0], optional, f.default, **meta))
    return tuple(made)


SETTINGS = _settings()  # in the fields' order, which is that of `charrnn train --help`
FROM_CHECKPOINT = tuple(s.name for s in SETTINGS if s.from_checkpoint)  # the model and the data layout
RUN_SETTINGS = tuple(s.name for s in SETTINGS if not s.from_checkpoint)  # each run's own
_BY_NAME = {s.name: s for s in SETTINGS}
_BY_OPTION = {s.option: s for s in SETTINGS}


def flag(name):
    """The command-line flag of a setting ("lr_decay" -> "--lr-decay", "time_limit" -> "--time"),
    or of another option by its Python name ("encoding_errors" -> "--encoding-errors")."""
    known = _BY_NAME.get(name)
    return known.flag if known else "--" + name.replace("_", "-")


def from_options(options):
    """Settings given as keywords of charrnn.train ({"time": 60}) as TrainConfig's ({"time_limit": 60});
    a UsageError names the first unknown keyword, and lists them all."""
    unknown = sorted(set(options) - set(_BY_OPTION))
    if unknown:
        raise UsageError(f"unknown setting {unknown[0]!r}; the settings are {', '.join(sorted(_BY_OPTION))}")
    return {_BY_OPTION[option].name: value for option, value in options.items()}


def recorded_lr(train):
    """The rate a checkpoint's settings say it was trained at: a null or missing one is the
    optimizer's default of when checkpoints could say so (UNRECORDED_LR)."""
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
