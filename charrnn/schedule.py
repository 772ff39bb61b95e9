"""The learning rate at each step: warm-up, then constant or cosine, times the per-epoch decay.

    warm-up   lr * (s + 1) / warmup                       for the first `warmup` steps s of a plan
    constant  lr
    cosine    min_lr + (lr - min_lr) * (1 + cos(pi * x)) / 2,  x = progress after the warm-up, 0..1
    all       times lr_decay ** epoch

A plan spans the steps from `start` (where the run, or a resumed run that goes past its first
plan, began) to `total`. A time-bound run has no step total: its progress is the fraction of
the time limit used, which is what planning from its measured speed comes to, without a guess
that a busy machine would make wrong. Resuming within a plan gives the same rates bit for bit.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    lr: float
    kind: str = "constant"
    warmup: int = 0
    min_lr: float = 0.0
    lr_decay: float = 1.0
    start: int = 0  # the step the plan starts at
    total: int | None = None  # the step it ends at; None: time-bound
    time_limit: float | None = None

    @classmethod
    def of(cls, cfg, start, total):
        return cls(cfg.learning_rate, cfg.lr_schedule, cfg.warmup_steps, cfg.final_lr, cfg.lr_decay, start, total,
                   cfg.time_limit)  # fmt: skip

    def progress(self, step, elapsed):
        """Fraction 0..1 of the plan after the warm-up, for the update at step `step` (0-based)."""
        if self.total is not None:
            span = self.total - self.start - self.warmup
            done = step - self.start - self.warmup
            return min(1.0, max(0.0, done / span)) if span > 0 else 1.0
        return min(1.0, max(0.0, elapsed / self.time_limit)) if self.time_limit else 0.0

    def rate(self, step, epoch, elapsed=0.0):
        """The learning rate of the update at `step` (0-based), in `epoch` of decay, `elapsed`
        seconds into a time-bound run."""
        lr = self.lr
        into = step - self.start
        if into < self.warmup:
            lr *= (into + 1) / self.warmup
        elif self.kind == "cosine":
            x = self.progress(step, elapsed)
            lr = self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * x))
        return lr * self.lr_decay**epoch
