"""The character vocabulary: token ids <-> characters, and vectorised encoding.

Ids 0 and 1 are reserved: 0 is `<unk>` (a character the model never saw, or
one folded away by `min_count`), 1 is `<eos>` (end of a record).  Every other
id is one Unicode code point.  Encoding works on numpy arrays of code points,
never on Python characters one at a time, so a large corpus encodes quickly.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import numpy as np

from charrnn.errors import CorpusError, UsageError

UNK_TOKEN = "<unk>"
EOS_TOKEN = "<eos>"
UNK_ID = 0
EOS_ID = 1

_RESERVED = (UNK_TOKEN, EOS_TOKEN)
_REPLACEMENT = 0xFFFD  # what `decode` shows for <unk>

# Visible stand-ins for characters that would otherwise print as nothing.
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "\u2420"}  # U+2420 is "␠"
# Unicode categories that print invisibly or merge with their neighbours.
_INVISIBLE = {"Cf", "Co", "Cn", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"}


def text_to_codepoints(text: str) -> np.ndarray:
    """Return the code points of `text` as a (len(text),) uint32 array."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def codepoints_to_text(codepoints: np.ndarray) -> str:
    """Inverse of `text_to_codepoints`: (N,) integer code points -> str."""
    return np.ascontiguousarray(codepoints, dtype="<u4").tobytes().decode("utf-32-le")


def _display_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    category = unicodedata.category(ch)
    if category == "Cc":  # C0/C1 controls all lie below U+0100
        return f"\\x{ord(ch):02x}"
    if category in _INVISIBLE:
        return f"U+{ord(ch):04X}"
    return ch


def _validate_tokens(tokens: tuple) -> None:
    """Raise ValueError with the first thing wrong with a token list."""
    if len(tokens) < 2:
        raise ValueError(f"vocabulary has {len(tokens)} tokens; it needs at least {UNK_TOKEN} and {EOS_TOKEN}")
    for i, expected in enumerate(_RESERVED):
        if tokens[i] != expected:
            raise ValueError(f"token {i} is {tokens[i]!r}, expected {expected!r}")
    seen: dict[str, int] = {}
    for i, tok in enumerate(tokens[2:], start=2):
        if not isinstance(tok, str) or len(tok) != 1:
            raise ValueError(f"token {i} is {tok!r}, expected a single character")
        if 0xD800 <= ord(tok) <= 0xDFFF:
            raise ValueError(f"token {i} is a lone surrogate (U+{ord(tok):04X}), not a character")
        if tok in seen:
            raise ValueError(f"token {i} ({tok!r}) repeats token {seen[tok]}")
        seen[tok] = i


class Vocab:
    """id <-> token.

    `tokens[0] == "<unk>"`, `tokens[1] == "<eos>"`, then single characters.
    A vocabulary built from a corpus lists them sorted by code point; one
    loaded from a checkpoint keeps the checkpoint's order.

    `counts` is a (V,) int64 array of occurrences in the corpus the vocabulary
    was built from (counts[UNK_ID]: characters folded away by min_count,
    counts[EOS_ID]: number of records), or None when loaded from a checkpoint.
    """

    __slots__ = ("_codepoints", "_lookup", "counts", "tokens")

    def __init__(self, tokens: Iterable[str], counts: np.ndarray | None = None):
        """Validate and wrap `tokens`; prefer `from_counts` / `from_tokens`.

        Raises ValueError when the tokens are not a valid vocabulary.
        """
        if isinstance(tokens, str):  # ValueError, like every other bad token list
            raise ValueError("tokens must be a list of tokens, not a single string")  # noqa: TRY004
        tokens = tuple(tokens)
        _validate_tokens(tokens)
        if counts is not None:
            counts = np.asarray(counts, dtype=np.int64)
            if counts.shape != (len(tokens),):
                raise ValueError(f"counts has shape {counts.shape}, expected ({len(tokens)},)")
        self.tokens: tuple[str, ...] = tokens
        self.counts: np.ndarray | None = counts
        # (V-2,) uint32 code points of ids 2.., in id order.
        self._codepoints = text_to_codepoints("".join(tokens[2:]))
        self._lookup: np.ndarray | None = None  # built on first encode

    # -- construction ---------------------------------------------------------

    @classmethod
    def from_counts(cls, codepoints: np.ndarray, counts: np.ndarray, n_records: int, min_count: int = 1) -> Vocab:
        """Build a vocabulary from character counts.

        codepoints: (K,) distinct code points (any integer dtype, cast to uint32).
        counts:     (K,) int64 occurrences of each.
        n_records:  number of records, stored as counts[EOS_ID].
        Characters seen fewer than `min_count` times are left out; they will
        encode to <unk> and their total becomes counts[UNK_ID].

        Raises CorpusError when fewer than two distinct characters remain.
        """
        if int(min_count) < 1:
            raise UsageError(f"--min-count must be at least 1 (got {min_count})")
        codepoints = np.asarray(codepoints).astype(np.uint32, copy=False).ravel()
        counts = np.asarray(counts).astype(np.int64, copy=False).ravel()
        if codepoints.shape != counts.shape:
            raise ValueError(f"codepoints {codepoints.shape} and counts {counts.shape} differ in shape")
        if np.unique(codepoints).size != codepoints.size:
            raise ValueError("codepoints must be distinct")

        keep = counts >= min_count
        order = np.argsort(codepoints[keep], kind="stable")
        kept_cps = codepoints[keep][order]
        kept_counts = counts[keep][order]
        if kept_cps.size < 2:
            raise CorpusError(_too_few_message(codepoints, counts, kept_cps, min_count))

        all_counts = np.empty(kept_cps.size + 2, dtype=np.int64)
        all_counts[UNK_ID] = counts[~keep].sum()
        all_counts[EOS_ID] = n_records
        all_counts[2:] = kept_counts
        return cls(_RESERVED + tuple(codepoints_to_text(kept_cps)), all_counts)

    @classmethod
    def from_tokens(cls, tokens: Iterable[str]) -> Vocab:
        """Rebuild a vocabulary from a checkpoint's token list (counts None).

        Raises ValueError naming the problem: reserved tokens not at ids 0 and
        1, a token that is not one character, or a repeated character.
        """
        return cls(tokens, None)

    # -- properties -----------------------------------------------------------

    @property
    def size(self) -> int:
        """V, the number of tokens including the two reserved ones."""
        return len(self.tokens)

    @property
    def id_dtype(self) -> np.dtype:
        """Smallest unsigned dtype that holds every id (uint8 up to 256 tokens)."""
        top = self.size - 1
        for dtype in (np.uint8, np.uint16):
            if top <= np.iinfo(dtype).max:
                return np.dtype(dtype)
        return np.dtype(np.uint32)

    def __len__(self) -> int:
        return self.size

    def __eq__(self, other: object) -> bool:
        # Two vocabularies are the same when they map ids identically; counts
        # are statistics about a corpus, not part of the mapping.
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def __hash__(self) -> int:
        return hash(self.tokens)

    def __repr__(self) -> str:
        return f"Vocab(size={self.size})"

    # -- encoding / decoding --------------------------------------------------

    def _table(self) -> np.ndarray:
        """Dense code point -> id table; its last entry (past the largest
        code point) is UNK, so clipping sends anything larger to UNK.
        At most 0x110001 entries (4.4 MB in uint32)."""
        if self._lookup is None:
            top = int(self._codepoints.max()) if self._codepoints.size else -1
            table = np.full(top + 2, UNK_ID, dtype=self.id_dtype)
            table[self._codepoints] = np.arange(2, self.size, dtype=self.id_dtype)
            self._lookup = table
        return self._lookup

    def encode(self, codepoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map code points to ids.

        codepoints: (N,) integer array (uint32 preferred; other integer dtypes
        are cast, so invalid values simply encode to UNK).
        Returns (ids, unknown): ids is (N,) `id_dtype`; unknown is (K,) uint32,
        the sorted distinct code points that are not in the vocabulary and
        were mapped to UNK.
        """
        cps = np.asarray(codepoints)
        if cps.dtype.kind not in "iu":
            raise ValueError(f"codepoints must be an integer array, not {cps.dtype}")
        cps = cps.astype(np.uint32, copy=False).ravel()
        ids = np.take(self._table(), cps, mode="clip")
        is_unk = ids == UNK_ID
        unknown = np.unique(cps[is_unk]) if is_unk.any() else np.empty(0, np.uint32)
        return ids, unknown

    def encode_text(self, text: str) -> tuple[np.ndarray, str]:
        """Encode a str (e.g. prime text): ((len(text),) id_dtype ids, the
        unknown characters as a str in code point order)."""
        ids, unknown = self.encode(text_to_codepoints(text))
        return ids, codepoints_to_text(unknown)

    def decode(self, ids, eos: str | None = None) -> str:
        """ids (any shape, integer) -> text. UNK becomes U+FFFD; EOS becomes the
        one character `eos` (e.g. "\n" for a --lines model), or is dropped when
        eos is None: callers that care about record ends split on EOS first.

        Raises ValueError for an id outside [0, V).
        """
        ids = np.asarray(ids).ravel()
        if ids.size == 0:
            return ""
        if ids.dtype.kind not in "iu":
            raise ValueError(f"ids must be integers, not {ids.dtype}")
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= self.size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"token id {bad} is out of range for a vocabulary of {self.size}")
        table = np.empty(self.size, dtype=np.uint32)
        table[UNK_ID] = _REPLACEMENT
        table[EOS_ID] = 0 if eos is None else ord(eos)  # None: a placeholder, removed below
        table[2:] = self._codepoints
        return codepoints_to_text(table[ids if eos is not None else ids[ids != EOS_ID]])

    def display(self, token_id) -> str:
        """A visible form of one token for tables and reports: "<unk>",
        "<eos>", "\\n", "\\t", "\\r", "␠" for space, "\\x07" for other
        control characters, "U+200B" for invisible or combining ones, else
        the character itself."""
        i = int(token_id)
        if not 0 <= i < self.size:
            raise ValueError(f"token id {i} is out of range for a vocabulary of {self.size}")
        if i < 2:
            return self.tokens[i]
        return _display_char(self.tokens[i])


def _too_few_message(codepoints: np.ndarray, counts: np.ndarray, kept: np.ndarray, min_count: int) -> str:
    """One-line reason why a corpus cannot make a vocabulary of two characters."""
    present = codepoints[counts > 0]
    if present.size == 0:
        return "corpus has no characters; a model needs at least two distinct ones"
    if present.size == 1:
        ch = _display_char(chr(int(present[0])))
        return f"corpus has only one distinct character ('{ch}'); a model needs at least two"
    return (
        f"only {kept.size} of {present.size} distinct characters occur at least "
        f"{min_count} times (--min-count); a model needs at least two"
    )
