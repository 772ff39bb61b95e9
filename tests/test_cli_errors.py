"""Every user mistake, through typer's CliRunner: exactly one line on stderr, the exit code, nothing half-written (test_cli's contract)."""

import json

import pytest
from helpers import TINY, assert_error, assert_error_prefix, cli, make_files, ok

pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs in its own folder holding corpus.txt

# ------------------------------------------------------------------ errors

T = ("train", "corpus.txt", "--steps", "3", "-q")
S = ("sample", "-m", "{model}")

# (args, exit code, the exact message after "charrnn: error: ")
ERRORS = [
    # bad files
    (("train", "missing.txt", "-q"), 1, "missing.txt: no such file"),
    (("train", "corpus.txt", "missing.txt", "-q"), 1, "missing.txt: no such file"),
    (("train", "folder", "-q"), 1, "folder: is a directory, not a text file"),
    (("train", "empty.txt", "-q"), 1, "empty.txt: corpus is empty"),
    (("train", "blank.txt", "-q"), 1, "blank.txt: corpus holds only whitespace"),
    (("train", "one.txt", "-q"), 1, "one.txt: corpus has only one distinct character ('a'); a model needs at least two"),
    (("train", "bad.txt", "-q"), 1, "bad.txt: invalid UTF-8 at byte offset 100 (pass --encoding-errors replace or ignore to accept it)"),
    (("train", "nul.txt", "-q"), 1, "nul.txt: NUL byte at offset 50; this looks like binary data, not text"),
    (("vocab", "missing.txt"), 1, "missing.txt: no such file"),
    (("vocab", "bad.txt"), 1, "bad.txt: invalid UTF-8 at byte offset 100 (pass --encoding-errors replace or ignore to accept it)"),
    (("vocab", "nul.txt", "--json"), 1, "nul.txt: NUL byte at offset 50; this looks like binary data, not text"),
    (("vocab", "one.txt"), 1, "one.txt: corpus has only one distinct character ('a'); a model needs at least two"),
    (("eval", "missing.txt", "-m", "{model}"), 1, "missing.txt: no such file"),
    (("eval", "empty.txt", "-m", "{model}"), 1, "empty.txt: corpus is empty"),
    (("eval", "folder", "-m", "{model}"), 1, "folder: is a directory, not a text file"),
    (("eval", "bad.txt", "-m", "{model}"), 1, "bad.txt: invalid UTF-8 at byte offset 100 (pass --encoding-errors replace or ignore to accept it)"),
    # bad checkpoints
    (("sample",), 1, "charrnn.npz: no such checkpoint"),
    (("sample", "-m", "missing.npz"), 1, "missing.npz: no such checkpoint"),
    (("sample", "-m", "junk.npz"), 1, "junk.npz: is not a charrnn checkpoint (not an .npz file)"),
    (("sample", "-m", "text.npz"), 1, "text.npz: is not a charrnn checkpoint (not an .npz file)"),
    (("eval", "corpus.txt"), 1, "charrnn.npz: no such checkpoint"),
    (("eval", "corpus.txt", "-m", "junk.npz"), 1, "junk.npz: is not a charrnn checkpoint (not an .npz file)"),
    (("info",), 1, "charrnn.npz: no such checkpoint"),
    (("info", "missing.npz"), 1, "missing.npz: no such checkpoint"),
    (("info", "junk.npz", "--json"), 1, "junk.npz: is not a charrnn checkpoint (not an .npz file)"),
    (("info", "text.npz"), 1, "text.npz: is not a charrnn checkpoint (not an .npz file)"),
    # bad flag values
    ((*T, "--hidden", "0"), 2, "--hidden must be an integer from 1 to 16384 (got 0)"),
    ((*T, "--seq", "0"), 2, "--seq must be an integer from 1 to 65536 (got 0)"),
    ((*T, "--batch", "-1"), 2, "--batch must be an integer from 1 to 65536 (got -1)"),
    ((*T, "--lr", "-1"), 2, "--lr must be a number in (0, 100] (got -1.0)"),
    ((*T, "--clip", "-1"), 2, "--clip must be a non-negative number (0 disables clipping) (got -1.0)"),
    ((*T, "--val-frac", "0.9"), 2, "--val-frac must be a fraction in [0, 0.5) (got 0.9)"),
    ((*T, "--val-split", "middle"), 2, "--val-split must be one of spread, tail (got 'middle')"),
    ((*T, "--optimizer", "rmsprop"), 2, "--optimizer must be one of adam, adagrad, sgd (got 'rmsprop')"),
    (("train", "corpus.txt", "--steps", "0"), 2, "--steps must be at least 1 (got 0)"),
    (("train", "corpus.txt", "--steps", "1" + "0" * 400), 2, "--steps must be at most 1,000,000,000,000,000 (got 1" + "0" * 400 + ")"),
    (("train", "corpus.txt", "--time", "1e300"), 2, "--time must be a positive number of seconds (got 1e+300)"),
    (("train", "corpus.txt", "--epochs", "0"), 2, "--epochs must be a positive number up to 1,000,000 (got 0.0)"),
    (("train", "corpus.txt", "--epochs", "1e308"), 2, "--epochs must be a positive number up to 1,000,000 (got 1e+308)"),
    (("train", "corpus.txt", "--time", "-1"), 2, "--time must be a positive number of seconds (got -1.0)"),
    (("train", "corpus.txt", "--time", "inf"), 2, "--time must be a positive number of seconds (got inf)"),
    (("train", "--resume", "missing.npz", "--hidden", "0"), 1, "missing.npz: no such checkpoint"),
    (("train", "--resume", "junk.npz", "--steps", "0"), 2, "--steps must be at least 1 (got 0)"),
    (("train", "--resume", "junk.npz"), 1, "junk.npz: is not a charrnn checkpoint (not an .npz file)"),
    ((*T, "--min-count", "0"), 2, "--min-count must be at least 1 (got 0)"),
    ((*T, "--cell", "foo"), 2, "--cell must be one of rnn, lstm, gru (got 'foo')"),
    ((*T, "--layers", "0"), 2, "--layers must be an integer from 1 to 64 (got 0)"),
    ((*T, "--layers", "65"), 2, "--layers must be an integer from 1 to 64 (got 65)"),
    ((*T, "--dropout", "1"), 2, "--dropout must be a probability in [0, 1) (got 1.0)"),
    ((*T, "--dropout", "-0.1"), 2, "--dropout must be a probability in [0, 1) (got -0.1)"),
    ((*T, "--lr-schedule", "step"), 2, "--lr-schedule must be one of constant, cosine (got 'step')"),
    ((*T, "--warmup", "-1"), 2, "--warmup must be a non-negative number of steps (got -1)"),
    ((*T, "--warmup", "4"), 2, "--warmup 4 is past the end of the run (3 steps); lower it"),
    ((*T, "--min-lr", "1"), 2, "--min-lr must be a number from 0 to the learning rate (got 1.0)"),
    ((*T, "--lr", "0.01", "--min-lr", "0.02"), 2, "--min-lr must be a number from 0 to the learning rate (got 0.02)"),
    ((*T, "--lr-schedule", "constant", "--min-lr", "1e-4"), 2,
     "--min-lr is where the cosine schedule ends; it does nothing with --lr-schedule constant"),
    ((*T, "--weight-decay", "-1"), 2, "--weight-decay must be a number from 0 to 10 (got -1.0)"),
    ((*T, "--encoding-errors", "loose"), 2, "--encoding-errors must be one of strict, replace, ignore (got 'loose')"),
    (("train", "-", "-", "-q"), 2, "stdin (-) can be read only once; give - at most once"),
    (("train", "small.txt", "--batch", "4", "--seq", "8"), 2,
     "the corpus gives 11 training tokens, too few for --batch 4 x --seq 8 (needs at least 33); lower --batch or --seq"),
    ((*T, "--out", "nowhere/x.npz"), 2, "cannot write checkpoint nowhere/x.npz: folder {tmp}/nowhere does not exist"),
    ((*T, "--out", "folder"), 2, "cannot write checkpoint folder: it is a folder"),
    ((*S, "--temperature", "-1"), 2, "--temperature must be a number from 0 to 100 (got -1.0); 0 picks the most likely character"),
    ((*S, "--top-k", "-1"), 2, "--top-k must be a non-negative integer (got -1); 0 keeps every character"),
    ((*S, "--length", "-5"), 2, "--length must be a non-negative integer (got -5)"),
    ((*S, "-n", "0"), 2, "--num-samples must be at least 1 (got 0)"),
    ((*S, "--seed", "-1"), 2, "--seed must be a non-negative integer (got -1)"),
    (("sample", "-m", "missing.npz", "-n", "0"), 2, "--num-samples must be at least 1 (got 0)"),  # flags first
    (("vocab", "corpus.txt", "--min-count", "0"), 2, "--min-count must be at least 1 (got 0)"),
    (("eval", "corpus.txt", "-m", "{model}", "--encoding-errors", "x"), 2, "--encoding-errors must be one of strict, replace, ignore (got 'x')"),
    # usage found by the parser
    (("train",), 2, "Missing argument 'corpus'."),
    (("vocab",), 2, "Missing argument 'corpus'."),
    (("eval",), 2, "Missing argument 'files'."),
    (("frobnicate",), 2, "No such command 'frobnicate'."),
    (("sample", "-m"), 2, "Option '-m' requires an argument."),
]  # fmt: skip


def fill(args, model, tmp_path):
    return [a.format(model=model, tmp=tmp_path.resolve()) for a in args]


@pytest.mark.parametrize("args, code, message", ERRORS, ids=[" ".join(e[0])[:60] for e in ERRORS])
def test_error_is_one_line(args, code, message, model, tmp_path):
    make_files(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli(*fill(args, model, tmp_path))
    assert_error(result, code, message.format(tmp=tmp_path.resolve()))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no checkpoint, no stray temp file


# Messages worded by typer's parser: asserted by their start, and as one line.
PARSER_ERRORS = [
    ((*T, "--hidden", "abc"), "Invalid value for '--hidden':"),
    ((*T, "--lr", "fast"), "Invalid value for '--lr':"),
    ((*S, "-l", "many"), "Invalid value for '--length' / '-l':"),
    ((*T, "--frobnicate"), "No such option: --frobnicate"),
    ((*T, "--layers", "two"), "Invalid value for '--layers':"),
    ((*T, "--dropout", "lots"), "Invalid value for '--dropout':"),
]


@pytest.mark.parametrize("args, prefix", PARSER_ERRORS, ids=[" ".join(e[0])[-30:] for e in PARSER_ERRORS])
def test_parser_error_is_one_line(args, prefix, model, tmp_path):
    assert_error_prefix(cli(*fill(args, model, tmp_path)), 2, prefix)
    assert not (tmp_path / "charrnn.npz").exists()


def test_error_from_stdin_names_stdin():
    assert_error(cli("train", "-", "-q", input=b""), 1, "<stdin>: corpus is empty")
    assert_error(
        cli("vocab", "-", input=b"ab\xffcd"), 1,
        "<stdin>: invalid UTF-8 at byte offset 2 (pass --encoding-errors replace or ignore to accept it)",
    )  # fmt: skip


def test_failed_train_keeps_the_previous_checkpoint(tmp_path):
    ok("train", "corpus.txt", *TINY, "-q")
    before = (tmp_path / "charrnn.npz").read_bytes()
    (tmp_path / "empty.txt").write_bytes(b"")
    assert_error(cli("train", "empty.txt", *TINY, "-q"), 1, "empty.txt: corpus is empty")
    assert (tmp_path / "charrnn.npz").read_bytes() == before


def test_train_every_cell_and_layer_setting_end_to_end(tmp_path):
    """--cell, --layers, --dropout and the schedule reach the checkpoint and info; sample and eval run it."""
    ok("train", "corpus.txt", *TINY, "-q", "--cell", "lstm", "--layers", "2", "--dropout", "0.2", "--lr-schedule", "cosine",
       "--warmup", "5", "--min-lr", "1e-4", "--weight-decay", "0.05", "-o", "lstm.npz")  # fmt: skip
    details = json.loads(ok("info", "lstm.npz", "--json").stdout)
    assert (details["cell"], details["layers"], details["dropout"], details["format"]) == ("lstm", 2, 0.2, 2)
    train = details["train"]
    assert (train["lr_schedule"], train["warmup"], train["min_lr"], train["weight_decay"]) == ("cosine", 5, 1e-4, 0.05)
    assert "lstm, 2 layers of 16 hidden units" in ok("info", "lstm.npz").stdout
    assert len(ok("sample", "-m", "lstm.npz", "--length", "40", "--seed", "1").stdout) == 41
    assert ok("eval", "corpus.txt", "-m", "lstm.npz").stdout.startswith("loss ")
    for flag, value, had in (("--cell", "gru", "lstm"), ("--layers", "1", "2"), ("--dropout", "0.5", "0.2"), ("--warmup", "9", "5")):
        assert_error(cli("train", "--resume", "lstm.npz", flag, value, "--steps", "2", "-q"), 2,
                     f"{flag} {value} conflicts with lstm.npz, trained with {flag} {had}; a resumed run keeps the "
                     f"checkpoint's settings (leave {flag} out, or train a new model)")  # fmt: skip
    ok("train", "--resume", "lstm.npz", "--cell", "lstm", "--steps", "2", "-q")
