"""The Python API (charrnn.train / resume / load and the Model): the command's behaviour and errors,
for a script. The CLI is built on it, so the two must agree exactly."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import charrnn
from helpers import API_TINY, CORPUS, TINY, cli, ok

pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs in its own folder holding corpus.txt


def test_import_charrnn_loads_neither_numpy_nor_numba():
    code = "import sys, charrnn; charrnn.CharrnnError; print(sorted(m for m in ('numpy', 'numba', 'rich', 'typer') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_train_load_sample_and_evaluate_give_what_the_commands_give(corpus):
    result = charrnn.train(corpus, "api.npz", steps=30, **API_TINY)
    assert isinstance(result, charrnn.TrainResult)
    assert (result.steps, result.checkpoint, result.stopped_early) == (30, "api.npz", False)
    assert result.corpus_paths == (str(corpus.resolve()),)
    ok("train", corpus, "-o", "cli.npz", *TINY)
    api_params = np.load("api.npz", allow_pickle=False)
    cli_params = np.load("cli.npz", allow_pickle=False)
    assert all(np.array_equal(api_params[k], cli_params[k]) for k in api_params.files if k.startswith(("weight", "bias")))

    model = charrnn.load("api.npz")
    assert isinstance(model, charrnn.Model)
    text = model.sample("the ", length=80, temperature=0.8, seed=7)
    assert text == ok("sample", "-m", "api.npz", "--prime", "the ", "-l", "80", "-t", "0.8", "--seed", "7").stdout.rstrip("\n")
    assert text.startswith("the ") and len(text) == 4 + 80
    assert "".join(model.stream("the ", length=80, temperature=0.8, seed=7)) == text
    assert model.sample("the ", length=80, temperature=0.8, seed=7, prime_echo=False) == text[4:]

    scored = model.evaluate(CORPUS[:2000])
    (tmp := Path("part.txt")).write_text(CORPUS[:2000], encoding="utf-8")
    assert scored.loss == pytest.approx(model.evaluate(tmp).loss, abs=0)
    assert model.evaluate([str(tmp)]).chars == scored.chars == 2001  # the characters and the final <eos>
    assert json.loads(ok("eval", "-m", "api.npz", tmp, "--json").stdout)["loss"] == scored.loss
    assert scored.bpc == pytest.approx(scored.loss / np.log(2))


def test_text_instead_of_a_file_and_a_list_of_files(corpus):
    from_text = charrnn.train(text=CORPUS, out="text.npz", steps=5, **API_TINY)
    assert from_text.corpus_paths is None
    halves = [Path("a.txt"), Path("b.txt")]
    halves[0].write_text(CORPUS[:3000], encoding="utf-8")
    halves[1].write_text(CORPUS[3000:], encoding="utf-8")
    both = charrnn.train(halves, "two.npz", steps=5, **API_TINY)
    assert len(both.corpus_paths) == 2
    assert charrnn.load("two.npz").info()["corpus"]["chars"] == len(CORPUS)  # each file a record
    charrnn.train(corpus, "file.npz", steps=5, **API_TINY)
    a, b = (np.load(p, allow_pickle=False) for p in ("text.npz", "file.npz"))
    assert np.array_equal(a["weight_out"], b["weight_out"])  # the same text as a file: the same run


def test_resume_continues_bitwise_and_refuses_a_changed_setting(corpus):
    # constant: with cosine, 10 steps and 10 more are not one 20-step plan (test_resume has the in-plan case)
    charrnn.train(corpus, "one.npz", steps=20, lr_schedule="constant", **API_TINY)
    charrnn.train(corpus, "two.npz", steps=10, lr_schedule="constant", **API_TINY)
    assert charrnn.resume("two.npz", steps=10).steps == 20
    one, two = (np.load(p, allow_pickle=False) for p in ("one.npz", "two.npz"))
    assert all(np.array_equal(one[k], two[k]) for k in one.files if k.startswith(("weight", "bias")))
    with pytest.raises(charrnn.UsageError, match=r"^--hidden 32 conflicts with two.npz, trained with --hidden 16;"):
        charrnn.resume("two.npz", steps=1, hidden=32)


def test_mistakes_raise_charrnn_errors_with_the_commands_message(corpus):
    cases = [
        (lambda: charrnn.train(corpus, "m.npz", layers=0), "--layers must be an integer from 1 to 64 (got 0)"),
        (lambda: charrnn.train(corpus, "m.npz", cell="foo"), "--cell must be one of rnn, lstm, gru (got 'foo')"),
        (lambda: charrnn.train("missing.txt", "m.npz"), None),
        (lambda: charrnn.train(), "Missing argument 'corpus'."),
        (lambda: charrnn.train(corpus, text="abc"), "give a corpus (a path or a list of paths) or text=, not both"),
        (lambda: charrnn.load("missing.npz"), None),
    ]
    for call, message in cases:
        with pytest.raises(charrnn.CharrnnError) as caught:
            call()
        if message is not None:
            assert str(caught.value) == message
    with pytest.raises(charrnn.UsageError, match=r"^unknown setting 'hiden'; the settings are batch, cell, clip,"):
        charrnn.train(corpus, hiden=16)
    # the command prints the same message, as one line
    assert cli("train", corpus, "--layers", "0").stderr == "charrnn: error: --layers must be an integer from 1 to 64 (got 0)\n"


def test_sampling_mistakes_are_caught_at_the_call_not_at_the_first_piece(corpus):
    charrnn.train(corpus, "m.npz", steps=3, **API_TINY)
    model = charrnn.load("m.npz")
    for bad in (dict(temperature=-1), dict(top_p=0), dict(length=-1), dict(stop=[""])):
        with pytest.raises(charrnn.UsageError):
            model.stream("a", **bad)


def test_characters_the_model_lacks_are_a_charrnn_warning(corpus):
    charrnn.train(corpus, "m.npz", steps=3, **API_TINY)
    model = charrnn.load("m.npz")
    with pytest.warns(charrnn.CharrnnWarning, match=r"not in the model's vocabulary, read as <unk>: 'Z'"):
        model.sample("Zebra", length=5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.sample("the", length=5, seed=0)  # no warning for known characters


def test_settings_and_info_describe_the_run(corpus):
    charrnn.train(corpus, "m.npz", steps=3, cell="gru", **API_TINY)
    model = charrnn.load("m.npz")
    assert model.settings["cell"] == "gru" and model.settings["hidden"] == 16 and model.settings["steps"] == 3
    info = model.info()
    assert (info["cell"], info["hidden"], info["steps"], info["path"]) == ("gru", 16, 3, "m.npz")
    assert model.vocab == charrnn.Vocab.from_tokens(model.vocab.tokens)


def readme_example():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API") :]
    return section[section.index("```python\n") + len("```python\n") : section.index("\n```", section.index("```python"))]


def test_the_readme_example_runs_as_written(tmp_path):
    code = readme_example()
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "loss" in done.stdout and len(done.stdout) > 100
