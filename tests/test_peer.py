"""benchmarks/peer_plain.py, the quality benchmark's PyTorch loop, shares no code with charrnn: its
schedule and its held-out scorer are checked against charrnn's here (when torch is installed)."""

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from charrnn.cells import CELLS
from charrnn.config import TrainConfig
from charrnn.corpus import load_corpus
from charrnn.schedule import Schedule
from charrnn.model import load_model
from charrnn.train_loop import train
from charrnn.vocab import EOS_ID

torch = pytest.importorskip("torch")
PEER = Path(__file__).resolve().parents[1] / "benchmarks" / "peer_plain.py"
TEXT = "the quick brown fox jumps over the lazy dog; " * 40


@pytest.fixture(scope="module")
def peer():
    spec = importlib.util.spec_from_file_location("peer_plain", PEER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["constant", "cosine"])
@pytest.mark.parametrize("bound", ["steps", "time"])
def test_the_peer_plans_its_rates_as_charrnn_does(peer, kind, bound):
    steps, seconds = (300, None) if bound == "steps" else (None, 60.0)
    args = argparse.Namespace(lr=8e-3, min_lr=8e-4, warmup=20, lr_schedule=kind, steps=steps, time=seconds)
    ours = Schedule.of(TrainConfig(lr=8e-3, lr_schedule=kind, warmup=20, time_limit=seconds), 0, steps)
    for step, elapsed in [(0, 0.1), (7, 1.0), (19, 3.0), (20, 4.0), (21, 4.2), (160, 30.0), (299, 59.0), (300, 60.0)]:
        assert peer.rate_at(args, step, elapsed) == pytest.approx(ours.rate(step, 0, elapsed)), (step, elapsed)


@pytest.mark.parametrize("cell", CELLS)
def test_the_peers_scorer_gives_charrnns_loss_with_charrnns_weights(peer, tmp_path, cell):
    (tmp_path / "corpus.txt").write_text(TEXT)
    path = tmp_path / "m.npz"
    train(load_corpus([str(tmp_path / "corpus.txt")]), TrainConfig(cell=cell, layers=2, hidden=16, seq=8, batch=4, steps=30),
          path)  # fmt: skip
    model = load_model(path)
    net = peer.CharRNN(model.vocab.size, 16, cell, 2, 0.0)
    with torch.no_grad():
        for name, tensor in net.rnn.named_parameters():
            if name in model.params.views:
                tensor.copy_(torch.from_numpy(np.asarray(model.params[name], np.float32)))
            else:  # rnn and lstm keep one bias: bias_hh is charrnn's zero
                tensor.zero_()
        net.head.weight.copy_(torch.from_numpy(np.asarray(model.params["weight_out"])))
        net.head.bias.copy_(torch.from_numpy(np.asarray(model.params["bias_out"])))
    text = "the lazy dog jumps over the quick brown fox; " * 5
    ids, _ = model.vocab.encode_text(text)
    ours = model.evaluate(text)
    # charrnn's protocol scores the record after an <eos> and predicts the <eos> that ends it: give the
    # peer that same stream, and it makes the same predictions
    stream = np.concatenate([[EOS_ID], ids, [EOS_ID]]).astype(np.int64)
    assert ours.chars == len(stream) - 1
    theirs = peer.heldout_loss(net, torch.from_numpy(stream), window=7)
    assert theirs == pytest.approx(ours.loss, rel=1e-5)
