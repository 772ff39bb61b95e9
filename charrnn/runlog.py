"""`--log FILE.jsonl`: one JSON object per line, written as training goes, for plots and scripts.

A line every `every` steps and at every validation:
    {"step", "epoch", "train_loss" (mean over the steps since the line before), "val_loss" (only at a
     validation), "chars_per_s", "grad_norm" (the last step's, before clipping), "lr", "elapsed"}
in nats per character and seconds. A resumed run appends, and its "elapsed" continues from the
file's last line; a new run starts the file afresh. Lines are flushed as they are written, so a
killed run leaves every line but, at worst, the one it was writing (a reader skips a torn last line).
"""

import json
import math
import os

from charrnn.errors import UsageError


class RunLog:
    """An on_event consumer: `log(kind, info)`; close() when done."""

    def __init__(self, path, every=10, append=False):
        if not (isinstance(every, int) and every >= 1):
            raise UsageError(f"--log-every must be at least 1 (got {every!r})")
        self.path, self.every, self.append = os.fspath(path), every, append
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder) or os.path.isdir(self.path):
            raise UsageError(f"--log {self.path}: cannot write there")
        self.offset = last_elapsed(self.path) if append else 0.0
        self.file = None  # opened at the run's start, once it holds the checkpoint's lock
        self.losses = []  # train losses since the last line
        self.last = None  # the last step event
        self.pending = False  # the last step's line is yet to be written

    def __call__(self, kind, info):
        # A step's line waits for the next event, so that a validation of the same step joins it.
        if kind == "start":
            try:
                self.file = open(self.path, "a" if self.append else "w", encoding="utf-8")  # noqa: SIM115 (closed by close())
            except OSError as err:
                raise UsageError(f"--log {self.path}: cannot write ({err.strerror or err})") from None
        elif kind == "eval":
            self._write(val_loss=info["val_loss"])
        elif kind == "step":
            if self.pending:
                self._write()
            self.last = info
            self.losses.append(info["loss"])
            self.pending = info["step"] % self.every == 0

    def _write(self, **extra):
        info, self.pending = self.last, False
        if info is None:
            return
        row = dict(step=info["step"], epoch=round(info["epoch"], 6),
                   train_loss=math.fsum(self.losses) / len(self.losses) if self.losses else None, **extra,
                   chars_per_s=round(info["chars_per_s"], 1), grad_norm=info["grad_norm"], lr=info["lr"],
                   elapsed=round(self.offset + info["elapsed"], 3))  # fmt: skip
        self.losses = []
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def close(self):
        if self.file is None:
            return
        if self.pending:
            self._write()
        self.file.close()
        self.file = None


def read_log(path):
    """The rows of a log, skipping a torn last line; UsageError when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot read the log ({getattr(err, 'strerror', None) or err})") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # cut short by a kill
            raise UsageError(f"{path}: line {number} is not JSON; is it a charrnn --log file?") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise UsageError(f"{path}: line {number} has no step; is it a charrnn --log file?")
        rows.append(row)
    return rows


def last_elapsed(path):
    """The "elapsed" of the last line of an existing log (0 when there is none)."""
    if not os.path.exists(path):
        return 0.0
    rows = read_log(path)
    value = rows[-1].get("elapsed") if rows else None
    return float(value) if isinstance(value, (int, float)) else 0.0
