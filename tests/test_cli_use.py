"""sample, eval and info through typer's CliRunner, on conftest.py's tiny models (test_cli's contract holds here too)."""

import json
import math
import re

import pytest
from helpers import CORPUS, cli, info_json, ok, unknown_warning

pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs in its own folder holding corpus.txt

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
