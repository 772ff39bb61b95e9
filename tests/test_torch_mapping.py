"""A charrnn checkpoint loads into PyTorch with docs/format.md's code, as written, and scores a text
as charrnn does: for every cell with 2 layers."""

import re
from pathlib import Path

import numpy as np
import pytest

from charrnn.cells import CELLS
from charrnn.config import TrainConfig
from charrnn.corpus import load_corpus
from charrnn.evaluate import evaluate_ids
from charrnn.train_loop import train
from charrnn.model import load_model

torch = pytest.importorskip("torch")

FORMAT = Path(__file__).resolve().parents[1] / "docs" / "format.md"
TEXT = "the quick brown fox jumps over the lazy dog; " * 40


def format_block():
    """The python block after the <!-- torch-mapping --> marker."""
    match = re.search(r"<!-- torch-mapping -->\n```python\n(.*?)```", FORMAT.read_text(encoding="utf-8"), re.S)
    assert match, "docs/format.md has no torch-mapping block"
    return match.group(1)


@pytest.mark.parametrize("cell", CELLS)
def test_format_doc_loads_a_checkpoint_into_pytorch_with_the_same_loss(tmp_path, cell):
    (tmp_path / "corpus.txt").write_text(TEXT)
    corpus = load_corpus([str(tmp_path / "corpus.txt")])
    path = tmp_path / "m.npz"
    train(corpus, TrainConfig(cell=cell, layers=2, hidden=16, seq=8, batch=4, steps=40, dropout=0.2, val_frac=0.0,
                                   lr_schedule="constant", warmup=0), path)  # 40 steps: all of them at full rate
    namespace = {}
    exec(compile(format_block(), "docs/format.md", "exec"), namespace)
    text = "the lazy fox, quick over the brown dog!"  # "," and "!" are not in TEXT: <unk> on both sides
    model = load_model(path)
    ids, _ = model.vocab.encode_text(text)
    ours = evaluate_ids(model.params, ids).loss
    theirs = namespace["torch_loss"](str(path), text)
    assert theirs == pytest.approx(ours, rel=1e-5)
    assert abs(ours - np.log(model.vocab.size)) > 0.05  # trained, not a uniform model


@pytest.mark.parametrize("cell", CELLS)
def test_one_windows_loss_state_and_every_gradient_match_pytorchs(cell):
    """The training path itself (the float32 kernels, from a non-zero carried state) against
    torch's autograd, array by array, at 2 layers."""
    from charrnn.network import Workspace, loss_and_grads
    from charrnn.params import Arch, init_params

    V, H, T, B, L = 11, 16, 8, 4, 2
    rng = np.random.default_rng(1)
    arch = Arch(cell, L, H, V)
    params = init_params(arch, rng)
    params.flat[...] = rng.uniform(-0.5, 0.5, params.flat.shape)
    grads = params.like()
    xs, ys = (rng.integers(0, V, (T, B)).astype(np.int32) for _ in range(2))
    state0 = rng.uniform(-0.5, 0.5, arch.state_shape(B)).astype(np.float32)  # (L, S, B, H)
    ws = Workspace(arch, T, B)
    loss = loss_and_grads(params, grads, xs, ys, state0.copy(), ws)

    layers = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](V, H, num_layers=L)
    head = torch.nn.Linear(H, V)
    mine = params.as_dict()
    with torch.no_grad():
        for name, tensor in layers.named_parameters():
            tensor.copy_(torch.from_numpy(mine[name]) if name in mine else torch.zeros_like(tensor))
        head.weight.copy_(torch.from_numpy(mine["weight_out"]))
        head.bias.copy_(torch.from_numpy(mine["bias_out"]))
    s0 = torch.from_numpy(state0)
    out, last = layers(torch.nn.functional.one_hot(torch.from_numpy(xs).long(), V).float(), (s0[:, 0], s0[:, 1]) if cell == "lstm" else s0[:, 0])
    theirs = torch.nn.functional.cross_entropy(head(out).reshape(-1, V), torch.from_numpy(ys).long().reshape(-1))
    theirs.backward()

    assert loss == pytest.approx(theirs.item(), rel=1e-6)
    last = torch.stack(last, 1) if cell == "lstm" else last[:, None]
    np.testing.assert_allclose(ws.state, last.detach().numpy(), atol=2e-6)
    torch_grads = {**{n: t.grad for n, t in layers.named_parameters()}, "weight_out": head.weight.grad, "bias_out": head.bias.grad}
    for name, grad in grads.as_dict().items():
        np.testing.assert_allclose(grad, torch_grads[name].numpy(), rtol=1e-4, atol=2e-6, err_msg=name)
