"""`charrnn plot RUN...`: training and validation loss curves, in bits per character, from
checkpoints (their `history.*` arrays) or --log files, in the terminal (plotext) or as an image
(matplotlib, the optional extra `charrnn[plot]`).
"""

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.errors import CharrnnError, CheckpointError, UsageError

AXES = {"steps": (0, "step"), "seconds": (1, "seconds of training")}
IMAGE_SUFFIXES = (".png", ".svg")
_ZIP = b"PK\x03\x04"


@dataclass
class Run:
    name: str
    train: np.ndarray  # (N, 3): step, seconds, loss in nats per character
    val: np.ndarray  # (M, 3)


def read_run(path):
    """A Run from a checkpoint or a --log file (told apart by their first bytes)."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such checkpoint or log") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror or err})") from None
    name = Path(path).name.removesuffix(".npz").removesuffix(".jsonl")
    if head == _ZIP:
        from charrnn.checkpoint import load_checkpoint

        state = load_checkpoint(path).state
        if "history.train" not in state and "history.val" not in state:
            raise CheckpointError(f"{path}: holds no loss history (it was trained before charrnn kept one); "
                                  f"resume it to start one, or plot its --log file")  # fmt: skip
        empty = np.zeros((0, 3), np.float32)
        return Run(name, state.get("history.train", empty), state.get("history.val", empty))
    from charrnn.runlog import read_log

    rows = read_log(path)

    def column(key):
        picked = [(r["step"], r.get("elapsed", math.nan), r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        return np.array(picked, np.float64).reshape(-1, 3)

    return Run(name, column("train_loss"), column("val_loss"))


def curves(runs, x="steps"):
    """[(label, xs, bits per char)] for every run's train and validation curves that have points."""
    column = AXES[x][0]
    out = []
    for run in runs:
        for kind, rows in (("train", run.train), ("val", run.val)):
            if len(rows):
                label = f"{run.name} {kind}" if len(runs) > 1 else kind
                out.append((label, rows[:, column].astype(float), rows[:, 2].astype(float) / math.log(2)))
    if not out:
        raise UsageError("nothing to plot: the runs have no loss points yet")
    return out


def y_top(lines):
    """Where the y axis ends: above every validation point and the training curve once past its
    first tenth, so that the first steps' loss (log V bits) does not squash the rest of the run."""
    tops = [ys[len(ys) // 10 :].max() for label, xs, ys in lines if len(ys)]
    return max(tops) * 1.02


def terminal_chart(lines, x="steps", width=100, height=25, color=True):
    """The chart as text (plotext), `width` x `height` cells."""
    import plotext as plt

    plt.clf()
    for label, xs, ys in lines:
        plt.plot(list(xs), list(ys), label=label)
    plt.plotsize(width, height)
    plt.ylim(min(ys.min() for _, _, ys in lines) * 0.98, y_top(lines))
    plt.theme("clear")
    plt.title("loss, bits per character")
    plt.xlabel(AXES[x][1])
    text = plt.build()
    return text if color else plt.uncolorize(text)


def write_image(lines, output, x="steps"):
    """The chart as a PNG or SVG (matplotlib), written whole or not at all."""
    output = Path(output)
    if output.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"--output {output}: the image must end in .png or .svg")
    if not output.resolve().parent.is_dir():
        raise UsageError(f"--output {output}: folder {output.resolve().parent} does not exist")
    try:
        import matplotlib
    except ImportError:
        raise CharrnnError(f"--output {output} needs matplotlib: pip install 'charrnn[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    figure, axes = pyplot.subplots(figsize=(8, 4.5), dpi=120)
    for label, xs, ys in lines:
        axes.plot(xs, ys, label=label, linewidth=1.2, marker="o" if label.endswith("val") else None, markersize=2.5)
    axes.set_ylim(top=y_top(lines))
    axes.set_xlabel(AXES[x][1])
    axes.set_ylabel("loss, bits per character")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    fd, temp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.resolve().parent)
    os.close(fd)
    try:
        figure.savefig(temp, format=output.suffix.lower()[1:])
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's 0600
        os.replace(temp, output)
    except OSError as err:
        raise CharrnnError(f"--output {output}: cannot write ({err.strerror or err})") from None
    finally:
        pyplot.close(figure)
        if os.path.exists(temp):
            os.unlink(temp)
