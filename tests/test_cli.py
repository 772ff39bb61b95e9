"""Every subcommand through typer's CliRunner, and the CLI's contract:

* a user mistake prints exactly one line, `charrnn: error: <message>`, on stderr and exits
  non-zero (2 for flag values and usage, 1 for bad files), with nothing on stdout and no traceback;
* warnings are `charrnn: warning: ...` lines on stderr;
* stdout carries only the command's output: no progress, no ANSI escapes.

Models are tiny (H=16, T=8, B=4, 30 steps) so the whole file runs in seconds.
"""

import json
import math
import re
import time
from collections import Counter

import pytest
from typer.testing import CliRunner

import charrnn.cli

# A few KB of repetitive text with some variety; lowercase only, so "Z" and "é" are unknown.
CORPUS = (
    "the cat sat on the mat. " * 200
    + "a dog ran to the big red hat, and the fox hid in a box.\n"
    + "is it the cat or the dog? the bird flew by; we all saw it!\n" * 5
)
TINY = ["--hidden", "16", "--seq", "8", "--batch", "4", "--steps", "30", "--eval-every", "10"]
NAMES = [
    "anna", "bert", "carla", "dmitri", "elise", "farid", "greta", "hugo", "ines", "jonas",
    "karin", "lars", "maria", "nils", "olga", "pavel", "quinn", "rosa", "sven", "tilda",
    "ulla", "viktor", "wanda", "xaver", "yara", "zeno",
]  # fmt: skip
NAMES_TEXT = "\n".join(NAMES * 12) + "\n"

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


def warning_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("charrnn: warning: ")]


def unknown_warning(chars):
    return "charrnn: warning: not in the model's vocabulary, read as <unk>: " + ", ".join(map(repr, chars))


# ------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Every test runs in its own folder holding corpus.txt; default outputs land there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """One tiny model trained on CORPUS, reused by the sample / eval / info tests (read-only)."""
    folder = tmp_path_factory.mktemp("model")
    (folder / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    out = folder / "model.npz"
    ok("train", folder / "corpus.txt", *TINY, "--quiet", "--out", out)
    return out


@pytest.fixture(scope="module")
def names_model(tmp_path_factory):
    """A tiny --lines model: every name is one record."""
    folder = tmp_path_factory.mktemp("names")
    (folder / "names.txt").write_text(NAMES_TEXT, encoding="utf-8")
    out = folder / "names.npz"
    ok("train", folder / "names.txt", "--lines", *TINY[:-4], "--steps", "80", "--eval-every", "20", "-q", "-o", out)
    return out


def vocab_json(*args, input=None):
    return json.loads(ok("vocab", *args, "--json", input=input).stdout)


def info_json(path="charrnn.npz"):
    return json.loads(ok("info", path, "--json").stdout)


# ------------------------------------------------------------------ help


def test_help_lists_every_command():
    result = ok("--help")
    for command in ("vocab", "train", "sample", "eval", "info"):
        assert command in result.stdout
    assert result.stderr == ""


def test_bare_command_shows_help_not_an_error_line():
    result = cli()
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "charrnn: error" not in result.stderr
    assert "Usage:" in result.stderr and "train" in result.stderr


# ------------------------------------------------------------------ vocab


def table_rows(stdout):
    """The body rows of a rich table: lists of stripped cells."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in stdout.splitlines() if line.startswith("│")]


def test_vocab_table():
    result = ok("vocab", "corpus.txt")
    assert result.stderr == ""
    counts = Counter(CORPUS)
    size = len(counts) + 2
    assert f"{size} tokens" in result.stdout
    rows = table_rows(result.stdout)
    assert [row[0] for row in rows] == [str(i) for i in range(size)]
    by_char = {row[1]: row for row in rows}
    assert rows[0][1] == "<unk>" and rows[1][1] == "<eos>"
    assert by_char["<unk>"][2] == "0"
    assert by_char["<eos>"][2] == "1"  # one file, one record
    assert by_char["␠"][2] == f"{counts[' ']:,}"  # space shown visibly
    assert by_char["\\n"][2] == f"{counts[chr(10)]:,}"  # newline shown visibly
    assert by_char["t"][2] == f"{counts['t']:,}"
    assert all(row[3].endswith("%") for row in rows)


def test_vocab_json():
    data = vocab_json("corpus.txt")
    tokens = data["tokens"]
    assert data["size"] == len(tokens) == len(set(CORPUS)) + 2
    assert [t["id"] for t in tokens] == list(range(data["size"]))
    assert (tokens[0]["token"], tokens[1]["token"]) == ("<unk>", "<eos>")
    assert (data["unk_id"], data["eos_id"]) == (0, 1)
    counts = Counter(CORPUS)
    for t in tokens[2:]:
        assert t["count"] == counts[t["token"]]
    displays = {t["token"]: t["display"] for t in tokens}
    assert displays[" "] == "␠" and displays["\n"] == "\\n"
    assert math.isclose(sum(t["share"] for t in tokens), 1.0)


def test_vocab_lines_makes_every_line_a_record(tmp_path):
    (tmp_path / "names.txt").write_text("anna\nbert\n\ncarla\n", encoding="utf-8")
    data = vocab_json("names.txt", "--lines")
    tokens = {t["token"]: t for t in data["tokens"]}
    assert tokens["<eos>"]["count"] == 3  # the empty line is no record
    assert "\n" not in tokens  # newlines became <eos>
    plain = vocab_json("names.txt")
    assert {t["token"]: t for t in plain["tokens"]}["<eos>"]["count"] == 1


def test_vocab_min_count_folds_rare_characters_into_unk(tmp_path):
    (tmp_path / "rare.txt").write_text("aaaabbbbcd", encoding="utf-8")
    data = vocab_json("rare.txt", "--min-count", "2")
    assert [t["token"] for t in data["tokens"]] == ["<unk>", "<eos>", "a", "b"]
    assert data["tokens"][0]["count"] == 2  # c and d
    rows = table_rows(ok("vocab", "rare.txt", "--min-count", "2").stdout)
    assert rows[0][:3] == ["0", "<unk>", "2"]


def test_vocab_several_files_and_stdin(tmp_path):
    (tmp_path / "a.txt").write_text("abc", encoding="utf-8")
    (tmp_path / "b.txt").write_text("cde", encoding="utf-8")
    data = vocab_json("a.txt", "b.txt")
    assert [t["token"] for t in data["tokens"]] == ["<unk>", "<eos>", "a", "b", "c", "d", "e"]
    assert data["tokens"][1]["count"] == 2  # one record per file
    assert vocab_json("a.txt", "-", input=b"cde") == data


# ------------------------------------------------------------------ train


def test_train_writes_latest_and_best_checkpoints(tmp_path):
    result = ok("train", "corpus.txt", *TINY)
    assert result.stdout == ""
    assert (tmp_path / "charrnn.npz").is_file()
    assert (tmp_path / "charrnn.best.npz").is_file()
    lines = result.stderr.splitlines()
    assert lines[0].startswith("training ") and "30 steps" in lines[0]
    assert re.fullmatch(
        r"trained 30 steps at [\d,]+ chars/s; best val loss \d+\.\d{4} nats \(\d+\.\d{3} bits/char\); "
        r"checkpoint charrnn\.npz \(best: charrnn\.best\.npz\)",
        lines[-1],
    ), lines[-1]
    assert not any(line.startswith("charrnn: ") for line in lines)
    assert ANSI not in result.stderr  # not a terminal: plain lines
    info = info_json()
    assert info["steps"] == 30 and info["hidden"] == 16


def test_train_quiet_prints_nothing(tmp_path):
    result = ok("train", "corpus.txt", *TINY, "--quiet")
    assert result.stdout == "" and result.stderr == ""
    assert (tmp_path / "charrnn.npz").is_file()


def test_train_out_path(tmp_path):
    (tmp_path / "models").mkdir()
    result = ok("train", "corpus.txt", *TINY, "--out", "models/cat.npz")
    assert (tmp_path / "models" / "cat.npz").is_file()
    assert (tmp_path / "models" / "cat.best.npz").is_file()
    assert not (tmp_path / "charrnn.npz").exists()
    assert "checkpoint models/cat.npz (best: models/cat.best.npz)" in result.stderr


def test_train_from_stdin(tmp_path):
    result = ok("train", "-", *TINY, "-q", input=CORPUS.encode())
    assert result.stdout == "" and result.stderr == ""
    info = info_json()
    assert info["corpus"]["chars"] == len(CORPUS)
    # the same bytes from a file are the same corpus
    ok("train", "corpus.txt", *TINY, "-q", "-o", "file.npz")
    assert info_json("file.npz")["corpus"]["fingerprint"] == info["corpus"]["fingerprint"]


def test_train_several_files(tmp_path):
    (tmp_path / "more.txt").write_text("the bird flew by the box.\n" * 40, encoding="utf-8")
    ok("train", "corpus.txt", "more.txt", *TINY, "-q")
    info = info_json()
    assert info["corpus"]["chars"] == len(CORPUS) + 40 * 26
    assert "w" in info["vocab"]


def test_train_lines(tmp_path):
    (tmp_path / "names.txt").write_text(NAMES_TEXT, encoding="utf-8")
    ok("train", "names.txt", "--lines", *TINY, "-q")
    info = info_json()
    assert info["lines"] is True and info["train"]["lines"] is True
    assert "\\n" not in info["vocab"]
    assert "one per line" in ok("info").stdout


def test_train_time_limit_stops(tmp_path):
    start = time.monotonic()
    result = ok("train", "corpus.txt", "--hidden", "16", "--seq", "8", "--batch", "4", "--time", "0.5", "--eval-every", "1000")
    assert time.monotonic() - start < 20
    assert "until the time limit" in result.stderr.splitlines()[0]
    steps = info_json()["steps"]
    assert steps >= 1
    assert f"trained {steps:,} steps" in result.stderr


def test_train_epochs(tmp_path):
    result = ok("train", "corpus.txt", *TINY[:6], "--epochs", "0.5", "--eval-every", "50")
    per_epoch = int(re.search(r"([\d,]+) steps per epoch", result.stderr).group(1).replace(",", ""))
    expected = math.ceil(0.5 * per_epoch)
    assert f"trained {expected:,} steps" in result.stderr
    assert info_json()["steps"] == expected


def test_train_accepts_invalid_utf8_when_asked(tmp_path):
    data = CORPUS.encode()
    (tmp_path / "bad.txt").write_bytes(data[:100] + b"\xff" + data[100:])
    ok("train", "bad.txt", *TINY, "-q", "--encoding-errors", "replace")
    assert "\ufffd" in info_json()["vocab"]
    assert "\ufffd" not in {t["token"] for t in vocab_json("bad.txt", "--encoding-errors", "ignore")["tokens"]}


def test_train_crlf_lines_like_lf(tmp_path):
    """Windows line ends: with --lines the CR goes with the newline; the records are those of the LF file."""
    (tmp_path / "lf.txt").write_bytes(NAMES_TEXT.encode())
    (tmp_path / "crlf.txt").write_bytes(NAMES_TEXT.replace("\n", "\r\n").encode())
    assert vocab_json("crlf.txt", "--lines") == vocab_json("lf.txt", "--lines")
    ok("train", "crlf.txt", "--lines", *TINY, "-q", "-o", "crlf.npz")
    info = info_json("crlf.npz")
    assert info["lines"] is True and "\\r" not in info["vocab"] and "\\n" not in info["vocab"]
    ok("train", "lf.txt", "--lines", *TINY, "-q", "-o", "lf.npz")
    assert info["vocab"] == info_json("lf.npz")["vocab"]


def test_train_on_a_single_50_mb_line(tmp_path, monkeypatch):
    """One line of 50 MiB, no newline at all, in lines mode: one record; it encodes in chunks and trains."""
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    size = 50 << 20
    line = (b"the cat sat on the mat; " * (size // 24 + 1))[:size]
    big = tmp_path / "line.txt"
    big.write_bytes(line)
    try:
        ok("train", "line.txt", "--lines", "--hidden", "8", "--seq", "16", "--batch", "4", "--steps", "2", "-q")
        info = info_json()
        assert info["steps"] == 2 and info["corpus"]["chars"] == size
        assert info["vocab"][:2] == ["<unk>", "<eos>"] and len(info["vocab"]) == len(set(line)) + 2
    finally:
        big.unlink()
        for entry in (tmp_path / "cache").glob("*"):
            entry.unlink()


# ------------------------------------------------------------------ sample


def sample(model, *args, input=None):
    return ok("sample", "-m", model, *args, input=input)


def test_sample_prime_comes_first_and_length(model):
    result = sample(model, "--prime", "the cat", "--length", "37", "--seed", "1")
    out = result.stdout
    assert result.stderr == ""
    assert out.startswith("the cat") and out.endswith("\n")
    assert len(out) - len("the cat") in (37, 38)  # 37 characters, then a newline unless the last one was one
    greedy = sample(model, "--prime", "the cat", "-l", "37", "-t", "0").stdout
    assert greedy.startswith("the cat") and len(greedy) == len("the cat") + 37 + 1


def test_sample_length_zero_prints_the_prime(model):
    assert sample(model, "--prime", "the cat", "-l", "0").stdout == "the cat\n"


def test_sample_seed_reproduces(model):
    a = sample(model, "-l", "200", "--seed", "7").stdout
    b = sample(model, "-l", "200", "--seed", "7").stdout
    c = sample(model, "-l", "200", "--seed", "8").stdout
    assert a == b
    assert a != c


def test_sample_temperature_zero_is_deterministic_and_equals_top_k_one(model):
    a = sample(model, "--prime", "the ", "-l", "60", "-t", "0").stdout
    b = sample(model, "--prime", "the ", "-l", "60", "-t", "0").stdout
    assert a == b
    assert sample(model, "--prime", "the ", "-l", "60", "--top-k", "1").stdout == a
    assert sample(model, "--prime", "the ", "-l", "60", "--top-k", "1", "--seed", "3", "-t", "2").stdout == a


def test_sample_several(model):
    one = sample(model, "--prime", "the", "-l", "20", "-t", "0").stdout
    assert sample(model, "--prime", "the", "-l", "20", "-t", "0", "-n", "3").stdout == one * 3
    seeded = sample(model, "-l", "30", "--seed", "5", "--num-samples", "3").stdout
    assert seeded.endswith("\n")


def test_sample_lines_model_gives_one_record_per_line(names_model):
    result = sample(names_model, "-n", "6", "-l", "500", "--seed", "2")
    lines = result.stdout.split("\n")
    assert lines[-1] == ""  # ends with a newline
    records = lines[:-1]
    assert len(records) == 6
    assert all(len(r) < 500 for r in records)  # each one stopped at <eos>, not at --length


def test_sample_prime_outside_vocabulary_warns(model):
    result = cli("sample", "-m", model, "--prime", "Zé the", "-l", "10", "--seed", "0")
    assert result.exit_code == 0
    assert result.stderr == unknown_warning("Zé") + "\n"
    assert result.stdout.startswith("Zé the")


def test_sample_default_model_in_current_folder(model, tmp_path):
    (tmp_path / "charrnn.npz").write_bytes(model.read_bytes())
    assert ok("sample", "-l", "20", "--seed", "4").stdout == sample(model, "-l", "20", "--seed", "4").stdout


# ------------------------------------------------------------------ eval

EVAL_LINE = re.compile(r"loss (\d+\.\d{4}) nats/char  bpc (\d+\.\d{4})  perplexity (\d+\.\d{3})  \(([\d,]+) chars\)\n")


def test_eval_text(model):
    result = ok("eval", "corpus.txt", "-m", model)
    assert result.stderr == ""
    match = EVAL_LINE.fullmatch(result.stdout)
    assert match, result.stdout
    loss, bpc, ppl = (float(match.group(i)) for i in (1, 2, 3))
    assert int(match.group(4).replace(",", "")) == len(CORPUS) + 1  # every character and the <eos>
    assert math.isclose(bpc, loss / math.log(2), abs_tol=2e-4)
    assert math.isclose(ppl, math.exp(loss), rel_tol=1e-3)


def test_eval_json(model):
    result = ok("eval", "corpus.txt", "-m", model, "--json")
    data = json.loads(result.stdout)
    assert set(data) == {"loss", "bpc", "perplexity", "chars"}
    assert 0 < data["loss"] < math.log(len(set(CORPUS)) + 2) + 1
    assert math.isclose(data["bpc"], data["loss"] / math.log(2), rel_tol=1e-12)
    assert math.isclose(data["perplexity"], math.exp(data["loss"]), rel_tol=1e-12)
    assert data["chars"] == len(CORPUS) + 1
    text = EVAL_LINE.fullmatch(ok("eval", "corpus.txt", "-m", model).stdout)
    assert float(text.group(1)) == round(data["loss"], 4)


def test_eval_stdin_equals_file(model):
    from_file = ok("eval", "corpus.txt", "-m", model, "--json").stdout
    assert ok("eval", "-", "-m", model, "--json", input=CORPUS.encode()).stdout == from_file


def test_eval_unknown_characters_warn(model, tmp_path):
    (tmp_path / "odd.txt").write_text("the Zoo by the café\n", encoding="utf-8")
    result = ok("eval", "odd.txt", "-m", model, "--json")
    assert result.stderr == unknown_warning("Zé") + "\n"
    assert json.loads(result.stdout)["chars"] == len("the Zoo by the café\n") + 1


def test_eval_default_model_in_current_folder(model, tmp_path):
    (tmp_path / "charrnn.npz").write_bytes(model.read_bytes())
    assert ok("eval", "corpus.txt").stdout == ok("eval", "corpus.txt", "-m", model).stdout


# ------------------------------------------------------------------ info


def test_info_text(model):
    result = ok("info", model)
    assert result.stderr == ""
    out = result.stdout
    assert "16 hidden units" in out
    assert re.search(r"steps trained\s+30\b", out)
    assert re.search(r"train\.hidden\s+16\b", out)
    vocab_line = next(line for line in out.splitlines() if line.strip().startswith("vocabulary"))
    assert vocab_line.split()[1:3] == ["<unk>", "<eos>"]
    assert "␠" in vocab_line and "\\n" in vocab_line


def test_info_json(model):
    data = info_json(model)
    assert data["hidden"] == 16
    assert data["steps"] == 30
    assert data["vocab"][:2] == ["<unk>", "<eos>"]
    assert data["vocab_size"] == len(data["vocab"]) == len(set(CORPUS)) + 2
    assert data["lines"] is False
    assert data["train"]["hidden"] == 16 and data["train"]["seq"] == 8 and data["train"]["batch"] == 4
    assert data["corpus"]["chars"] == len(CORPUS)
    assert data["corpus"]["fingerprint"].startswith("sha256:")


def test_info_default_path(model, tmp_path):
    (tmp_path / "charrnn.npz").write_bytes(model.read_bytes())
    data = info_json()
    assert data["path"] == "charrnn.npz" and data["steps"] == 30


# ------------------------------------------------------------------ errors


def make_files(folder):
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
