"""Tests for charrnn.vocab: building, encoding, decoding and display."""

import numpy as np
import pytest

from charrnn.errors import CorpusError, UsageError
from charrnn.vocab import (
    EOS_ID,
    EOS_TOKEN,
    UNK_ID,
    UNK_TOKEN,
    Vocab,
    codepoints_to_text,
    text_to_codepoints,
)

MIXED = "Plain ASCII, accents: éàüñ, CJK: 漢字かな, emoji: 😀🦀 (beyond the BMP)\n\ttab"


def vocab_of(text: str, n_records: int = 1, min_count: int = 1) -> Vocab:
    cps, counts = np.unique(text_to_codepoints(text), return_counts=True)
    return Vocab.from_counts(cps, counts, n_records, min_count)


def test_text_to_codepoints_roundtrip():
    cps = text_to_codepoints(MIXED)
    assert cps.dtype == np.uint32
    assert cps.shape == (len(MIXED),)
    assert cps.tolist() == [ord(c) for c in MIXED]
    assert codepoints_to_text(cps) == MIXED


def test_reserved_ids_and_sorted_order():
    v = vocab_of("cabbage")
    assert (UNK_ID, EOS_ID) == (0, 1)
    assert v.tokens == (UNK_TOKEN, EOS_TOKEN, "a", "b", "c", "e", "g")
    assert v.size == len(v) == 7
    assert v.counts.dtype == np.int64
    assert v.counts.tolist() == [0, 1, 2, 2, 1, 1, 1]


def test_tokens_sorted_by_code_point_not_by_input_order():
    cps = np.array([0x1F600, 0x61, 0x4E00, 0xE9], dtype=np.uint32)
    v = Vocab.from_counts(cps, np.array([1, 2, 3, 4]), n_records=2)
    assert v.tokens[2:] == ("a", "é", "一", "😀")
    assert v.counts.tolist() == [0, 2, 2, 4, 3, 1]


def test_roundtrip_mixed_scripts():
    v = vocab_of(MIXED)
    ids, unknown = v.encode(text_to_codepoints(MIXED))
    assert ids.dtype == v.id_dtype == np.uint8
    assert unknown.size == 0 and unknown.dtype == np.uint32
    assert v.decode(ids) == MIXED
    ids2, unknown_text = v.encode_text(MIXED)
    assert np.array_equal(ids, ids2) and unknown_text == ""


def test_min_count_folds_rare_characters_into_unk():
    v = vocab_of("aaabbc", n_records=3, min_count=2)
    assert v.tokens == (UNK_TOKEN, EOS_TOKEN, "a", "b")
    assert v.counts.tolist() == [1, 3, 3, 2]  # "c" folded into <unk>
    ids, unknown = v.encode(text_to_codepoints("abc"))
    assert ids.tolist() == [2, 3, UNK_ID]
    assert unknown.tolist() == [ord("c")]


def test_unknown_characters_reported_sorted_and_distinct():
    v = vocab_of("abc")
    ids, unknown = v.encode(text_to_codepoints("zaz😀bx"))
    assert ids.tolist() == [UNK_ID, 2, UNK_ID, UNK_ID, 3, UNK_ID]
    assert unknown.tolist() == [ord("x"), ord("z"), 0x1F600]
    _, text = v.encode_text("zaz😀bx")
    assert text == "xz😀"


def test_encode_accepts_other_integer_dtypes_and_empty():
    v = vocab_of("ab")
    ids, _ = v.encode(np.array([97, 98], dtype=np.int64))
    assert ids.tolist() == [2, 3]
    ids, unknown = v.encode(np.empty(0, np.uint32))
    assert ids.shape == (0,) and unknown.shape == (0,)
    with pytest.raises(ValueError):
        v.encode(np.array([97.0]))


def test_decode_unk_and_eos():
    v = vocab_of("ab")
    assert v.decode([2, UNK_ID, 3, EOS_ID, 2]) == "a\ufffdba"
    assert v.decode(np.array([], dtype=np.uint8)) == ""
    with pytest.raises(ValueError, match="out of range"):
        v.decode([4])
    with pytest.raises(ValueError, match="out of range"):
        v.decode([-1])


def test_id_dtype_thresholds():
    # 254 characters + 2 reserved = 256 tokens: ids 0..255 fit uint8.
    assert vocab_of("".join(chr(0x100 + i) for i in range(254))).id_dtype == np.uint8
    assert vocab_of("".join(chr(0x100 + i) for i in range(255))).id_dtype == np.uint16
    big = "".join(chr(0x100 + i) for i in range(300))
    v = vocab_of(big)
    assert v.size == 302 and v.id_dtype == np.uint16
    ids, _ = v.encode(text_to_codepoints(big))
    assert ids.dtype == np.uint16 and ids.max() == 301
    assert v.decode(ids) == big
    huge = Vocab.from_tokens([UNK_TOKEN, EOS_TOKEN] + [chr(0x10000 + i) for i in range(65535)])
    assert huge.size == 65537 and huge.id_dtype == np.uint32


def test_one_distinct_character_is_an_error():
    with pytest.raises(CorpusError) as err:
        vocab_of("aaaa")
    assert str(err.value) == "corpus has only one distinct character ('a'); a model needs at least two"


def test_one_distinct_invisible_character_is_shown_visibly():
    with pytest.raises(CorpusError) as err:
        vocab_of("\n\n")
    assert str(err.value) == "corpus has only one distinct character ('\\n'); a model needs at least two"


def test_min_count_leaving_too_few_is_an_error():
    with pytest.raises(CorpusError) as err:
        vocab_of("aaab", min_count=2)
    assert str(err.value) == (
        "only 1 of 2 distinct characters occur at least 2 times (--min-count); a model needs at least two"
    )
    with pytest.raises(CorpusError) as err:
        Vocab.from_counts(np.empty(0, np.uint32), np.empty(0, np.int64), 0)
    assert str(err.value) == "corpus has no characters; a model needs at least two distinct ones"


def test_min_count_below_one_is_a_usage_error():
    with pytest.raises(UsageError) as err:
        vocab_of("ab", min_count=0)
    assert str(err.value) == "--min-count must be at least 1 (got 0)"


def test_from_tokens_roundtrip_keeps_order_and_has_no_counts():
    built = vocab_of(MIXED)
    loaded = Vocab.from_tokens(list(built.tokens))
    assert loaded == built and loaded.counts is None
    # Order is not required to be sorted; encoding follows the given order.
    v = Vocab.from_tokens([UNK_TOKEN, EOS_TOKEN, "z", "a"])
    assert v.encode_text("az")[0].tolist() == [3, 2]
    assert v.decode([2, 3]) == "za"


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ([UNK_TOKEN], "vocabulary has 1 tokens; it needs at least <unk> and <eos>"),
        (["a", EOS_TOKEN, "b"], "token 0 is 'a', expected '<unk>'"),
        ([UNK_TOKEN, "b", EOS_TOKEN], "token 1 is 'b', expected '<eos>'"),
        ([UNK_TOKEN, EOS_TOKEN, "ab"], "token 2 is 'ab', expected a single character"),
        ([UNK_TOKEN, EOS_TOKEN, ""], "token 2 is '', expected a single character"),
        ([UNK_TOKEN, EOS_TOKEN, 7], "token 2 is 7, expected a single character"),
        ([UNK_TOKEN, EOS_TOKEN, "a", UNK_TOKEN], "token 3 is '<unk>', expected a single character"),
        ([UNK_TOKEN, EOS_TOKEN, "a", "b", "a"], "token 4 ('a') repeats token 2"),
        ([UNK_TOKEN, EOS_TOKEN, "\ud800"], "token 2 is a lone surrogate (U+D800), not a character"),
    ],
)
def test_from_tokens_rejects_bad_lists(tokens, message):
    with pytest.raises(ValueError) as err:
        Vocab.from_tokens(tokens)
    assert str(err.value) == message


def test_from_tokens_rejects_a_plain_string():
    with pytest.raises(ValueError):
        Vocab.from_tokens("<unk><eos>ab")


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("a", "a"),
        ("é", "é"),
        ("😀", "😀"),
        ("\n", "\\n"),
        ("\t", "\\t"),
        ("\r", "\\r"),
        (" ", "\u2420"),
        ("\x07", "\\x07"),
        ("\x7f", "\\x7f"),
        ("\x85", "\\x85"),
        ("\u200b", "U+200B"),
        ("\u00a0", "U+00A0"),
        ("\ufeff", "U+FEFF"),
        ("\u0301", "U+0301"),
        ("\U000e0001", "U+E0001"),
    ],
)
def test_display_forms(char, shown):
    v = Vocab.from_tokens([UNK_TOKEN, EOS_TOKEN, char])
    assert v.display(2) == shown
    assert v.display(np.uint8(2)) == shown


def test_display_reserved_and_out_of_range():
    v = vocab_of("ab")
    assert v.display(UNK_ID) == "<unk>"
    assert v.display(EOS_ID) == "<eos>"
    with pytest.raises(ValueError):
        v.display(4)
