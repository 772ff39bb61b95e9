"""Loading checkpoints: one refusal per kind of damage, each an exact one-line message starting with the path; never an unpickle, never a huge allocation (checkpoint_helpers' small files)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from charrnn.cells import CELLS
from charrnn.checkpoint import load_checkpoint, save_checkpoint
from charrnn.params import Arch, layout

from checkpoint_helpers import (
    B, DROP, H, V, VOCAB, arrays_of, arrays_of_checkpoint, drop_arrays, edit_meta, f32, make_checkpoint, meta_of, refusal,
    set_arrays,
)


# ----------------------------------------------------------------- loading


def _fifo(path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs FIFOs")
    os.mkfifo(path)


NOT_CHECKPOINTS = {  # how to make the file, what the refusal says after the path
    "missing": (lambda p: None, "no such checkpoint"),
    "directory": (os.mkdir, "is a directory"),
    "fifo": (_fifo, "is not a regular file"),  # would block if opened
    "empty": (lambda p: p.write_bytes(b""), "is not a charrnn checkpoint (not an .npz file)"),
    "text": (lambda p: p.write_bytes(b"hello, world\n"), "is not a charrnn checkpoint (not an .npz file)"),
    "npy_magic": (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00"), "is not a charrnn checkpoint (not an .npz file)"),
    "npy_file": (lambda p: np.save(p.open("wb"), np.zeros(3)), "is not a charrnn checkpoint (not an .npz file)"),
    "other_npz": (lambda p: np.savez(p, x=np.zeros(3)), "is not a charrnn checkpoint (no meta array)"),
    "object_meta_alone": (lambda p: np.savez(p, meta=np.array([{"x": 1}], dtype=object)),
                          "array 'meta' holds Python objects, which charrnn refuses to unpickle"),
}


@pytest.mark.parametrize("case", NOT_CHECKPOINTS)
def test_file_that_is_no_checkpoint(tmp_path, case):
    make, reason = NOT_CHECKPOINTS[case]
    path = tmp_path / "x.npz"
    make(path)
    assert refusal(str(path)) == f"{path}: {reason}"


def test_truncated(good):
    data = Path(good).read_bytes()
    Path(good).write_bytes(data[: len(data) // 2])
    assert refusal(good) == f"{good}: is truncated or corrupt (zip directory missing or damaged)"


def test_flipped_byte_in_weights(good, ckpt):
    data = bytearray(Path(good).read_bytes())
    at = data.find(ckpt.params["weight_out"].tobytes())
    data[at + 3] ^= 0x40
    Path(good).write_bytes(bytes(data))
    assert refusal(good) == f"{good}: is truncated or corrupt (Bad CRC-32 for file 'weight_out.npy')"


def _beyond_unicode() -> np.ndarray:
    """The vocabulary with its last token replaced by code point 0x110000."""
    codes = np.array(VOCAB).view(np.uint32).copy()
    codes[-5] = 0x110000
    return codes.view(np.array(VOCAB).dtype)


def _other_cell(cell: str, layers: int = 2):
    """Replace every float array with those of a `cell` model (meta left as it is)."""
    theirs = {k: v for k, v in arrays_of_checkpoint(make_checkpoint(cell=cell, layers=layers)).items()
              if k not in ("meta", "vocab")}
    return lambda a: {"meta": a["meta"], "vocab": a["vocab"], **theirs}


# The default file is a 2-layer GRU with H=8, V=7, B=2: G*H = 24, h_carry (2, 1, 2, 8).
CASES = {
    "version": (edit_meta(version=7), "has format version 7; this charrnn reads versions 1 to 2"),
    "version_bool": (edit_meta(version=True), "has format version True; this charrnn reads versions 1 to 2"),
    "other_format": (edit_meta(format="other"), "is not a charrnn checkpoint (meta format is 'other')"),
    "no_format": (edit_meta(format=DROP), "is not a charrnn checkpoint (meta has no 'format')"),
    "missing_weight_hh": (drop_arrays("weight_hh_l1"), "is missing array 'weight_hh_l1' (meta declares a 2-layer gru model)"),
    "missing_vocab": (drop_arrays("vocab"), "is missing array 'vocab'"),
    "half_a_slot": (drop_arrays("opt.m.bias_out"), "is missing array 'opt.m.bias_out' (meta declares a 2-layer gru model)"),
    "weight_hh_shape": (set_arrays(weight_hh_l0=f32(3, 4)), "array 'weight_hh_l0' has shape (3, 4), expected (24, 8) (a 2-layer gru with hidden 8)"),
    # Layer 1's input is layer 0's output (H), not the one-hot token (V).
    "weight_ih_l1_shape": (set_arrays(weight_ih_l1=f32(24, V)), "array 'weight_ih_l1' has shape (24, 7), expected (24, 8) (a 2-layer gru with hidden 8)"),
    "weight_dtype": (set_arrays(weight_ih_l0=np.zeros((24, V))), "array 'weight_ih_l0' has dtype float64, expected float32"),
    "bias_out_nan": (set_arrays(bias_out=f32(V, fill=np.nan)), "array 'bias_out' holds non-finite values (NaN or inf)"),
    "bias_hh_inf": (set_arrays(bias_hh_l1=f32(24, fill=np.inf)), "array 'bias_hh_l1' holds non-finite values (NaN or inf)"),
    "opt_shape": (set_arrays(**{"opt.v.weight_out": f32(H, V)}), "array 'opt.v.weight_out' has shape (8, 7), expected (7, 8) (a 2-layer gru with hidden 8)"),
    "opt_nan": (set_arrays(**{"opt.m.bias_ih_l0": f32(24, fill=np.nan)}),
                "array 'opt.m.bias_ih_l0' holds non-finite values (NaN or inf)"),
    "opt_unknown_param": (set_arrays(**{"opt.m.Wxh": f32(H, V)}), "has an unexpected array 'opt.m.Wxh' (not part of a 2-layer gru model)"),
    "h_carry_hidden": (set_arrays(h_carry=f32(2, 1, B, 5)),
                       "array 'h_carry' has shape (2, 1, 2, 5), expected (2, 1, B, 8): layers, states, streams, hidden"),
    "h_carry_layers_states": (set_arrays(h_carry=f32(1, 2, B, H)),
                              "array 'h_carry' has shape (1, 2, 2, 8), expected (2, 1, B, 8): layers, states, streams, hidden"),
    "h_carry_no_streams": (set_arrays(h_carry=f32(2, 1, 0, H)),
                           "array 'h_carry' has shape (2, 1, 0, 8), expected (2, 1, B, 8): layers, states, streams, hidden"),
    "h_carry_format1_shape": (set_arrays(h_carry=f32(B, H)),
                              "array 'h_carry' has shape (2, 8), expected (2, 1, B, 8): layers, states, streams, hidden"),
    "h_carry_dtype": (set_arrays(h_carry=np.zeros((2, 1, B, H), np.float16)), "array 'h_carry' has dtype float16, expected float32"),
    # The architecture in meta against the arrays present:
    "more_layers_than_arrays": (edit_meta(model__layers=3), "is missing array 'weight_ih_l2' (meta declares a 3-layer gru model)"),
    "fewer_layers_than_arrays": (edit_meta(model__layers=1), "has an unexpected array 'weight_ih_l1' (not part of a 1-layer gru model)"),
    "meta_2_layers_arrays_1": (_other_cell("gru", 1), "is missing array 'weight_ih_l1' (meta declares a 2-layer gru model)"),
    "unknown_cell": (edit_meta(model__cell="foo"), "model cell 'foo' is not supported; this charrnn reads 'rnn', 'lstm', 'gru'"),
    "cell_missing": (edit_meta(model__cell=DROP), "meta is missing key 'model.cell'"),
    "meta_lstm_arrays_gru": (edit_meta(model__cell="lstm"), "has an unexpected array 'bias_hh_l0' (not part of a 2-layer lstm model)"),
    "meta_rnn_arrays_gru": (edit_meta(model__cell="rnn"), "has an unexpected array 'bias_hh_l0' (not part of a 2-layer rnn model)"),
    "meta_gru_arrays_lstm": (_other_cell("lstm"), "is missing array 'bias_hh_l0' (meta declares a 2-layer gru model)"),
    "meta_gru_arrays_rnn": (_other_cell("rnn"), "is missing array 'bias_hh_l0' (meta declares a 2-layer gru model)"),
    # Same names, other gate count (4 against 1): only the shapes tell them apart.
    "meta_lstm_arrays_rnn": (lambda a: edit_meta(model__cell="lstm")(_other_cell("rnn")(a)),
                             "array 'weight_ih_l0' has shape (8, 7), expected (32, 7) (a 2-layer lstm with hidden 8)"),
    "missing_bias_hh": (drop_arrays("bias_hh_l1", "opt.m.bias_hh_l1", "opt.v.bias_hh_l1"), "is missing array 'bias_hh_l1' (meta declares a 2-layer gru model)"),
    "missing_opt_bias_hh": (drop_arrays("opt.v.bias_hh_l0"), "is missing array 'opt.v.bias_hh_l0' (meta declares a 2-layer gru model)"),
    "layers_missing": (edit_meta(model__layers=DROP), "meta is missing key 'model.layers'"),
    "layers_zero": (edit_meta(model__layers=0), "meta key 'model.layers' must be an integer from 1 to 64, not 0"),
    "layers_huge": (edit_meta(model__layers=65), "meta key 'model.layers' must be an integer from 1 to 64, not 65"),
    "layers_float": (edit_meta(model__layers=2.0), "meta key 'model.layers' must be an integer from 1 to 64, not 2.0"),
    "dropout_one": (edit_meta(model__dropout=1.0), "meta key 'model.dropout' must be a number in [0, 1), not 1.0"),
    "dropout_bool": (edit_meta(model__dropout=True), "meta key 'model.dropout' must be a number in [0, 1), not True"),
    "short_vocab": (set_arrays(vocab=np.array(VOCAB[:5])), "vocabulary has 5 tokens but the weights expect 7"),
    "vocab_ints": (set_arrays(vocab=np.arange(V)), "vocabulary is not a 1-d str array, it has dtype int64 and shape (7,)"),
    "vocab_unk": (set_arrays(vocab=np.array(["a", "<eos>", "<unk>", "b", "c", "d", "e"])),
                  "vocabulary id 0 is 'a', expected '<unk>' (meta unk_id)"),
    "vocab_long_token": (set_arrays(vocab=np.array(VOCAB[:6] + ["ef"])), "vocabulary token 6 is 'ef'; expected exactly one character"),
    "vocab_duplicate": (set_arrays(vocab=np.array(VOCAB[:6] + ["a"])), "vocabulary token 'a' appears twice (ids 2 and 6)"),
    "vocab_bad_code_point": (set_arrays(vocab=_beyond_unicode()), "array 'vocab' holds text that is not valid Unicode"),
    "meta_not_json": (set_arrays(meta=np.array("{not json")), "meta is not valid JSON"),
    "meta_nan": (set_arrays(meta=np.array('{"format": "charrnn", "best_val_loss": NaN}')), "meta is not valid JSON"),
    "meta_deep": (set_arrays(meta=np.array("[" * 100_000)), "meta is not valid JSON"),
    "meta_list": (set_arrays(meta=np.array("[1, 2]")), "meta is not a JSON object"),
    "meta_bytes": (set_arrays(meta=np.array(b"{}")), "meta is not a JSON text (a 0-d str array), it has dtype |S2 and shape ()"),
    "meta_missing_step": (edit_meta(step=DROP), "meta is missing key 'step'"),
    "meta_hidden_huge": (edit_meta(model__hidden=100_000), "meta key 'model.hidden' must be an integer from 1 to 65536, not 100000"),
    "meta_hidden_mismatch": (edit_meta(model__hidden=9), "array 'weight_ih_l0' has shape (24, 7), expected (27, 7) (a 2-layer gru with hidden 9)"),
    "meta_loss": (edit_meta(best_val_loss="low"), "meta key 'best_val_loss' must be a finite number or null, not 'low'"),
    "meta_fingerprint": (edit_meta(corpus={}), "meta is missing key 'corpus.fingerprint'"),
    "meta_train": (edit_meta(train=[]), "meta key 'train' must be a JSON object"),
    "meta_same_ids": (edit_meta(eos_id=0), "meta unk_id and eos_id are both 0"),
    "evil": (set_arrays(evil=np.zeros(3)), "has an unexpected array 'evil' (not part of a 2-layer gru model)"),
}


@pytest.mark.parametrize("case", CASES)
def test_damaged_file_is_refused_with_a_clear_message(good, case):
    damage, reason = CASES[case]
    np.savez(good, **damage(arrays_of(good)))
    assert refusal(good) == f"{good}: {reason}"


@pytest.mark.parametrize("cell", CELLS)
def test_h_carry_of_each_cell_has_its_states(tmp_path, cell):
    # S is 2 for the LSTM (h and c), else 1: an rnn's carry in an LSTM file is refused.
    path = tmp_path / "m.npz"
    save_checkpoint(path, make_checkpoint(cell=cell, layers=2))
    arrays = arrays_of(path)
    S = 2 if cell == "lstm" else 1
    assert arrays["h_carry"].shape == (2, S, B, H)
    np.savez(path, **{**arrays, "h_carry": f32(2, 3 - S, B, H)})
    assert refusal(path) == (f"{path}: array 'h_carry' has shape (2, {3 - S}, 2, 8), "
                             f"expected (2, {S}, B, 8): layers, states, streams, hidden")


def test_big_endian_weights_are_accepted(good, ckpt):
    arrays = arrays_of(good)
    np.savez(good, **{**arrays, "weight_ih_l0": arrays["weight_ih_l0"].astype(">f4")})
    back = load_checkpoint(good)
    assert back.params["weight_ih_l0"].dtype == np.dtype("=f4")
    assert np.array_equal(back.params["weight_ih_l0"], ckpt.params["weight_ih_l0"])


def test_compressed_archive_is_refused(good):
    np.savez_compressed(good, **arrays_of(good))
    assert refusal(good) == f"{good}: array 'meta' is compressed; charrnn checkpoints are uncompressed (np.savez)"


class _Trap:
    """Unpickling this would call _sprung, so a refusal proves nothing was unpickled."""

    def __reduce__(self):
        return (_sprung, ())


_SPRUNG = []


def _sprung():
    _SPRUNG.append(True)
    return {}


@pytest.mark.parametrize("name", ["meta", "vocab", "weight_ih_l0", "bias_hh_l1", "h_carry"])
def test_object_arrays_are_never_unpickled(good, name):
    np.savez(good, **{**arrays_of(good), name: np.array([_Trap()], dtype=object)})
    assert refusal(good) == f"{good}: array {name!r} holds Python objects, which charrnn refuses to unpickle"
    assert _SPRUNG == []


def _raw_member(name: str, shape: tuple, dtype: str, payload: bytes = b"") -> tuple[str, bytes]:
    """A .npy member whose header declares `shape` but carries only `payload`."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return name + ".npy", buf.getvalue() + payload


def _replace_members(path: str, *members: tuple[str, bytes]) -> None:
    with zipfile.ZipFile(path) as zf:
        kept = {i.filename: zf.read(i) for i in zf.infolist()}
    kept.update(members)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in kept.items():
            zf.writestr(name, data)


HOSTILE = {  # a member replaced by one whose header claims far more than it holds
    "shape": (_raw_member("weight_ih_l0", (10**12,), "<f4"), "array 'weight_ih_l0' has shape (1000000000000,), expected (24, 7) (a 2-layer gru with hidden 8)"),
    # B is free in h_carry's shape: only the size check stands between it and a huge allocation.
    "carry": (_raw_member("h_carry", (2, 1, 10**11, H), "<f4"),
              "is truncated or corrupt (array 'h_carry' is not the size its header declares)"),
    "vocab_length": (_raw_member("vocab", (10**12,), "<U5"), "vocabulary has 1000000000000 tokens but the weights expect 7"),
    "negative_shape": (_raw_member("bias_ih_l0", (-8,), "<f4"), "is truncated or corrupt (array 'bias_ih_l0' has shape (-8,))"),
    "not_npy": (("notes.txt", b"hello"), "has an unexpected zip member 'notes.txt' (not a .npy array)"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_member_is_refused_before_allocating(good, case):
    member, reason = HOSTILE[case]
    _replace_members(good, member)
    assert refusal(good) == f"{good}: {reason}"


def test_header_promising_more_data_than_the_file_holds(good):
    # A meta at the limits makes a 3 * 2**16 x 2**21 weight_ih_l0 legal; the file is tiny.
    hidden, vocab = 2**16, 2**21
    meta = meta_of(arrays_of(good))
    meta["model"].update(hidden=hidden, vocab_size=vocab)
    np.savez(good, meta=np.array(json.dumps(meta)))
    # Weights before vocab in the archive, so the weights' headers are met first.
    shapes = layout(Arch("gru", 2, hidden, vocab))
    _replace_members(good, *(_raw_member(n, s, "<f4", b"\0" * 64) for n, s in shapes.items()),
                     _raw_member("vocab", (vocab,), "<U1", b"\0" * 64))
    assert refusal(good) == f"{good}: is truncated or corrupt (array 'weight_ih_l0' is not the size its header declares)"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_unreadable_file(good):
    os.chmod(good, 0)
    assert refusal(good) == f"{good}: cannot read checkpoint (Permission denied)"
