"""Helpers and constants that several test files share (fixtures are in conftest.py).

The CLI's contract, checked by cli() and the assert_* helpers: a user mistake prints exactly one
line, `charrnn: error: <message>`, on stderr, with nothing on stdout and no traceback; stdout
carries only the command's output, with no ANSI escapes.
"""

import json

import numpy as np

from typer.testing import CliRunner

import charrnn.cli
from charrnn.optim import Optimizer
from charrnn.parallel import WindowRunner

# A few KB of repetitive text with some variety; lowercase only, so "Z" and "é" are unknown.
# conftest.py's in_tmp writes it as corpus.txt in each test's folder.
CORPUS = (
    "the cat sat on the mat. " * 200
    + "a dog ran to the big red hat, and the fox hid in a box.\n"
    + "is it the cat or the dog? the bird flew by; we all saw it!\n" * 5
)
TINY = ["--hidden", "16", "--seq", "8", "--batch", "4", "--steps", "30", "--eval-every", "10"]
API_TINY = dict(hidden=16, seq=8, batch=4, eval_every=10)  # TINY for charrnn.train, but the steps
NAMES = [
    "anna", "bert", "carla", "dmitri", "elise", "farid", "greta", "hugo", "ines", "jonas",
    "karin", "lars", "maria", "nils", "olga", "pavel", "quinn", "rosa", "sven", "tilda",
    "ulla", "viktor", "wanda", "xaver", "yara", "zeno",
]  # fmt: skip
NAMES_TEXT = "\n".join(NAMES * 12) + "\n"

# The text of conftest.py's loaded_corpus, for the tests of the library's train() (test_train,
# test_resume, test_defaults): 40 windows per epoch with test_resume's TINY.
TRAIN_TEXT = "the cat sat on the mat. the dog sat on the log. " * 60
# A second text for the resume tests: a fine-tune on it meets characters TRAIN_TEXT lacks.
OTHER = "a fox hid in a box; a bird flew by. " * 90

# Rich reads these at every Console(): keep the output plain and wide enough for one row per value.
runner = CliRunner(env={"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None, "COLUMNS": "160"})
ANSI = "\x1b"


def cli(*args, input=None):
    """Run `charrnn ARGS`; fail on anything that is not a clean exit (a traceback, an exception)."""
    result = runner.invoke(charrnn.cli.app, [str(a) for a in args], input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # shows the traceback the user would have seen
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream
    assert ANSI not in result.stdout
    return result


def ok(*args, input=None):
    result = cli(*args, input=input)
    assert result.exit_code == 0, result.stderr
    return result


def assert_error(result, code, message):
    """Exactly one line on stderr, literally this message; nothing on stdout."""
    assert result.stderr == f"charrnn: error: {message}\n"
    assert result.exit_code == code
    assert result.stdout == ""


def assert_error_prefix(result, code, prefix):
    """For messages worded by the argument parser (typer), not by charrnn: one line, this start."""
    assert result.stderr.startswith(f"charrnn: error: {prefix}")
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n")
    assert result.exit_code == code
    assert result.stdout == ""


def unknown_warning(chars):
    return "charrnn: warning: not in the model's vocabulary, read as <unk>: " + ", ".join(map(repr, chars))


def info_json(path="charrnn.npz"):
    return json.loads(ok("info", path, "--json").stdout)


def make_files(folder):
    """The bad inputs of the error tests (test_cli_errors, test_cli_sample), in `folder`."""
    data = CORPUS.encode()
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_text("   \n\n\t \n", encoding="utf-8")
    (folder / "one.txt").write_text("aaaa", encoding="utf-8")
    (folder / "bad.txt").write_bytes(data[:100] + b"\xff" + data[100:])
    (folder / "nul.txt").write_bytes(data[:50] + b"\0" + data[50:])
    (folder / "small.txt").write_text("abcdefghij", encoding="utf-8")
    (folder / "folder").mkdir()
    (folder / "junk.npz").write_bytes(bytes(range(256)) * 4)
    (folder / "text.npz").write_text("this is not a checkpoint\n", encoding="utf-8")


def nan_at(monkeypatch, step, what):
    """Make window `step` (1-based) give a NaN loss, an infinite gradient, or infinite weights."""
    calls = []
    real = WindowRunner.loss_and_grads
    real_step = Optimizer.step

    def poisoned(self, params, grads, xs, ys, state, dropout=None):
        calls.append(1)
        loss = real(self, params, grads, xs, ys, state, dropout)
        if len(calls) == step:
            if what == "loss":
                return float("nan")
            if what == "gradient":
                grads.flat[3] = np.inf
        return loss

    def update(self, params, grads, lr):
        real_step(self, params, grads, lr)
        if len(calls) == step and what == "weights":
            params.flat[5] = np.inf

    monkeypatch.setattr(WindowRunner, "loss_and_grads", poisoned)
    monkeypatch.setattr(Optimizer, "step", update)
