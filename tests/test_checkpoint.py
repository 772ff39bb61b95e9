"""Checkpoint files (format version 2, every cell, 1-2 layers): round trip, atomic saving, and one
refusal per kind of damage, each an exact one-line message starting with the path. Version 1 is
tests/test_format1.py's (a real file made by the old code, and damaged ones made here)."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

from charrnn import checkpoint as ck
from charrnn.cells import CELLS
from charrnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
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


@pytest.fixture
def ckpt() -> Checkpoint:
    return make_checkpoint()


@pytest.fixture
def good(tmp_path, ckpt) -> str:
    """Path of a valid checkpoint file."""
    path = str(tmp_path / "model.npz")
    save_checkpoint(path, ckpt)
    return path


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


# ------------------------------------------------------------------ saving


@pytest.mark.parametrize("cell, layers", ARCHS)
def test_round_trip_is_exact(tmp_path, cell, layers):
    ckpt = make_checkpoint(cell=cell, layers=layers)
    save_checkpoint(tmp_path / "m.npz", ckpt)
    back = load_checkpoint(tmp_path / "m.npz")
    assert_same(back, ckpt)
    assert list(back.params) == list(layout(Arch(cell, layers, H, V)))  # in storage order
    assert back.meta == {**ckpt.meta, "format": "charrnn", "version": 2}
    assert back.arch == Arch(cell, layers, H, V) and (back.hidden, back.vocab_size) == (H, V)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cell=st.sampled_from(CELLS), layers=st.integers(1, 3), h=st.integers(1, 5), v=st.integers(2, 6),
       b=st.integers(1, 3), state=st.booleans())
def test_round_trip_of_any_small_model(tmp_path, cell, layers, h, v, b, state):
    ckpt = make_checkpoint(cell=cell, layers=layers, h=h, v=v, b=b)
    if not state:
        ckpt.state = {}
    save_checkpoint(tmp_path / "m.npz", ckpt)
    assert_same(load_checkpoint(tmp_path / "m.npz"), ckpt)


def test_save_leaves_the_callers_meta_alone(good, ckpt):
    assert "format" not in ckpt.meta and "version" not in ckpt.meta


def test_plain_numpy_reads_the_file(good):
    with np.load(good, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(
            ["meta", "vocab", *GRU2, "h_carry"] + [f"opt.{s}.{n}" for s in ("m", "v") for n in GRU2])
        assert npz["vocab"].dtype.kind == "U" and npz["vocab"].tolist() == VOCAB
        assert npz["h_carry"].shape == (2, 1, B, H)
        meta = json.loads(str(npz["meta"]))
        assert npz["meta"].shape == () and (meta["format"], meta["version"]) == ("charrnn", 2)
    with zipfile.ZipFile(good) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_no_temp_files_and_ordinary_permissions(tmp_path, ckpt):
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "m.npz", ckpt)
        save_checkpoint(tmp_path / "m.npz", ckpt)  # replacing an existing file
    finally:
        os.umask(old)
    assert os.listdir(tmp_path) == ["m.npz"]
    assert stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode) == 0o644


def test_checkpoint_without_training_state(tmp_path, ckpt):
    ckpt.state = {}
    save_checkpoint(tmp_path / "m.npz", ckpt)
    assert load_checkpoint(tmp_path / "m.npz").state == {}


@pytest.mark.parametrize("make, reason", [(lambda folder: None, "No such file or directory"),
                                          (lambda folder: (folder / "m.npz").mkdir(parents=True), "Is a directory")])
def test_save_where_no_file_can_go(tmp_path, ckpt, make, reason):
    make(tmp_path / "sub")
    path = tmp_path / "sub" / "m.npz"
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, ckpt)
    assert str(info.value) == f"cannot write checkpoint {path}: {reason}"
    assert set(os.listdir(tmp_path)) <= {"sub"} and not [p for p in (tmp_path / "sub").glob("*.tmp")]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_save_into_read_only_folder(good, ckpt):
    folder = os.path.dirname(good)
    before = Path(good).read_bytes()
    os.chmod(folder, 0o555)
    try:
        with pytest.raises(CheckpointError, match="^cannot write checkpoint .*: Permission denied$"):
            save_checkpoint(good, make_checkpoint(seed=1))
    finally:
        os.chmod(folder, 0o755)
    assert Path(good).read_bytes() == before
    assert os.listdir(folder) == ["model.npz"]


def _half_written(f, **arrays):
    f.write(b"PK\x03\x04 partial data")
    raise OSError(28, "No space left on device")


def _interrupted(f, **arrays):
    raise KeyboardInterrupt


@pytest.mark.parametrize("savez, error", [(_half_written, CheckpointError), (_interrupted, KeyboardInterrupt)])
def test_failed_save_keeps_old_file_and_leaves_no_temp_file(good, monkeypatch, savez, error):
    before = Path(good).read_bytes()
    monkeypatch.setattr(ck.np, "savez", savez)
    with pytest.raises(error) as info:
        save_checkpoint(good, make_checkpoint(seed=1))
    if error is CheckpointError:
        assert str(info.value) == f"cannot write checkpoint {good}: No space left on device"
    assert Path(good).read_bytes() == before
    assert os.listdir(os.path.dirname(good)) == ["model.npz"]


def test_temp_files_of_killed_saves_are_found_exactly(tmp_path, ckpt, monkeypatch):
    """What a save killed by SIGKILL leaves (its mkstemp file) is removed; nothing else is."""
    made = []
    real = ck.tempfile.mkstemp

    def remember(**kw):
        fd, name = real(**kw)
        made.append(os.path.basename(name))
        return fd, name

    def killed(f, **arrays):
        raise SystemExit  # stands in for the process dying: the finally clause is what a kill skips

    monkeypatch.setattr(ck.tempfile, "mkstemp", remember)
    monkeypatch.setattr(ck.os, "unlink", lambda path: None)  # ... so the temp file stays, as after kill -9
    monkeypatch.setattr(ck.np, "savez", killed)
    with pytest.raises(SystemExit):
        save_checkpoint(tmp_path / "m.npz", ckpt)
    monkeypatch.undo()
    others = [".m.npz.x.npz.abcdefgh.tmp", ".other.npz.abcdefgh.tmp", "m.npz.abcdefgh.tmp", ".m.npz.abc.tmp", "notes.tmp"]
    for name in others:
        (tmp_path / name).write_bytes(b"")
    assert re.fullmatch(r"\.m\.npz\.[a-z0-9_]{8}\.tmp", made[0])
    assert ck.remove_temp_files(tmp_path / "m.npz") == [str(tmp_path / made[0])]
    assert sorted(os.listdir(tmp_path)) == sorted(others)
    assert ck.remove_temp_files(tmp_path / "missing-folder" / "m.npz") == []


@pytest.mark.parametrize("damage, reason", [
    (lambda c: c.params.update(weight_ih_l0=c.params["weight_ih_l0"].astype(np.float64)),
     "array 'weight_ih_l0' has dtype float64, expected float32"),
    (lambda c: c.params["bias_out"].__setitem__(0, np.nan), "array 'bias_out' holds non-finite values (NaN or inf)"),
    (lambda c: c.params.pop("weight_hh_l1"), "is missing array 'weight_hh_l1' (meta declares a 2-layer gru model)"),
    (lambda c: c.params.pop("bias_hh_l0"), "is missing array 'bias_hh_l0' (meta declares a 2-layer gru model)"),
    (lambda c: c.state.pop("opt.v.bias_ih_l1"), "is missing array 'opt.v.bias_ih_l1' (meta declares a 2-layer gru model)"),
    (lambda c: c.state.update(evil=np.zeros(1, np.float32)),
     "has an unexpected array 'evil' (not part of a 2-layer gru model)"),
    (lambda c: c.params.update(Wxh=c.params.pop("weight_ih_l0")),  # version 1's names are only read
     "has an unexpected array 'Wxh' (not part of a 2-layer gru model)"),
    (lambda c: c.state.update(weight_out=c.params.pop("weight_out")), "array 'weight_out' belongs in params"),
    (lambda c: c.state.update(h_carry=np.zeros((B, H), np.float32)),
     "array 'h_carry' has shape (2, 8), expected (2, 1, B, 8): layers, states, streams, hidden"),
    (lambda c: c.meta["model"].update(cell="lstm"),  # saving checks array by array, so: a shape
     "array 'weight_ih_l0' has shape (24, 7), expected (32, 7) (a 2-layer lstm with hidden 8)"),
    (lambda c: c.meta["model"].pop("layers"), "meta is missing key 'model.layers'"),
    (lambda c: c.meta["model"].update(dropout=1), "meta key 'model.dropout' must be a number in [0, 1), not 1"),
    (lambda c: c.vocab.pop(), "vocabulary has 6 tokens but the weights expect 7"),
    (lambda c: c.vocab.__setitem__(6, "\0"), "vocabulary token 6 is a NUL character, which a .npz cannot store"),
    (lambda c: c.meta.update(best_val_loss=float("nan")),
     "meta cannot be stored as JSON (it holds NaN or infinity)"),
    (lambda c: c.meta.update(step=np.int64(3)), "meta cannot be stored as JSON (Object of type int64 is not JSON serializable)"),
    (lambda c: c.meta.update(step=-1), "meta key 'step' must be an integer >= 0, not -1"),
])
def test_save_refuses_what_load_would_refuse(tmp_path, ckpt, damage, reason):
    damage(ckpt)
    path = tmp_path / "m.npz"
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, ckpt)
    assert str(info.value) == f"cannot write checkpoint {path}: {reason}"
    assert os.listdir(tmp_path) == []


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


_DROP = object()


def _meta(**changes):
    """Change meta keys (a__b is meta["a"]["b"]; _DROP deletes the key)."""
    def change(arrays):
        meta = meta_of(arrays)
        for key, value in changes.items():
            *parents, last = key.split("__")
            target = meta
            for parent in parents:
                target = target[parent]
            if value is _DROP:
                del target[last]
            else:
                target[last] = value
        return with_meta(arrays, meta)
    return change


def _set(**arrays):
    return lambda a: {**a, **arrays}


def _drop(*names):
    return lambda a: {k: v for k, v in a.items() if k not in names}


def _beyond_unicode() -> np.ndarray:
    """The vocabulary with its last token replaced by code point 0x110000."""
    codes = np.array(VOCAB).view(np.uint32).copy()
    codes[-5] = 0x110000
    return codes.view(np.array(VOCAB).dtype)


def _f32(*shape, fill=0.0):
    return np.full(shape, fill, np.float32)


def _other_cell(cell: str, layers: int = 2):
    """Replace every float array with those of a `cell` model (meta left as it is)."""
    theirs = {k: v for k, v in arrays_of_checkpoint(make_checkpoint(cell=cell, layers=layers)).items()
              if k not in ("meta", "vocab")}
    return lambda a: {"meta": a["meta"], "vocab": a["vocab"], **theirs}


# The default file is a 2-layer GRU with H=8, V=7, B=2: G*H = 24, h_carry (2, 1, 2, 8).
CASES = {
    "version": (_meta(version=7), "has format version 7; this charrnn reads versions 1 to 2"),
    "version_bool": (_meta(version=True), "has format version True; this charrnn reads versions 1 to 2"),
    "other_format": (_meta(format="other"), "is not a charrnn checkpoint (meta format is 'other')"),
    "no_format": (_meta(format=_DROP), "is not a charrnn checkpoint (meta has no 'format')"),
    "missing_weight_hh": (_drop("weight_hh_l1"), "is missing array 'weight_hh_l1' (meta declares a 2-layer gru model)"),
    "missing_vocab": (_drop("vocab"), "is missing array 'vocab'"),
    "half_a_slot": (_drop("opt.m.bias_out"), "is missing array 'opt.m.bias_out' (meta declares a 2-layer gru model)"),
    "weight_hh_shape": (_set(weight_hh_l0=_f32(3, 4)), "array 'weight_hh_l0' has shape (3, 4), expected (24, 8) (a 2-layer gru with hidden 8)"),
    # Layer 1's input is layer 0's output (H), not the one-hot token (V).
    "weight_ih_l1_shape": (_set(weight_ih_l1=_f32(24, V)), "array 'weight_ih_l1' has shape (24, 7), expected (24, 8) (a 2-layer gru with hidden 8)"),
    "weight_dtype": (_set(weight_ih_l0=np.zeros((24, V))), "array 'weight_ih_l0' has dtype float64, expected float32"),
    "bias_out_nan": (_set(bias_out=_f32(V, fill=np.nan)), "array 'bias_out' holds non-finite values (NaN or inf)"),
    "bias_hh_inf": (_set(bias_hh_l1=_f32(24, fill=np.inf)), "array 'bias_hh_l1' holds non-finite values (NaN or inf)"),
    "opt_shape": (_set(**{"opt.v.weight_out": _f32(H, V)}), "array 'opt.v.weight_out' has shape (8, 7), expected (7, 8) (a 2-layer gru with hidden 8)"),
    "opt_nan": (_set(**{"opt.m.bias_ih_l0": _f32(24, fill=np.nan)}),
                "array 'opt.m.bias_ih_l0' holds non-finite values (NaN or inf)"),
    "opt_unknown_param": (_set(**{"opt.m.Wxh": _f32(H, V)}), "has an unexpected array 'opt.m.Wxh' (not part of a 2-layer gru model)"),
    "h_carry_hidden": (_set(h_carry=_f32(2, 1, B, 5)),
                       "array 'h_carry' has shape (2, 1, 2, 5), expected (2, 1, B, 8): layers, states, streams, hidden"),
    "h_carry_layers_states": (_set(h_carry=_f32(1, 2, B, H)),
                              "array 'h_carry' has shape (1, 2, 2, 8), expected (2, 1, B, 8): layers, states, streams, hidden"),
    "h_carry_no_streams": (_set(h_carry=_f32(2, 1, 0, H)),
                           "array 'h_carry' has shape (2, 1, 0, 8), expected (2, 1, B, 8): layers, states, streams, hidden"),
    "h_carry_format1_shape": (_set(h_carry=_f32(B, H)),
                              "array 'h_carry' has shape (2, 8), expected (2, 1, B, 8): layers, states, streams, hidden"),
    "h_carry_dtype": (_set(h_carry=np.zeros((2, 1, B, H), np.float16)), "array 'h_carry' has dtype float16, expected float32"),
    # The architecture in meta against the arrays present:
    "more_layers_than_arrays": (_meta(model__layers=3), "is missing array 'weight_ih_l2' (meta declares a 3-layer gru model)"),
    "fewer_layers_than_arrays": (_meta(model__layers=1), "has an unexpected array 'weight_ih_l1' (not part of a 1-layer gru model)"),
    "meta_2_layers_arrays_1": (_other_cell("gru", 1), "is missing array 'weight_ih_l1' (meta declares a 2-layer gru model)"),
    "unknown_cell": (_meta(model__cell="foo"), "model cell 'foo' is not supported; this charrnn reads 'rnn', 'lstm', 'gru'"),
    "cell_missing": (_meta(model__cell=_DROP), "meta is missing key 'model.cell'"),
    "meta_lstm_arrays_gru": (_meta(model__cell="lstm"), "has an unexpected array 'bias_hh_l0' (not part of a 2-layer lstm model)"),
    "meta_rnn_arrays_gru": (_meta(model__cell="rnn"), "has an unexpected array 'bias_hh_l0' (not part of a 2-layer rnn model)"),
    "meta_gru_arrays_lstm": (_other_cell("lstm"), "is missing array 'bias_hh_l0' (meta declares a 2-layer gru model)"),
    "meta_gru_arrays_rnn": (_other_cell("rnn"), "is missing array 'bias_hh_l0' (meta declares a 2-layer gru model)"),
    # Same names, other gate count (4 against 1): only the shapes tell them apart.
    "meta_lstm_arrays_rnn": (lambda a: _meta(model__cell="lstm")(_other_cell("rnn")(a)),
                             "array 'weight_ih_l0' has shape (8, 7), expected (32, 7) (a 2-layer lstm with hidden 8)"),
    "missing_bias_hh": (_drop("bias_hh_l1", "opt.m.bias_hh_l1", "opt.v.bias_hh_l1"), "is missing array 'bias_hh_l1' (meta declares a 2-layer gru model)"),
    "missing_opt_bias_hh": (_drop("opt.v.bias_hh_l0"), "is missing array 'opt.v.bias_hh_l0' (meta declares a 2-layer gru model)"),
    "layers_missing": (_meta(model__layers=_DROP), "meta is missing key 'model.layers'"),
    "layers_zero": (_meta(model__layers=0), "meta key 'model.layers' must be an integer from 1 to 64, not 0"),
    "layers_huge": (_meta(model__layers=65), "meta key 'model.layers' must be an integer from 1 to 64, not 65"),
    "layers_float": (_meta(model__layers=2.0), "meta key 'model.layers' must be an integer from 1 to 64, not 2.0"),
    "dropout_one": (_meta(model__dropout=1.0), "meta key 'model.dropout' must be a number in [0, 1), not 1.0"),
    "dropout_bool": (_meta(model__dropout=True), "meta key 'model.dropout' must be a number in [0, 1), not True"),
    "short_vocab": (_set(vocab=np.array(VOCAB[:5])), "vocabulary has 5 tokens but the weights expect 7"),
    "vocab_ints": (_set(vocab=np.arange(V)), "vocabulary is not a 1-d str array, it has dtype int64 and shape (7,)"),
    "vocab_unk": (_set(vocab=np.array(["a", "<eos>", "<unk>", "b", "c", "d", "e"])),
                  "vocabulary id 0 is 'a', expected '<unk>' (meta unk_id)"),
    "vocab_long_token": (_set(vocab=np.array(VOCAB[:6] + ["ef"])), "vocabulary token 6 is 'ef'; expected exactly one character"),
    "vocab_duplicate": (_set(vocab=np.array(VOCAB[:6] + ["a"])), "vocabulary token 'a' appears twice (ids 2 and 6)"),
    "vocab_bad_code_point": (_set(vocab=_beyond_unicode()), "array 'vocab' holds text that is not valid Unicode"),
    "meta_not_json": (_set(meta=np.array("{not json")), "meta is not valid JSON"),
    "meta_nan": (_set(meta=np.array('{"format": "charrnn", "best_val_loss": NaN}')), "meta is not valid JSON"),
    "meta_deep": (_set(meta=np.array("[" * 100_000)), "meta is not valid JSON"),
    "meta_list": (_set(meta=np.array("[1, 2]")), "meta is not a JSON object"),
    "meta_bytes": (_set(meta=np.array(b"{}")), "meta is not a JSON text (a 0-d str array), it has dtype |S2 and shape ()"),
    "meta_missing_step": (_meta(step=_DROP), "meta is missing key 'step'"),
    "meta_hidden_huge": (_meta(model__hidden=100_000), "meta key 'model.hidden' must be an integer from 1 to 65536, not 100000"),
    "meta_hidden_mismatch": (_meta(model__hidden=9), "array 'weight_ih_l0' has shape (24, 7), expected (27, 7) (a 2-layer gru with hidden 9)"),
    "meta_loss": (_meta(best_val_loss="low"), "meta key 'best_val_loss' must be a finite number or null, not 'low'"),
    "meta_fingerprint": (_meta(corpus={}), "meta is missing key 'corpus.fingerprint'"),
    "meta_train": (_meta(train=[]), "meta key 'train' must be a JSON object"),
    "meta_same_ids": (_meta(eos_id=0), "meta unk_id and eos_id are both 0"),
    "evil": (_set(evil=np.zeros(3)), "has an unexpected array 'evil' (not part of a 2-layer gru model)"),
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
    np.savez(path, **{**arrays, "h_carry": _f32(2, 3 - S, B, H)})
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


# ------------------------------------------------------------- fuzzing

# Mutated checkpoints per fuzz test; CHARRNN_FUZZ_EXAMPLES=20000 for a longer hunt.
FUZZ_EXAMPLES = int(os.environ.get("CHARRNN_FUZZ_EXAMPLES", "2000"))
SEEDS = [*ARCHS, "v1"]  # a file of every cell and layer count, and one of version 1
_GOOD_BYTES: dict = {}


def _good_bytes(tmp_path, seed) -> bytes:
    if seed not in _GOOD_BYTES:
        path = tmp_path / "seed.npz"
        if seed == "v1":
            np.savez(path, **format1_arrays(arrays_of_checkpoint(make_checkpoint(cell="rnn", layers=1))))
        else:
            save_checkpoint(path, make_checkpoint(cell=seed[0], layers=seed[1]))
        load_checkpoint(path)  # a sound start
        _GOOD_BYTES[seed] = path.read_bytes()
    return _GOOD_BYTES[seed]


def _load_or_refuse(path) -> None:
    try:
        load_checkpoint(path)
    except CheckpointError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_bytes_never_raise_anything_but_checkpoint_error(tmp_path, data):
    raw = bytearray(_good_bytes(tmp_path, data.draw(st.sampled_from(SEEDS))))
    # Half the flips land near zip and .npy headers, where parsing happens.
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        hot = [i.header_offset + k for i in zf.infolist() for k in range(160)] + list(range(len(raw) - 1200, len(raw)))
    spot = st.one_of(st.integers(0, len(raw) - 1), st.sampled_from(hot))
    for at, value in data.draw(st.lists(st.tuples(spot, st.integers(0, 255)), max_size=8)):
        raw[at] = value
    if data.draw(st.booleans()):
        del raw[data.draw(st.integers(0, len(raw))):]
    path = tmp_path / "fuzz.npz"
    path.write_bytes(bytes(raw))
    _load_or_refuse(path)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_members_never_raise_anything_but_checkpoint_error(tmp_path, data):
    # Damage inside the members but write a sound zip (right CRCs), so the
    # damage reaches the .npy header and meta parsing instead of the CRC check.
    with zipfile.ZipFile(io.BytesIO(_good_bytes(tmp_path, data.draw(st.sampled_from(SEEDS))))) as zf:
        members = {i.filename: bytearray(zf.read(i)) for i in zf.infolist()}
    names = sorted(members)
    for _ in range(data.draw(st.integers(1, 4))):
        body = members[data.draw(st.sampled_from(names))]
        if not body:
            continue
        at = min(data.draw(st.one_of(st.integers(0, 127), st.integers(0, len(body) - 1))), len(body) - 1)
        if data.draw(st.booleans()):
            body[at] = data.draw(st.integers(0, 255))
        else:
            del body[at:]
    if data.draw(st.booleans()):  # drop or duplicate-rename a member: names decide the layout
        victim = data.draw(st.sampled_from(names))
        other = data.draw(st.sampled_from([*names, "weight_ih_l1.npy", "bias_hh_l0.npy", "Wxh.npy"]))
        members[other] = members.pop(victim)
        names = sorted(members)
    path = tmp_path / "fuzz.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name in names:
            zf.writestr(name, bytes(members[name]))
    _load_or_refuse(path)
