"""Training progress on stderr: a live rich display on a terminal, plain periodic lines otherwise.

Given to `charrnn.train_loop.train` as its `report` callback; stdout is never touched.
"""

import math
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

PLAIN_EVERY = 10.0  # seconds between plain progress lines when stderr is not a terminal


def fmt_duration(seconds):
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def bits(nats):
    return nats / math.log(2)


class TrainingReporter:
    """Callable `report(kind, info)`; use as a context manager around training."""

    def __init__(self, console: Console, quiet=False):
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.progress = None
        self.task = None
        self.val = "-"
        self.last_plain = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False

    def __call__(self, kind, info):
        if self.quiet:
            return
        getattr(self, "_" + kind)(info)

    def _start(self, info):
        self.last_plain = time.monotonic()
        total = info["total_steps"]
        start = info.get("start_step", 0)
        if info.get("last_val_loss") is not None:
            self.val = f"{info['last_val_loss']:.4f}"
        if start:
            plan = f"resuming at step {start:,}, " + (f"to step {total:,}" if total else "until the time limit")
        else:
            plan = f"{total:,} steps" if total else "until the time limit"
        self.console.print(
            f"training {info['params']:,} parameters on {info['train_tokens']:,} tokens "
            f"({info['val_tokens']:,} held out), {info['windows_per_epoch']:,} steps per epoch, {plan}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        if self.live:
            self.progress = Progress(
                TextColumn("step {task.completed:,.0f}"),
                BarColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("eta {task.fields[eta]}"),
                console=self.console,
                transient=False,
            )
            self.task = self.progress.add_task("train", total=total, completed=start, status="", eta="?")
            self.progress.start()

    def _status(self, info):
        return (
            f"epoch {info['epoch']:.2f}  loss {info['loss']:.4f}  val {self.val}  "
            f"{info['chars_per_s']:,.0f} chars/s"
        )

    def _step(self, info):
        if self.progress is not None:
            self.progress.update(self.task, completed=info["step"], status=self._status(info), eta=fmt_duration(info["eta"]))
            return
        now = time.monotonic()
        if now - self.last_plain >= PLAIN_EVERY or info["step"] == info["total_steps"]:
            self.last_plain = now
            total = f"/{info['total_steps']:,}" if info["total_steps"] else ""
            self.console.print(f"step {info['step']:,}{total}  {self._status(info)}  eta {fmt_duration(info['eta'])}", highlight=False, soft_wrap=True, markup=False)

    def _eval(self, info):
        self.val = f"{info['val_loss']:.4f}"  # shown with the next progress line

    def _save(self, info):
        pass  # the summary names the checkpoints; a line per save would drown the progress

    def _sample(self, info):
        """An indented block above the live display (or between the plain lines)."""
        lines = info["text"].split("\n")
        block = "\n".join("    " + line for line in lines)
        console = self.progress.console if self.progress is not None else self.console
        console.print(f"sample at step {info['step']:,}:\n{block}", highlight=False, soft_wrap=True, markup=False)


def summary_line(result):
    """One line describing a finished run."""
    parts = [f"trained {result.steps:,} steps at {result.chars_per_s:,.0f} chars/s"]
    if result.best_val_loss is not None:
        parts.append(f"best val loss {result.best_val_loss:.4f} nats ({bits(result.best_val_loss):.3f} bits/char)")
    where = f"checkpoint {result.checkpoint}"
    if result.best_checkpoint:
        where += f" (best: {result.best_checkpoint})"
    parts.append(where)
    return "; ".join(parts)
