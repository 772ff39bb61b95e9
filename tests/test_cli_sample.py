"""`charrnn sample` through typer's CliRunner: records and streams, --top-p, primes from a file or
standard input, --stop, --no-prime-echo, and the exact one-line errors of every bad value.
(The real-pipe cases are in tests/test_pipeline.py.)"""

import numpy as np
import pytest
from helpers import CORPUS, NAMES_TEXT, TINY, assert_error, cli, make_files, ok

from charrnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from charrnn.vocab import EOS_ID, UNK_ID

pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs in its own folder holding corpus.txt


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models: "files" trained on one whole file (with no newline, so that every newline in a
    sample is one that charrnn wrote), "names" with --lines, and two doctored
    copies of "files": "eos" (its <eos> and <unk> far more likely than any character) and "empty"
    (a vocabulary of only <unk> and <eos>)."""
    folder = tmp_path_factory.mktemp("models")
    (folder / "corpus.txt").write_text(CORPUS.replace("\n", " "), encoding="utf-8")
    (folder / "names.txt").write_text(NAMES_TEXT, encoding="utf-8")
    ok("train", folder / "corpus.txt", *TINY, "-q", "-o", folder / "files.npz")
    ok("train", folder / "names.txt", "--lines", *TINY[:-4], "--steps", "80", "--eval-every", "20", "-q", "-o", folder / "names.npz")
    ckpt = load_checkpoint(folder / "files.npz")
    ckpt.params["bias_out"][[UNK_ID, EOS_ID]] += 6.0
    save_checkpoint(folder / "eos.npz", ckpt)
    p = ckpt.params
    two = dict(p, weight_ih_l0=p["weight_ih_l0"][:, :2], weight_out=p["weight_out"][:2], bias_out=p["bias_out"][:2])
    meta = dict(ckpt.meta, model=dict(ckpt.meta["model"], vocab_size=2))
    save_checkpoint(folder / "empty.npz", Checkpoint({k: np.ascontiguousarray(v) for k, v in two.items()}, ckpt.vocab[:2], meta))
    return {name: folder / f"{name}.npz" for name in ("files", "names", "eos", "empty")}


def sample(model, *args, input=None):
    return ok("sample", "-m", model, *args, input=input).stdout


# ------------------------------------------------------------------ records and streams


def test_a_stream_is_exactly_as_long_as_asked(models):
    for model in (models["files"], models["eos"]):  # "eos": <eos> would win almost every draw, were it drawn
        for length in (1, 63, 64, 65, 3000):
            out = sample(model, "-l", length, "--seed", "3")
            assert len(out) == length + (not out[:length].endswith("\n"))  # then the sample's closing newline
            assert "\ufffd" not in out  # no <unk>


def test_until_eos_ends_a_stream_model_at_the_end_of_a_document(models):
    out = sample(models["eos"], "--until-eos", "-l", "400", "-n", "20", "--seed", "1")
    samples = out.split("\n")[:-1]
    assert len(samples) >= 20 and "\ufffd" not in out
    assert sum(len(s) for s in samples) < 20 * 400 / 4  # <eos> ended most documents early


def test_records_one_per_line_and_no_unk(models):
    out = sample(models["names"], "-n", "50", "--seed", "3")
    records = out.split("\n")
    assert records[-1] == "" and len(records) == 51
    assert "\ufffd" not in out and all(r.isalpha() or r == "" for r in records)


def test_no_until_eos_makes_a_stream_of_records(models):
    out = sample(models["names"], "--no-until-eos", "-l", "300", "--seed", "2")
    assert len(out) == 300 + (not out[:300].endswith("\n"))
    names = out.split("\n")[:-1]
    assert len(names) >= 10 and all(name.isalpha() for name in names[:-1])  # a stream of names, one per line


def test_a_model_without_characters_is_one_line(models):
    result = cli("sample", "-m", models["empty"], "-l", "10")
    assert_error(result, 1, f"{models['empty']}: the model has no characters to sample: its vocabulary holds only <unk> and <eos>")


# ------------------------------------------------------------------ top-p


def test_top_p_near_zero_is_greedy_and_one_is_off(models):
    greedy = sample(models["files"], "--prime", "the ", "-l", "80", "-t", "0")
    assert sample(models["files"], "--prime", "the ", "-l", "80", "--top-p", "1e-6", "--seed", "4") == greedy
    plain = sample(models["files"], "-l", "200", "--seed", "4", "-t", "1.5")
    assert sample(models["files"], "-l", "200", "--seed", "4", "-t", "1.5", "--top-p", "1") == plain
    assert sample(models["files"], "-l", "200", "--seed", "4", "-t", "1.5", "--top-p", "0.5") != plain


# ------------------------------------------------------------------ primes


def test_prime_file_and_stdin_drop_one_final_newline(models, tmp_path):
    expected = sample(models["files"], "--prime", "the cat", "-l", "40", "--seed", "9")
    (tmp_path / "prime.txt").write_text("the cat\n", encoding="utf-8")
    assert sample(models["files"], "--prime-file", "prime.txt", "-l", "40", "--seed", "9") == expected
    assert sample(models["files"], "--prime", "-", "-l", "40", "--seed", "9", input=b"the cat\r\n") == expected
    assert sample(models["files"], "--prime-file", "-", "-l", "40", "--seed", "9", input=b"the cat") == expected
    (tmp_path / "two.txt").write_bytes(b"\xef\xbb\xbfthe cat\n\n")  # a BOM, and a blank last line that stays
    assert sample(models["files"], "--prime-file", "two.txt", "-l", "5", "-t", "0").startswith("the cat\n")


def test_a_newline_in_a_records_prime_ends_a_record(models):
    result = ok("sample", "-m", models["names"], "--prime", "anna\nb", "-l", "30", "--seed", "1")
    assert result.stderr == ""  # no "\n" is unknown: it is the record end
    assert result.stdout.startswith("anna\nb") and result.stdout.count("\n") == 2


def test_no_prime_echo(models):
    echoed = sample(models["files"], "--prime", "the cat", "-l", "30", "--seed", "5", "-n", "2")
    bare = sample(models["files"], "--prime", "the cat", "-l", "30", "--seed", "5", "-n", "2", "--no-prime-echo")
    assert echoed.startswith("the cat") and not bare.startswith("the cat")
    assert echoed == "".join("the cat" + s + "\n" for s in bare.split("\n")[:-1])


# ------------------------------------------------------------------ stop strings, seeds


def test_stop_ends_right_after_the_first_occurrence(models):
    out = sample(models["files"], "--prime", "the", "-l", "2000", "--seed", "6", "--stop", " ", "--no-prime-echo")
    assert out.endswith(" \n") and out.count(" ") == 1
    two = sample(models["files"], "-l", "2000", "--seed", "6", "--stop", "a", "--stop", "t", "--no-prime-echo")
    assert two.endswith(("a\n", "t\n")) and two.count("a") + two.count("t") == 1
    free = sample(models["files"], "-l", "2000", "--seed", "6", "--no-prime-echo")
    end = min(i for i in (free.find("a"), free.find("t")) if i >= 0)
    assert two == free[: end + 1] + "\n"  # the same text, cut right after the first stop


def test_stop_understands_escapes(models):
    out = sample(models["names"], "--no-until-eos", "-l", "5000", "--seed", "2", "--stop", r"\n", "--prime", "an")
    assert out.endswith("\n") and out.count("\n") == 1 and out.startswith("an") and len(out) < 100  # one name
    plain = sample(models["files"], "-l", "500", "--seed", "2", "--stop", "a")
    assert sample(models["files"], "-l", "500", "--seed", "2", "--stop", r"\x61") == plain


def test_each_seeded_sample_is_the_same_whatever_came_before(models):
    one = sample(models["files"], "-l", "50", "--seed", "7")
    three = sample(models["files"], "-l", "50", "--seed", "7", "-n", "3")
    assert three.startswith(one) and len(set(three.split("\n")[:-1])) == 3
    stopped = sample(models["files"], "-l", "50", "--seed", "7", "-n", "3", "--stop", "e")
    assert stopped.split("\n")[1] == three.split("\n")[1][: len(stopped.split("\n")[1])]


# ------------------------------------------------------------------ bad values

S = ("sample", "-m", "{files}")
ERRORS = [
    ((*S, "--top-p", "0"), 2, "--top-p must be a number above 0 and at most 1 (got 0.0); 1 keeps every character"),
    ((*S, "--top-p", "1.5"), 2, "--top-p must be a number above 0 and at most 1 (got 1.5); 1 keeps every character"),
    ((*S, "--top-p", "nan"), 2, "--top-p must be a number above 0 and at most 1 (got nan); 1 keeps every character"),
    ((*S, "--prime-file", "missing.txt"), 2, "--prime-file missing.txt: no such file"),
    ((*S, "--prime-file", "folder"), 2, "--prime-file folder: is a directory, not a text file"),
    ((*S, "--prime-file", "bad.txt"), 2, "--prime-file bad.txt: invalid UTF-8 at byte offset 100"),
    ((*S, "--prime", "the", "--prime-file", "corpus.txt"), 2, "give --prime or --prime-file, not both"),
    ((*S, "--stop", ""), 2, "--stop must not be empty"),
    ((*S, "--stop", "a", "--stop", ""), 2, "--stop must not be empty"),
    ((*S, "--stop", "\\x4"), 2, "--stop '\\x4': truncated \\xXX escape"),
    (("sample", "-m", "missing.npz", "--top-p", "2"), 2, "--top-p must be a number above 0 and at most 1 (got 2.0); 1 keeps every character"),
    (("sample", "-m", "missing.npz", "--prime-file", "missing.txt"), 2, "--prime-file missing.txt: no such file"),
]  # fmt: skip


@pytest.mark.parametrize("args, code, message", ERRORS, ids=[" ".join(e[0][3:])[:50] for e in ERRORS])
def test_error_is_one_line(args, code, message, models, tmp_path):
    make_files(tmp_path)
    assert_error(cli(*[a.format(files=models["files"]) for a in args]), code, message)


def test_bad_utf8_on_stdin_is_one_line(models):
    result = cli("sample", "-m", models["files"], "--prime", "-", input=b"ab\xffcd")
    assert_error(result, 2, "--prime - (standard input): invalid UTF-8 at byte offset 2")
