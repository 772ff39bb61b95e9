"""Small checkpoints and the tools to damage them, shared by test_checkpoint, test_checkpoint_load
and test_format1 (conftest.py's ckpt and good fixtures are make_checkpoint()'s)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from charrnn.cells import CELLS
from charrnn.checkpoint import Checkpoint, load_checkpoint
from charrnn.errors import CheckpointError
from charrnn.params import FORMAT1_NAMES, Arch, layout

H, V, B = 8, 7, 2
VOCAB = ["<unk>", "<eos>", "a", "b", "c", "d", "e"]
ARCHS = [(cell, layers) for cell in CELLS for layers in (1, 2)]
# The default file: a 2-layer GRU, the richest layout (a second layer, and bias_hh).
GRU2 = layout(Arch("gru", 2, H, V))


def make_checkpoint(seed: int = 0, cell: str = "gru", layers: int = 2, h=H, v=V, b=B) -> Checkpoint:
    arch = Arch(cell, layers, h, v)
    rng = np.random.default_rng(seed)
    params = {n: rng.standard_normal(s).astype(np.float32) for n, s in layout(arch).items()}
    state = {f"opt.{slot}.{n}": rng.random(params[n].shape, dtype=np.float32) for slot in ("m", "v") for n in params}
    state["h_carry"] = rng.standard_normal(arch.state_shape(b)).astype(np.float32)
    meta = {
        "unk_id": 0, "eos_id": 1, "step": 42, "best_val_loss": 1.25, "lines": False,
        "model": {"cell": cell, "layers": layers, "hidden": h, "vocab_size": v, "dropout": 0.25},
        "corpus": {"fingerprint": "sha256:abc", "chars": 1000},
        "train": {"lr": 0.002, "optimizer": "adam"},
        "rng": np.random.default_rng(1).bit_generator.state,
    }
    return Checkpoint(params=params, vocab=[*VOCAB[:2], *"abcdefghijklmnop"[: v - 2]], meta=meta, state=state)


def arrays_of(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def arrays_of_checkpoint(c: Checkpoint) -> dict:
    """The arrays save_checkpoint would write, without the checks (to damage them)."""
    return {**c.params, **c.state, "meta": np.array(json.dumps({**c.meta, "format": "charrnn", "version": 2})),
            "vocab": np.array(c.vocab)}


def meta_of(arrays: dict) -> dict:
    return json.loads(str(arrays["meta"]))


def with_meta(arrays: dict, meta: dict) -> dict:
    return {**arrays, "meta": np.array(json.dumps(meta))}


def format1_arrays(arrays: dict) -> dict:
    """A 1-layer rnn file's arrays as version 1 wrote them: old names, h_carry (B, H), no layers."""
    old = {new: name for name, new in FORMAT1_NAMES.items()}
    renamed = {}
    for name, arr in arrays.items():
        head, dot, last = name.rpartition(".")
        renamed[head + dot + old.get(last, last)] = arr
    renamed["h_carry"] = arrays["h_carry"].reshape(arrays["h_carry"].shape[2:])
    meta = meta_of(arrays)
    meta["version"] = 1
    meta["model"] = {k: meta["model"][k] for k in ("cell", "hidden", "vocab_size")}
    return with_meta(renamed, meta)


def refusal(path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def assert_same(back: Checkpoint, ckpt: Checkpoint) -> None:
    for group, original in ((back.params, ckpt.params), (back.state, ckpt.state)):
        assert list(group) == list(original)
        for name, arr in group.items():
            assert arr.dtype == np.float32 and arr.tobytes() == original[name].tobytes(), name
            assert arr.shape == original[name].shape
    assert back.vocab == ckpt.vocab


# Array changes for the damaged-file cases: each returns a function of a file's arrays.

DROP = object()


def edit_meta(**changes):
    """Change meta keys (a__b is meta["a"]["b"]; DROP deletes the key)."""
    def change(arrays):
        meta = meta_of(arrays)
        for key, value in changes.items():
            *parents, last = key.split("__")
            target = meta
            for parent in parents:
                target = target[parent]
            if value is DROP:
                del target[last]
            else:
                target[last] = value
        return with_meta(arrays, meta)
    return change


def set_arrays(**arrays):
    return lambda a: {**a, **arrays}


def drop_arrays(*names):
    return lambda a: {k: v for k, v in a.items() if k not in names}


def f32(*shape, fill=0.0):
    return np.full(shape, fill, np.float32)


def assert_same_state(a, b):
    """Two checkpoints hold bitwise the same model and training state."""
    assert set(a.params) == set(b.params) and set(a.state) == set(b.state)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)
    for name in a.state:  # optimizer slots, h_carry and the loss history
        x, y = a.state[name], b.state[name]
        if name.startswith("history."):  # steps and losses, not the seconds; a stopped run also
            x, y = x[:, [0, 2]], y[:, [0, 2]]  # validated where it stopped: only rows both have
            x, y = x[np.isin(x[:, 0], y[:, 0])], y[np.isin(y[:, 0], x[:, 0])]
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.meta["history_partial"] == b.meta["history_partial"]
    for key in ("step", "optimizer_updates", "rng", "workers", "total_steps", "data_origin", "last_val_loss"):
        assert a.meta[key] == b.meta[key], key
