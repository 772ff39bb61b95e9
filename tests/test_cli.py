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
from helpers import ANSI, CORPUS, NAMES_TEXT, TINY, cli, info_json, ok

pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs in its own folder holding corpus.txt


def warning_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("charrnn: warning: ")]


def vocab_json(*args, input=None):
    return json.loads(ok("vocab", *args, "--json", input=input).stdout)


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
