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

from charrnn import checkpoint as ck
from charrnn.cells import CELLS
from charrnn.checkpoint import load_checkpoint, save_checkpoint
from charrnn.errors import CheckpointError
from charrnn.params import Arch, layout

from checkpoint_helpers import ARCHS, B, GRU2, H, V, VOCAB, arrays_of_checkpoint, assert_same, format1_arrays, make_checkpoint

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


# ------------------------------------------------------------- fuzzing

# Mutated checkpoints per fuzz test (marked slow: CHARRNN_TESTS=all runs them); CHARRNN_FUZZ_EXAMPLES=20000
# for a longer hunt.
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


@pytest.mark.slow
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


@pytest.mark.slow
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
