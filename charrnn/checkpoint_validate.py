"""The rules a charrnn checkpoint must follow, shared by saving and loading.

`charrnn.checkpoint` documents the file layout; this module only checks it.
Every check raises `Invalid(reason)`; the caller turns the reason into a
`CheckpointError` that names the file. Checks that only need an array's
shape and dtype take those, not the array, so the loader can run them on
the .npy headers (see `read_npy_header`) before it reads, and allocates,
any array data.

Letters in shapes: L = layers, S = states per layer, H = hidden size,
V = vocabulary size, B = batch. The parameters' names and shapes come from
`charrnn.params.layout`, the one place that defines them.
"""

from __future__ import annotations

import json
import math
import re
import warnings
import zipfile

import numpy as np
from numpy.lib import format as npy_format

from charrnn.cells import CELLS
from charrnn.config import MAX_LAYERS
from charrnn.params import FORMAT1_NAMES, Arch, layout

FORMAT = "charrnn"
FORMAT_VERSION = 2  # what this charrnn writes
READS = (1, 2)  # what it reads: version 1 is the single-layer vanilla cell under FORMAT1_NAMES
UNK = "<unk>"
EOS = "<eos>"

# Generous sanity limits: far above any model this tool can train, low
# enough that a hostile meta cannot ask for absurd shapes.
MAX_HIDDEN = 2**16
MAX_VOCAB = 2**21  # every Unicode code point, plus the reserved tokens

# np.savez writes 1.0, or 2.0 for huge headers; 3.0 only for non-Latin-1 field names.
_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
HISTORY = ("history.train", "history.val")  # charrnn.history: (N, 3) rows of step, seconds, loss
HISTORY_ROWS = 1 << 24
_OPT_NAME = re.compile(r"opt\.([A-Za-z0-9_]+)\.(\w+)")
_MAX_CODE_POINT = 0x10FFFF


class Invalid(Exception):
    """A broken rule; `str(err)` is the reason, without the file name."""


def _is_int(x: object) -> bool:
    # JSON true/false arrive as bool, which Python counts as int.
    return isinstance(x, int) and not isinstance(x, bool)


def _get(meta: dict, key: str, where: str = "") -> object:
    if key not in meta:
        raise Invalid(f"meta is missing key '{where}{key}'")
    return meta[key]


def _int_in(meta: dict, key: str, lo: int, hi: int | None, where: str = "") -> int:
    value = _get(meta, key, where)
    if not _is_int(value) or value < lo or (hi is not None and value > hi):
        bound = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise Invalid(f"meta key '{where}{key}' must be an integer {bound}, not {value!r}")
    return value


def _dict(meta: dict, key: str) -> dict:
    value = _get(meta, key)
    if not isinstance(value, dict):
        raise Invalid(f"meta key '{key}' must be a JSON object")
    return value


def check_meta(meta: object) -> Arch:
    """Check the parsed meta object; return the architecture it declares."""
    if not isinstance(meta, dict):
        raise Invalid("meta is not a JSON object")
    # Format and version first: a file from another tool or a newer charrnn
    # deserves that explanation, not a complaint about some missing key.
    if "format" not in meta:
        raise Invalid("is not a charrnn checkpoint (meta has no 'format')")
    if meta["format"] != FORMAT:
        raise Invalid(f"is not a charrnn checkpoint (meta format is {meta['format']!r})")
    version = _get(meta, "version")
    if version not in READS or not _is_int(version):
        raise Invalid(f"has format version {version!r}; this charrnn reads versions {READS[0]} to {READS[-1]}")
    model = _dict(meta, "model")
    cell = _get(model, "cell", "model.")
    if version == 1 and cell != "rnn":
        raise Invalid(f"model cell {cell!r} is not supported: a version-1 checkpoint holds only 'rnn'")
    if cell not in CELLS:
        raise Invalid(f"model cell {cell!r} is not supported; this charrnn reads {', '.join(map(repr, CELLS))}")
    layers = _int_in(model, "layers", 1, MAX_LAYERS, "model.") if version >= 2 else 1
    dropout = model.get("dropout", 0.0)
    if not (isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and 0 <= dropout < 1):
        raise Invalid(f"meta key 'model.dropout' must be a number in [0, 1), not {dropout!r}")
    hidden = _int_in(model, "hidden", 1, MAX_HIDDEN, "model.")
    vocab_size = _int_in(model, "vocab_size", 2, MAX_VOCAB, "model.")
    unk_id = _int_in(meta, "unk_id", 0, vocab_size - 1)
    eos_id = _int_in(meta, "eos_id", 0, vocab_size - 1)
    if unk_id == eos_id:
        raise Invalid(f"meta unk_id and eos_id are both {unk_id}")
    _int_in(meta, "step", 0, None)
    loss = _get(meta, "best_val_loss")
    if loss is not None and not (isinstance(loss, (int, float)) and not isinstance(loss, bool)
                                 and math.isfinite(loss)):
        raise Invalid(f"meta key 'best_val_loss' must be a finite number or null, not {loss!r}")
    corpus = _dict(meta, "corpus")
    if not isinstance(_get(corpus, "fingerprint", "corpus."), str):
        raise Invalid("meta key 'corpus.fingerprint' must be a string")
    _dict(meta, "train")
    return Arch(model["cell"], layers, hidden, vocab_size)


def file_names(meta: dict) -> dict[str, str]:
    """{name in the file: name in charrnn.params} for the parameter arrays of meta's version."""
    return dict(FORMAT1_NAMES) if meta.get("version") == 1 else {}


def file_name(name: str, renames: dict[str, str]) -> str:
    """current_name's inverse: what a file with these renames calls one of our arrays."""
    back = {new: old for old, new in renames.items()}
    match = _OPT_NAME.fullmatch(name)
    if match and match.group(2) in back:
        return f"opt.{match.group(1)}.{back[match.group(2)]}"
    return back.get(name, name)


def current_name(name: str, renames: dict[str, str]) -> str:
    """An array's name in this version's terms (format 1: Wxh -> weight_ih_l0, opt.m.Wxh -> opt.m.weight_ih_l0)."""
    if name in renames:
        return renames[name]
    match = _OPT_NAME.fullmatch(name)
    if match and match.group(2) in renames:
        return f"opt.{match.group(1)}.{renames[match.group(2)]}"
    return name


def _no_nan_constants(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def meta_to_text(meta: object) -> str:
    """Serialise meta as strict JSON (no NaN/Infinity, so any JSON reader copes)."""
    try:
        return json.dumps(meta, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError) as exc:
        # json's own wording for NaN changes between Python versions.
        reason = "it holds NaN or infinity" if "Out of range float" in str(exc) else str(exc)
        raise Invalid(f"meta cannot be stored as JSON ({reason})") from None


def meta_from_text(text: str) -> object:
    """Parse meta's JSON text with the same strictness `meta_to_text` writes."""
    try:
        return json.loads(text, parse_constant=_no_nan_constants)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and integers too long to convert.
        raise Invalid("meta is not valid JSON") from None


def check_meta_spec(shape: tuple[int, ...], dtype: np.dtype) -> None:
    """The meta array must be a 0-d str array (one JSON text)."""
    if shape != () or dtype.kind != "U":
        raise Invalid(f"meta is not a JSON text (a 0-d str array), it has dtype {dtype} and shape {shape}")


def check_vocab_spec(shape: tuple[int, ...], dtype: np.dtype, vocab_size: int) -> None:
    """The vocab array must be str and shaped (V,): checked before reading it."""
    if len(shape) != 1 or dtype.kind != "U":
        raise Invalid(f"vocabulary is not a 1-d str array, it has dtype {dtype} and shape {shape}")
    if shape[0] != vocab_size:
        raise Invalid(f"vocabulary has {shape[0]} tokens but the weights expect {vocab_size}")


def strings_from_array(arr: np.ndarray) -> list[str]:
    """Turn a str array of any shape into a flat list of Python str.

    Code points above U+10FFFF are refused here because numpy fails with a
    SystemError (not a ValueError) when asked to make a str from them.
    """
    flat = np.ascontiguousarray(arr.reshape(-1), dtype=arr.dtype.newbyteorder("="))
    if flat.size and flat.dtype.itemsize and flat.view(np.uint32).max() > _MAX_CODE_POINT:
        raise Invalid("holds text that is not valid Unicode")
    return [str(s) for s in flat.tolist()]


def check_vocab(tokens: list[str], unk_id: int, eos_id: int) -> None:
    """Reserved tokens at their ids, every other token one distinct character."""
    first_id: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if i in (unk_id, eos_id):
            want, key = (UNK, "unk_id") if i == unk_id else (EOS, "eos_id")
            if tok != want:
                raise Invalid(f"vocabulary id {i} is {tok!r}, expected {want!r} (meta {key})")
        elif len(tok) != 1:
            raise Invalid(f"vocabulary token {i} is {tok!r}; expected exactly one character")
        if tok in first_id:
            raise Invalid(f"vocabulary token {tok!r} appears twice (ids {first_id[tok]} and {i})")
        first_id[tok] = i


def classify(name: str, arch: Arch) -> str:
    """Which part of the schema an array name belongs to.

    Returns "meta", "vocab", "param", "opt", "h_carry" or "history"; unknown names are
    refused so that nothing we do not understand rides along into a resume.
    """
    if name in ("meta", "vocab", "h_carry"):
        return name
    if name in HISTORY:
        return "history"
    shapes = layout(arch)
    if name in shapes:
        return "param"
    match = _OPT_NAME.fullmatch(name)
    if match and match.group(2) in shapes:
        return "opt"
    raise Invalid(f"has an unexpected array {name!r} (not part of a {arch.layers}-layer {arch.cell} model)")


def check_complete(names: set[str], arch: Arch, renames: dict[str, str] | None = None) -> None:
    """All parameters and the vocabulary are present, and every optimizer
    slot that appears covers every parameter (half a slot cannot resume).
    renames: file_names(meta), so that a missing array is named as the file would name it."""
    params = list(layout(arch))
    required = ["vocab", *params]
    slots = sorted({n.split(".")[1] for n in names if n.startswith("opt.")})
    required += [f"opt.{slot}.{p}" for slot in slots for p in params]
    for name in required:
        if name not in names:
            what = "" if name == "vocab" else f" (meta declares a {arch.layers}-layer {arch.cell} model)"
            raise Invalid(f"is missing array {file_name(name, renames or {})!r}{what}")


def check_float_spec(name: str, shape: tuple[int, ...], dtype: np.dtype, arch: Arch,
                     version: int = FORMAT_VERSION, shown: str | None = None) -> None:
    """Parameters and training state: float32 of the shape the architecture implies.

    Parameters and `opt.<slot>.<param>` take the parameter's shape; h_carry
    is (L, S, B, H) for any B >= 1 ((B, H) in version 1). Either byte order is
    fine: numpy writes the machine's own, and the loader converts.
    """
    shapes = layout(arch)
    label = shown or name  # the file's own name for it
    if name == "h_carry":
        L, S, H = arch.layers, arch.states, arch.hidden
        if version == 1:
            if len(shape) != 2 or shape[0] < 1 or shape[1] != H:
                raise Invalid(f"array 'h_carry' has shape {shape}, expected (B, {H})")
        elif len(shape) != 4 or shape[3] != H or shape[:2] != (L, S) or shape[2] < 1:
            raise Invalid(f"array 'h_carry' has shape {shape}, expected ({L}, {S}, B, {H}): layers, states, streams, hidden")
    elif name in HISTORY:
        if len(shape) != 2 or shape[1] != 3 or shape[0] > HISTORY_ROWS:
            raise Invalid(f"array {label!r} has shape {shape}, expected (N, 3) with N at most {HISTORY_ROWS:,}: step, seconds, loss")
    else:
        expected = shapes[name.rsplit(".", 1)[-1]]
        if shape != expected:
            raise Invalid(f"array {label!r} has shape {shape}, expected {expected} "
                          f"(a {arch.layers}-layer {arch.cell} with hidden {arch.hidden})")  # fmt: skip
    if dtype.kind != "f" or dtype.itemsize != 4:
        raise Invalid(f"array {label!r} has dtype {dtype}, expected float32")


def check_finite(name: str, arr: np.ndarray) -> None:
    """NaN or inf weights would silently poison every later step."""
    if not np.isfinite(arr).all():
        raise Invalid(f"array {name!r} holds non-finite values (NaN or inf)")


def read_npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and header length of a member's .npy header; its data is not read."""
    name = info.filename[: -len(".npy")]
    if info.compress_type != zipfile.ZIP_STORED:
        raise Invalid(f"array {name!r} is compressed; charrnn checkpoints are uncompressed (np.savez)")
    with zf.open(info) as fp:
        try:
            version = npy_format.read_magic(fp)
            if version not in _HEADER_READERS:
                raise ValueError(f".npy version {version} is not supported")
            with warnings.catch_warnings():  # a damaged header may hold escapes Python warns about
                warnings.simplefilter("ignore")
                shape, _, dtype = _HEADER_READERS[version](fp)
        except (zipfile.BadZipFile, OSError):
            raise  # the zip layer's own complaint (e.g. a bad CRC) reads better as it is
        except Exception as exc:  # numpy parses the header with ast/tokenize: almost anything can fly
            raise Invalid(f"is truncated or corrupt (array {name!r}: bad .npy header: {one_line(exc)})") from None
        header_size = fp.tell()
    if dtype.hasobject:
        raise Invalid(f"array {name!r} holds Python objects, which charrnn refuses to unpickle")
    if any(n < 0 for n in shape):
        raise Invalid(f"is truncated or corrupt (array {name!r} has shape {shape})")
    return shape, dtype, header_size


def check_stored_size(info: zipfile.ZipInfo, shape: tuple[int, ...], dtype: np.dtype,
                      header_size: int, disk_size: int) -> None:
    """The member holds exactly header + data and fits in the file: so no
    array we go on to read can be larger than the file itself."""
    expected = header_size + math.prod(shape) * dtype.itemsize
    if (info.file_size != expected or info.compress_size != expected
            or info.header_offset + expected > disk_size):
        name = info.filename[: -len(".npy")]
        raise Invalid(f"is truncated or corrupt (array {name!r} is not the size its header declares)")


def one_line(exc: BaseException) -> str:
    """A short single-line reason for the error message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
