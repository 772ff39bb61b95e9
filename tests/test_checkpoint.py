"""Checkpoint files: round trip, atomic saving, and one refusal per kind of damage."""

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
from charrnn.checkpoint import PARAM_NAMES, Checkpoint, load_checkpoint, param_shapes, save_checkpoint
from charrnn.errors import CheckpointError

H, V, B = 8, 7, 2
VOCAB = ["<unk>", "<eos>", "a", "b", "c", "d", "e"]


def make_checkpoint(seed: int = 0) -> Checkpoint:
    rng = np.random.default_rng(seed)
    params = {n: rng.standard_normal(s).astype(np.float32) for n, s in param_shapes(H, V).items()}
    state = {f"opt.{slot}.{n}": rng.random(params[n].shape, dtype=np.float32)
             for slot in ("m", "v") for n in PARAM_NAMES}
    state["h_carry"] = rng.standard_normal((B, H)).astype(np.float32)
    meta = {
        "unk_id": 0,
        "eos_id": 1,
        "model": {"cell": "rnn", "hidden": H, "vocab_size": V},
        "step": 42,
        "best_val_loss": 1.25,
        "corpus": {"fingerprint": "sha256:abc", "chars": 1000},
        "train": {"lr": 0.002, "optimizer": "adam"},
        "rng": np.random.default_rng(1).bit_generator.state,
        "lines": False,
    }
    return Checkpoint(params=params, vocab=list(VOCAB), meta=meta, state=state)


@pytest.fixture
def ckpt() -> Checkpoint:
    return make_checkpoint()


@pytest.fixture
def good(tmp_path, ckpt) -> str:
    """Path of a valid checkpoint file."""
    path = str(tmp_path / "model.npz")
    save_checkpoint(path, ckpt)
    return path


def arrays_of(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def meta_of(arrays: dict) -> dict:
    return json.loads(str(arrays["meta"]))


def with_meta(arrays: dict, meta: dict) -> dict:
    return {**arrays, "meta": np.array(json.dumps(meta))}


def refusal(path: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ saving


def test_round_trip_is_exact(good, ckpt):
    back = load_checkpoint(good)
    assert back.params.keys() == ckpt.params.keys()
    for group, original in ((back.params, ckpt.params), (back.state, ckpt.state)):
        assert group.keys() == original.keys()
        for name, arr in group.items():
            assert arr.dtype == np.float32 and arr.shape == original[name].shape
            assert arr.tobytes() == original[name].tobytes()
    assert back.vocab == VOCAB
    assert back.meta == {**ckpt.meta, "format": "charrnn", "version": 1}
    assert (back.hidden, back.vocab_size) == (H, V)


def test_save_leaves_the_callers_meta_alone(good, ckpt):
    assert "format" not in ckpt.meta and "version" not in ckpt.meta


def test_plain_numpy_reads_the_file(good):
    with np.load(good, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(
            ["meta", "vocab", *PARAM_NAMES, "h_carry"]
            + [f"opt.{s}.{n}" for s in ("m", "v") for n in PARAM_NAMES])
        assert npz["vocab"].dtype.kind == "U" and npz["vocab"].tolist() == VOCAB
        assert npz["meta"].shape == () and json.loads(str(npz["meta"]))["format"] == "charrnn"
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


def test_save_into_missing_folder(tmp_path, ckpt):
    path = tmp_path / "nope" / "m.npz"
    with pytest.raises(CheckpointError, match=r"^cannot write checkpoint .*m\.npz: No such file or directory$"):
        save_checkpoint(path, ckpt)
    assert os.listdir(tmp_path) == []


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


def test_disk_full_mid_write_keeps_old_file(good, monkeypatch):
    before = Path(good).read_bytes()

    def half_written(f, **arrays):
        f.write(b"PK\x03\x04 partial data")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.np, "savez", half_written)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(good, make_checkpoint(seed=1))
    assert str(info.value) == f"cannot write checkpoint {good}: No space left on device"
    assert Path(good).read_bytes() == before
    assert os.listdir(os.path.dirname(good)) == ["model.npz"]


def test_interrupted_save_leaves_no_temp_file(good, monkeypatch):
    def interrupted(f, **arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(good, make_checkpoint(seed=1))
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


def test_save_onto_a_folder(tmp_path, ckpt):
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(CheckpointError, match="^cannot write checkpoint .*m.npz: "):
        save_checkpoint(tmp_path / "m.npz", ckpt)
    assert os.listdir(tmp_path) == ["m.npz"]


@pytest.mark.parametrize("damage, reason", [
    (lambda c: c.params.update(Wxh=c.params["Wxh"].astype(np.float64)),
     "array 'Wxh' has dtype float64, expected float32"),
    (lambda c: c.params["by"].__setitem__(0, np.nan), "array 'by' holds non-finite values (NaN or inf)"),
    (lambda c: c.params.pop("Whh"), "is missing array 'Whh'"),
    (lambda c: c.state.pop("opt.v.bh"), "is missing array 'opt.v.bh'"),
    (lambda c: c.state.update(evil=np.zeros(1, np.float32)), "has an unexpected array 'evil'"),
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


def test_missing_file(tmp_path):
    path = str(tmp_path / "none.npz")
    assert refusal(path) == f"{path}: no such checkpoint"


def test_directory(tmp_path):
    assert refusal(str(tmp_path)) == f"{tmp_path}: is a directory"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_not_opened(tmp_path):
    path = tmp_path / "pipe.npz"
    os.mkfifo(path)
    assert refusal(str(path)) == f"{path}: is not a regular file"


@pytest.mark.parametrize("content", [b"", b"hello, world\n", b"\x93NUMPY\x01\x00"])
def test_not_an_npz(tmp_path, content):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    assert refusal(str(path)) == f"{path}: is not a charrnn checkpoint (not an .npz file)"


def test_a_plain_npy_file(tmp_path):
    path = str(tmp_path / "x.npy")
    np.save(path, np.zeros(3))
    assert refusal(path) == f"{path}: is not a charrnn checkpoint (not an .npz file)"


def test_truncated(good):
    data = Path(good).read_bytes()
    Path(good).write_bytes(data[: len(data) // 2])
    assert refusal(good) == f"{good}: is truncated or corrupt (zip directory missing or damaged)"


def test_flipped_byte_in_weights(good, ckpt):
    data = bytearray(Path(good).read_bytes())
    at = data.find(ckpt.params["Why"].tobytes())
    data[at + 3] ^= 0x40
    Path(good).write_bytes(bytes(data))
    assert refusal(good) == f"{good}: is truncated or corrupt (Bad CRC-32 for file 'Why.npy')"


def test_npz_of_something_else(tmp_path):
    path = str(tmp_path / "x.npz")
    np.savez(path, x=np.zeros(3))
    assert refusal(path) == f"{path}: is not a charrnn checkpoint (no meta array)"


def _meta_change(**changes):
    def change(arrays):
        meta = meta_of(arrays)
        for key, value in changes.items():
            target = meta
            *parents, last = key.split("__")
            for parent in parents:
                target = target[parent]
            if value is _DROP:
                del target[last]
            else:
                target[last] = value
        return with_meta(arrays, meta)
    return change


_DROP = object()


def _set(**arrays):
    return lambda a: {**a, **arrays}


def _drop(name):
    return lambda a: {k: v for k, v in a.items() if k != name}


def _beyond_unicode() -> np.ndarray:
    """The vocabulary with its last token replaced by code point 0x110000."""
    codes = np.array(VOCAB).view(np.uint32).copy()
    codes[-5] = 0x110000
    return codes.view(np.array(VOCAB).dtype)


CASES = {
    "version": (_meta_change(version=7), "has format version 7; this charrnn reads version 1"),
    "version_bool": (_meta_change(version=True), "has format version True; this charrnn reads version 1"),
    "other_format": (_meta_change(format="other"), "is not a charrnn checkpoint (meta format is 'other')"),
    "no_format": (_meta_change(format=_DROP), "is not a charrnn checkpoint (meta has no 'format')"),
    "missing_Whh": (_drop("Whh"), "is missing array 'Whh'"),
    "missing_vocab": (_drop("vocab"), "is missing array 'vocab'"),
    "half_a_slot": (_drop("opt.m.by"), "is missing array 'opt.m.by'"),
    "Whh_shape": (_set(Whh=np.zeros((3, 4), np.float32)), "array 'Whh' has shape (3, 4), expected (8, 8)"),
    "Wxh_dtype": (_set(Wxh=np.zeros((H, V))), "array 'Wxh' has dtype float64, expected float32"),
    "by_nan": (_set(by=np.full(V, np.nan, np.float32)), "array 'by' holds non-finite values (NaN or inf)"),
    "bh_inf": (_set(bh=np.full(H, np.inf, np.float32)), "array 'bh' holds non-finite values (NaN or inf)"),
    "opt_shape": (_set(**{"opt.v.Why": np.zeros((H, V), np.float32)}),
                  "array 'opt.v.Why' has shape (8, 7), expected (7, 8)"),
    "opt_nan": (_set(**{"opt.m.bh": np.full(H, np.nan, np.float32)}),
                "array 'opt.m.bh' holds non-finite values (NaN or inf)"),
    "h_carry_shape": (_set(h_carry=np.zeros((2, 5), np.float32)), "array 'h_carry' has shape (2, 5), expected (B, 8)"),
    "h_carry_dtype": (_set(h_carry=np.zeros((2, H), np.float16)), "array 'h_carry' has dtype float16, expected float32"),
    "short_vocab": (_set(vocab=np.array(VOCAB[:5])), "vocabulary has 5 tokens but the weights expect 7"),
    "vocab_ints": (_set(vocab=np.arange(V)), "vocabulary is not a 1-d str array, it has dtype int64 and shape (7,)"),
    "vocab_unk": (_set(vocab=np.array(["a", "<eos>", "<unk>", "b", "c", "d", "e"])),
                  "vocabulary id 0 is 'a', expected '<unk>' (meta unk_id)"),
    "vocab_long_token": (_set(vocab=np.array(VOCAB[:6] + ["ef"])),
                         "vocabulary token 6 is 'ef'; expected exactly one character"),
    "vocab_duplicate": (_set(vocab=np.array(VOCAB[:6] + ["a"])), "vocabulary token 'a' appears twice (ids 2 and 6)"),
    "vocab_bad_code_point": (_set(vocab=_beyond_unicode()), "array 'vocab' holds text that is not valid Unicode"),
    "meta_not_json": (_set(meta=np.array("{not json")), "meta is not valid JSON"),
    "meta_nan": (_set(meta=np.array('{"format": "charrnn", "best_val_loss": NaN}')), "meta is not valid JSON"),
    "meta_deep": (_set(meta=np.array("[" * 100_000)), "meta is not valid JSON"),
    "meta_list": (_set(meta=np.array("[1, 2]")), "meta is not a JSON object"),
    "meta_bytes": (_set(meta=np.array(b"{}")), "meta is not a JSON text (a 0-d str array), it has dtype |S2 and shape ()"),
    "meta_missing_step": (_meta_change(step=_DROP), "meta is missing key 'step'"),
    "meta_hidden_huge": (_meta_change(model__hidden=100_000),
                         "meta key 'model.hidden' must be an integer from 1 to 65536, not 100000"),
    "meta_hidden_mismatch": (_meta_change(model__hidden=9), "array 'Wxh' has shape (8, 7), expected (9, 7)"),
    "meta_cell": (_meta_change(model__cell="lstm"), "model cell 'lstm' is not supported; this charrnn reads 'rnn'"),
    "meta_loss": (_meta_change(best_val_loss="low"),
                  "meta key 'best_val_loss' must be a finite number or null, not 'low'"),
    "meta_fingerprint": (_meta_change(corpus={}), "meta is missing key 'corpus.fingerprint'"),
    "meta_train": (_meta_change(train=[]), "meta key 'train' must be a JSON object"),
    "meta_same_ids": (_meta_change(eos_id=0), "meta unk_id and eos_id are both 0"),
    "evil": (_set(evil=np.zeros(3)), "has an unexpected array 'evil'"),
}


@pytest.mark.parametrize("case", CASES)
def test_damaged_file_is_refused_with_a_clear_message(good, case):
    damage, reason = CASES[case]
    np.savez(good, **damage(arrays_of(good)))
    assert refusal(good) == f"{good}: {reason}"


def test_big_endian_weights_are_accepted(good, ckpt):
    arrays = arrays_of(good)
    np.savez(good, **{**arrays, "Wxh": arrays["Wxh"].astype(">f4")})
    back = load_checkpoint(good)
    assert back.params["Wxh"].dtype == np.dtype("=f4")
    assert np.array_equal(back.params["Wxh"], ckpt.params["Wxh"])


def test_compressed_archive_is_refused(good):
    np.savez_compressed(good, **arrays_of(good))
    assert refusal(good) == (f"{good}: array 'meta' is compressed; "
                             "charrnn checkpoints are uncompressed (np.savez)")


class _Trap:
    """Unpickling this would call _sprung, so a refusal proves nothing was unpickled."""

    def __reduce__(self):
        return (_sprung, ())


_SPRUNG = []


def _sprung():
    _SPRUNG.append(True)
    return {}


@pytest.mark.parametrize("name", ["meta", "vocab", "Wxh"])
def test_object_arrays_are_never_unpickled(good, name):
    objects = np.array([_Trap()], dtype=object)
    np.savez(good, **{**arrays_of(good), name: objects})
    assert refusal(good) == f"{good}: array {name!r} holds Python objects, which charrnn refuses to unpickle"
    assert _SPRUNG == []


def test_object_meta_alone(tmp_path):
    path = str(tmp_path / "x.npz")
    np.savez(path, meta=np.array([{"x": 1}], dtype=object))
    assert refusal(path) == f"{path}: array 'meta' holds Python objects, which charrnn refuses to unpickle"


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


def test_hostile_shape_is_refused_before_allocating(good):
    _replace_members(good, _raw_member("Wxh", (10**12,), "<f4"))
    assert refusal(good) == f"{good}: array 'Wxh' has shape (1000000000000,), expected (8, 7)"


def test_hostile_vocab_length_is_refused_before_reading(good):
    _replace_members(good, _raw_member("vocab", (10**12,), "<U5"))
    assert refusal(good) == f"{good}: vocabulary has 1000000000000 tokens but the weights expect 7"


def test_header_promising_more_data_than_the_file_holds(good):
    # A meta at the limits makes a 2**37-element Wxh legal; the file is tiny.
    hidden, vocab = 2**16, 2**21
    arrays = arrays_of(good)
    meta = meta_of(arrays)
    meta["model"].update(hidden=hidden, vocab_size=vocab)
    np.savez(good, meta=np.array(json.dumps(meta)))
    # Weights before vocab in the archive, so the weights' headers are met first.
    _replace_members(good, *(_raw_member(n, s, "<f4", b"\0" * 64) for n, s in param_shapes(hidden, vocab).items()),
                     _raw_member("vocab", (vocab,), "<U1", b"\0" * 64))
    assert refusal(good) == f"{good}: is truncated or corrupt (array 'Wxh' is not the size its header declares)"


def test_negative_shape(good):
    _replace_members(good, _raw_member("bh", (-8,), "<f4"))
    assert refusal(good) == f"{good}: is truncated or corrupt (array 'bh' has shape (-8,))"


def test_member_that_is_not_npy(good):
    _replace_members(good, ("notes.txt", b"hello"))
    assert refusal(good) == f"{good}: has an unexpected zip member 'notes.txt' (not a .npy array)"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_unreadable_file(good):
    os.chmod(good, 0)
    assert refusal(good) == f"{good}: cannot read checkpoint (Permission denied)"


# ------------------------------------------------------------- fuzzing

# Mutated checkpoints per fuzz test; CHARRNN_FUZZ_EXAMPLES=20000 for a longer hunt.
FUZZ_EXAMPLES = int(os.environ.get("CHARRNN_FUZZ_EXAMPLES", "2000"))
_GOOD_BYTES: list[bytes] = []


def _good_bytes(tmp_path) -> bytes:
    if not _GOOD_BYTES:
        path = tmp_path / "seed.npz"
        save_checkpoint(path, make_checkpoint())
        _GOOD_BYTES.append(path.read_bytes())
    return _GOOD_BYTES[0]


def _load_or_refuse(path) -> None:
    try:
        load_checkpoint(path)
    except CheckpointError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_bytes_never_raise_anything_but_checkpoint_error(tmp_path, data):
    raw = bytearray(_good_bytes(tmp_path))
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
    with zipfile.ZipFile(io.BytesIO(_good_bytes(tmp_path))) as zf:
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
    path = tmp_path / "fuzz.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name in names:
            zf.writestr(name, bytes(members[name]))
    _load_or_refuse(path)
