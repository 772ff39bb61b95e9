"""Save and load charrnn checkpoints (`.npz` files).

File format, version 2
----------------------
A checkpoint is an uncompressed `.npz` archive as written by `np.savez`.
numpy alone can open it with `np.load(path, allow_pickle=False)`: it holds
no pickled objects. Letters: L = layers, S = states per layer (2 for the
LSTM: h and c; else 1), G = the cell's gates (rnn 1, lstm 4, gru 3),
H = hidden size, V = vocabulary size, B = batch size.

Parameters, float32, named and shaped as PyTorch's torch.nn.RNN / LSTM /
GRU and an nn.Linear head (charrnn.params.layout), for k = 0 .. L-1:

    weight_ih_l{k}  (G*H, V) for k = 0, (G*H, H) above
    weight_hh_l{k}  (G*H, H)
    bias_ih_l{k}    (G*H,)
    bias_hh_l{k}    (G*H,)    GRU only
    weight_out      (V, H)
    bias_out        (V,)

`vocab`: 1-d str array (numpy dtype '<U...'); the index is the token id.
The reserved tokens `<unk>` and `<eos>` sit at the ids meta names; every
other token is exactly one character, and all tokens are distinct.

`meta`: 0-d str array holding one JSON object (strict JSON: no NaN) with:

    "format": "charrnn"          "version": 2
    "unk_id": int                "eos_id": int
    "model": {"cell": "rnn" | "lstm" | "gru", "layers": L, "hidden": H,
              "vocab_size": V, "dropout": p}
    "step": int >= 0             "best_val_loss": float or null
    "corpus": {"fingerprint": str, ...}
    "train": {...}               the training settings, free-form

Other keys are allowed and kept (e.g. "rng": numpy Generator state,
"lines", "created", "charrnn_version"). Training also writes what an exact
resume needs: "optimizer_updates", "windows_per_epoch", "workers" (worker
threads used), "total_steps" (the planned end, null when only a time limit
bounds the run), "data_origin" (the step at which the current corpus was
started; epoch, window = divmod(step - data_origin, windows_per_epoch)),
"epoch_origin" (epochs of learning-rate decay done before it),
"last_val_loss", and in "corpus" the "paths" of regular files and the
"encoding_errors" policy.

Optional training state, for an exact resume (float32, finite):

    opt.<slot>.<param>  same shape as <param>, e.g. opt.m.weight_hh_l0 and
                        opt.v.weight_hh_l0 for Adam, opt.g2.<param> for
                        Adagrad; a slot present for one parameter must be
                        present for all of them
    h_carry  (L, S, B, H)  the state carried from one window to the next
    history.train, history.val  (N, 3)  loss curves (charrnn.history)

Version 1 (charrnn 0.1 before layers existed) is read too: a one-layer rnn
whose arrays are named Wxh (H, V), Whh, bh, Why, by (charrnn.params.
FORMAT1_NAMES), opt.<slot>.<those>, and h_carry (B, H). The loader returns
it under version 2's names and shapes; saving always writes version 2.

Any other array name is refused. So are compressed members
(`np.savez_compressed`): keeping every member stored lets the loader check
each array's declared size against the bytes really in the file before it
allocates anything.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from charrnn.checkpoint_validate import (
    FORMAT,
    FORMAT_VERSION,
    Invalid,
    check_complete,
    check_finite,
    check_float_spec,
    check_meta,
    check_meta_spec,
    check_stored_size,
    check_vocab,
    check_vocab_spec,
    classify,
    current_name,
    file_names,
    meta_from_text,
    meta_to_text,
    one_line,
    read_npy_header,
    strings_from_array,
)
from charrnn.errors import CheckpointError

from charrnn.params import Arch, layout

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "load_checkpoint",
    "remove_temp_files",
    "save_checkpoint",
]

# What a damaged or hostile archive can make zipfile and numpy raise while
# reading it. Our own mistakes (AttributeError, NameError...) are left out,
# so that they show up as bugs rather than as "corrupt".
_DAMAGE = (
    OSError, EOFError, ValueError, KeyError, IndexError, TypeError, OverflowError,
    MemoryError, RuntimeError, struct.error, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile,
)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a member first / an empty archive


@dataclass(eq=False)  # arrays have no single truth value, so no generated ==
class Checkpoint:
    """A model plus what is needed to resume training it.

    params: float32 arrays named and shaped by charrnn.params.layout.
    vocab:  V tokens; index = token id.
    meta:   the parsed JSON object (see the module docstring).
    state:  optional float32 arrays: "opt.<slot>.<param>" shaped like
            <param>, and "h_carry" (L, S, B, H).
    """

    params: dict[str, np.ndarray]
    vocab: list[str]
    meta: dict
    state: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def arch(self) -> Arch:
        """The architecture meta declares (the arrays were checked against it)."""
        model = self.meta["model"]
        return Arch(model["cell"], model.get("layers", 1), model["hidden"], model["vocab_size"])

    @property
    def hidden(self) -> int:
        """H, the hidden size."""
        return self.arch.hidden

    @property
    def vocab_size(self) -> int:
        """V, the number of tokens."""
        return len(self.vocab)


# ---------------------------------------------------------------- saving


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write `ckpt` to `path` atomically.

    The file is checked with the loader's rules first, so we never write one
    we would refuse. meta is written with "format" and "version" filled in;
    `ckpt.meta` itself is left unchanged. The data goes to a temporary file
    in the same directory, reaches the disk, then replaces `path` in one
    step: a crash or a full disk leaves the old checkpoint as it was.
    Raises CheckpointError("cannot write checkpoint PATH: REASON").
    """
    path = os.fspath(path)
    try:
        arrays = _arrays_to_write(ckpt)
    except Invalid as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from None

    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        mode = _file_mode(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise CheckpointError(f"cannot write checkpoint {path}: {reason}") from None
    finally:
        # Also on KeyboardInterrupt: a stray temp file is never wanted.
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_directory(directory)


def _temp_name(path: str) -> re.Pattern:
    """The names `save_checkpoint`'s temporary files for `path` get (tempfile.mkstemp's 8 random characters)."""
    return re.compile(re.escape("." + os.path.basename(path) + ".") + r"[a-z0-9_]{8}" + re.escape(".tmp"))


def remove_temp_files(path: str | os.PathLike) -> list[str]:
    """Delete temporary files a killed save of `path` left beside it; returns their paths.

    Only a writer that is gone leaves one, so this must run when no other
    process is saving to `path` (training does it once, before it starts:
    one writer per checkpoint is expected). Best effort: errors are ignored.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = _temp_name(path)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if pattern.fullmatch(name):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(os.path.join(directory, name))
            except OSError:
                pass
    return removed


def _arrays_to_write(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    """Every array of the file, checked with the same rules `load_checkpoint` applies."""
    if not isinstance(ckpt.meta, dict):
        raise Invalid("meta is not a dict")
    meta = {**ckpt.meta, "format": FORMAT, "version": FORMAT_VERSION}
    text = meta_to_text(meta)
    # Check what a reader will see: the JSON text, parsed again.
    parsed = meta_from_text(text)
    arch = check_meta(parsed)
    vocab_size = arch.vocab_size

    tokens = list(ckpt.vocab)
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise Invalid(f"vocabulary token {i} is not a str: {tok!r}")
        if "\0" in tok:
            # numpy str arrays drop trailing NULs, so it would not survive.
            raise Invalid(f"vocabulary token {i} is a NUL character, which a .npz cannot store")
    vocab = np.array(tokens, dtype=str)
    check_vocab_spec(vocab.shape, vocab.dtype, vocab_size)
    check_vocab(tokens, parsed["unk_id"], parsed["eos_id"])

    arrays = {"meta": np.array(text), "vocab": vocab}
    for group in (ckpt.params, ckpt.state):
        for name, arr in group.items():
            kind = classify(name, arch)
            if (kind == "param") != (group is ckpt.params):
                raise Invalid(f"array {name!r} belongs in {'params' if kind == 'param' else 'state'}")
            if not isinstance(arr, np.ndarray):
                raise Invalid(f"array {name!r} is not a numpy array")
            check_float_spec(name, arr.shape, arr.dtype, arch)
            check_finite(name, arr)
            arrays[name] = arr
    check_complete(set(arrays), arch)
    return arrays


def _file_mode(path: str) -> int:
    """Permissions for the new file: mkstemp makes it private (0600), but a
    checkpoint should get what an ordinary new file would, or keep the old
    file's."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable. Best effort: not every OS or file
    system lets a directory be opened or synced."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------- loading


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and fully check a checkpoint.

    Nothing is unpickled, and every array's header is checked against the
    shapes meta implies before its data is read, so a hostile file cannot
    make us allocate more than its own size. Any problem raises a single
    CheckpointError whose one-line message starts with the path.
    """
    path = os.fspath(path)
    try:
        if os.path.isdir(path):
            raise CheckpointError(f"{path}: is a directory")
        if not os.path.isfile(path) and os.path.exists(path):
            # A FIFO or device would block or stream forever.
            raise CheckpointError(f"{path}: is not a regular file")
        f = open(path, "rb")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    with f:
        try:
            magic = f.read(4)
            if magic not in _ZIP_MAGICS:
                raise Invalid("is not a charrnn checkpoint (not an .npz file)")
            f.seek(0)
            disk_size = os.fstat(f.fileno()).st_size
            try:
                npz = np.load(f, allow_pickle=False)
            except zipfile.BadZipFile:
                raise Invalid("is truncated or corrupt (zip directory missing or damaged)") from None
            with npz:
                return _read(npz, disk_size)
        except Invalid as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        except _DAMAGE as exc:
            raise CheckpointError(f"{path}: is truncated or corrupt ({one_line(exc)})") from None


def _read(npz, disk_size: int) -> Checkpoint:
    """Check and read an open archive: meta, then headers, then data."""
    zf: zipfile.ZipFile = npz.zip
    members: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise Invalid(f"has an unexpected zip member {info.filename!r} (not a .npy array)")
        name = info.filename[: -len(".npy")]
        if name in members:
            raise Invalid(f"is truncated or corrupt (array {name!r} appears twice)")
        members[name] = info

    # meta decides every expected shape, so it is read and checked first.
    if "meta" not in members:
        raise Invalid("is not a charrnn checkpoint (no meta array)")
    shape, dtype, header_size = read_npy_header(zf, members["meta"])
    check_meta_spec(shape, dtype)
    check_stored_size(members["meta"], shape, dtype, header_size, disk_size)
    meta = meta_from_text(_strings(npz, "meta")[0])
    arch = check_meta(meta)
    version = meta["version"]
    renames = file_names(meta)  # version 1's names -> this version's
    names = {}  # ours -> the file's
    for name in members:
        ours = current_name(name, renames)
        if renames and ours == name and classify(name, arch) in ("param", "opt"):
            raise Invalid(f"has an unexpected array {name!r} (a version-2 name in a version-1 checkpoint)")
        names[ours] = name

    for name in names:
        classify(name, arch)
    check_complete(set(names), arch, renames)
    for name, file_name in names.items():
        if name == "meta":
            continue
        info = members[file_name]
        shape, dtype, header_size = read_npy_header(zf, info)
        if name == "vocab":
            check_vocab_spec(shape, dtype, arch.vocab_size)
        else:
            check_float_spec(name, shape, dtype, arch, version, file_name)
        check_stored_size(info, shape, dtype, header_size, disk_size)

    vocab = _strings(npz, "vocab")
    check_vocab(vocab, meta["unk_id"], meta["eos_id"])
    params, state = {}, {}
    shapes = layout(arch)
    for name, file_name in names.items():
        if name in ("meta", "vocab"):
            continue
        arr = npz[file_name].astype(np.float32, copy=False)  # native byte order
        check_finite(name, arr)
        (params if name in shapes else state)[name] = arr
    if version == 1:  # as version 2 has them
        meta["model"] = {**meta["model"], "layers": 1}
        if "h_carry" in state:
            state["h_carry"] = state["h_carry"].reshape(1, 1, *state["h_carry"].shape)
    params = {p: params[p] for p in shapes}
    return Checkpoint(params=params, vocab=vocab, meta=meta, state=state)


def _strings(npz, name: str) -> list[str]:
    """A str array's contents (meta or vocab) as a flat list."""
    try:
        return strings_from_array(npz[name])
    except Invalid as exc:
        raise Invalid(f"array {name!r} {exc}") from None
