"""A charrnn checkpoint loads into PyTorch with the README's code, as written, and scores a text
as charrnn does: for every cell with 2 layers."""

import re
from pathlib import Path

import numpy as np
import pytest

from charrnn.config import TrainConfig
from charrnn.corpus import load_corpus
from charrnn.evaluate import evaluate_ids
from charrnn.train import train
from charrnn.trained import load_model

torch = pytest.importorskip("torch")

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = "the quick brown fox jumps over the lazy dog; " * 40


def readme_block():
    """The python block after the <!-- torch-mapping --> marker."""
    match = re.search(r"<!-- torch-mapping -->\n```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "README.md has no torch-mapping block"
    return match.group(1)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_readme_loads_a_checkpoint_into_pytorch_with_the_same_loss(tmp_path, cell):
    (tmp_path / "corpus.txt").write_text(TEXT)
    corpus = load_corpus([str(tmp_path / "corpus.txt")])
    path = tmp_path / "m.npz"
    train(corpus, TrainConfig(cell=cell, layers=2, hidden=16, seq=8, batch=4, steps=40, dropout=0.2, val_frac=0.0), path)
    namespace = {}
    exec(compile(readme_block(), "README.md", "exec"), namespace)
    text = "the lazy fox, quick over the brown dog!"  # "," and "!" are not in TEXT: <unk> on both sides
    model = load_model(path)
    ids, _ = model.vocab.encode_text(text)
    ours = evaluate_ids(model.params, ids).loss
    theirs = namespace["torch_loss"](str(path), text)
    assert theirs == pytest.approx(ours, rel=1e-5)
    assert abs(ours - np.log(model.vocab.size)) > 0.05  # trained, not a uniform model
