"""Tests for charrnn.corpus: sources, decoding, records and encoding."""

import io
import os
import threading

import numpy as np
import pytest

from charrnn import corpus as corpus_mod
from charrnn.corpus import Source, iter_codepoints, load_corpus, open_sources
from charrnn.errors import CorpusError, UsageError
from charrnn.vocab import EOS_ID, EOS_TOKEN, UNK_ID, UNK_TOKEN, Vocab

MIXED = "Plain ASCII, accents: éàüñ, CJK: 漢字かな, emoji: 😀🦀\nsecond line\r\n\nlast"
UTF8_HINT = "(pass --encoding-errors replace or ignore to accept it)"


def write(tmp_path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def records(c) -> list[str]:
    """Split a corpus back into its records' text; checks every record ends in EOS."""
    ids = c.ids
    assert ids.size and ids[-1] == EOS_ID
    ends = np.flatnonzero(ids == EOS_ID)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [c.vocab.decode(ids[s:e]) for s, e in zip(starts, ends)]


def from_bytes(data: bytes, **kw):
    return load_corpus(["-"], stdin=io.BytesIO(data), **kw)


# -- file mode ----------------------------------------------------------------


def test_file_mode_one_record_per_source(tmp_path):
    a = write(tmp_path, "a.txt", "hello\nworld\n")
    b = write(tmp_path, "b.txt", "bye")
    c = load_corpus([a, b])
    assert records(c) == ["hello\nworld\n", "bye"]
    assert c.vocab.tokens == (UNK_TOKEN, EOS_TOKEN, "\n", "b", "d", "e", "h", "l", "o", "r", "w", "y")
    assert c.ids.dtype == np.uint8
    assert c.n_chars == 15
    assert c.unknown == ""
    assert c.vocab.counts[EOS_ID] == 2
    assert c.vocab.counts[UNK_ID] == 0


def test_file_mode_skips_empty_sources(tmp_path):
    a = write(tmp_path, "a.txt", "ab")
    empty = write(tmp_path, "empty.txt", "")
    c = load_corpus([empty, a, empty])
    assert records(c) == ["ab"]
    assert c.ids.tolist() == [2, 3, EOS_ID]


def test_mixed_text_roundtrips(tmp_path):
    c = load_corpus([write(tmp_path, "m.txt", MIXED)])
    assert records(c) == [MIXED]
    assert c.n_chars == len(MIXED)
    assert list(c.vocab.tokens[2:]) == sorted(set(MIXED))


def test_300_distinct_characters_give_uint16_ids(tmp_path):
    text = "".join(chr(0x100 + i) for i in range(300))
    c = load_corpus([write(tmp_path, "wide.txt", text * 2)])
    assert c.vocab.size == 302
    assert c.ids.dtype == np.uint16
    assert records(c) == [text * 2]


def test_min_count_folds_into_unk(tmp_path):
    c = load_corpus([write(tmp_path, "a.txt", "aaabbc")], min_count=2)
    assert c.vocab.tokens == (UNK_TOKEN, EOS_TOKEN, "a", "b")
    assert c.ids.tolist() == [2, 2, 2, 3, 3, UNK_ID, EOS_ID]
    assert c.vocab.counts.tolist() == [1, 1, 3, 2]
    assert c.unknown == ""


# -- lines mode ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"one\ntwo\n", ["one", "two"]),
        (b"one\ntwo", ["one", "two"]),  # no final newline: still an EOS
        (b"one\r\ntwo\r\n", ["one", "two"]),  # CRLF
        (b"\n\none\n\n\n\ntwo\n\n", ["one", "two"]),  # blank lines dropped
        (b"one\r\n\r\n\r\ntwo", ["one", "two"]),  # blank CRLF lines too
        (b"a\rb\n  \nc\r", ["a\rb", "  ", "c\r"]),  # lone CRs stay; spaces are a record
    ],
)
def test_lines_mode_records(data, expected):
    for chunk_bytes in (1, 2, 3, 5, 1 << 20):
        c = from_bytes(data, lines=True, chunk_bytes=chunk_bytes)
        assert records(c) == expected, chunk_bytes
        assert c.n_chars == len(data.decode())
        # Record ends never repeat.
        assert not np.any((c.ids[1:] == EOS_ID) & (c.ids[:-1] == EOS_ID))


def test_lines_mode_keeps_newline_out_of_vocab(tmp_path):
    c = load_corpus([write(tmp_path, "a.txt", "ab\r\nba\n")], lines=True)
    assert c.vocab.tokens == (UNK_TOKEN, EOS_TOKEN, "a", "b")
    assert c.vocab.counts[EOS_ID] == 2


def test_lines_mode_across_sources(tmp_path):
    a = write(tmp_path, "a.txt", "x1\nx2")
    b = write(tmp_path, "b.txt", "\ny1\n")
    assert records(load_corpus([a, b], lines=True)) == ["x1", "x2", "y1"]


# -- stdin and pipes ----------------------------------------------------------


def test_stdin_bytesio():
    c = from_bytes("héllo".encode())
    assert records(c) == ["héllo"]
    assert open_sources(["-"], stdin=io.BytesIO(b"x")) == [Source("<stdin>", None, b"x")]


def test_stdin_with_files(tmp_path):
    a = write(tmp_path, "a.txt", "file")
    c = load_corpus([a, "-"], stdin=io.BytesIO(b"piped"))
    assert records(c) == ["file", "piped"]


def test_stdin_closed():
    closed = io.BytesIO(b"x")
    closed.close()
    for stdin in (closed,):
        with pytest.raises(CorpusError) as err:
            open_sources(["-"], stdin=stdin)
        assert str(err.value) == "stdin is closed"


def test_stdin_missing(monkeypatch):
    monkeypatch.setattr(corpus_mod.sys, "stdin", None)
    with pytest.raises(CorpusError) as err:
        open_sources(["-"])
    assert str(err.value) == "stdin is closed"


def test_stdin_twice_is_a_usage_error():
    with pytest.raises(UsageError) as err:
        open_sources(["-", "-"], stdin=io.BytesIO(b"x"))
    assert str(err.value) == "stdin (-) can be read only once; give - at most once"


def _feed(path_or_fd, data: bytes) -> threading.Thread:
    def run():
        with open(path_or_fd, "wb") as f:
            f.write(data)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_pipe_via_dev_fd():
    r, w = os.pipe()
    try:
        writer = _feed(w, "from a pipe ✓\n".encode())
        path = f"/dev/fd/{r}"
        sources = open_sources([path])
        writer.join(5)
        assert sources[0].path is None and sources[0].data == "from a pipe ✓\n".encode()
        # Read once up front, so both passes of load_corpus work.
        assert records(load_corpus(sources)) == ["from a pipe ✓\n"]
    finally:
        os.close(r)


def test_fifo(tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    writer = _feed(fifo, b"line one\nline two\n")
    c = load_corpus([fifo], lines=True)
    writer.join(5)
    assert records(c) == ["line one", "line two"]


# -- chunking -----------------------------------------------------------------


@pytest.mark.parametrize("lines", [False, True])
def test_tiny_chunks_match_one_big_chunk(tmp_path, lines):
    data = ("\ufeff" + MIXED * 3).encode()
    path = write(tmp_path, "m.txt", data)
    whole = load_corpus([path], lines=lines, chunk_bytes=1 << 20)
    for chunk_bytes in (1, 2, 3, 4, 7):
        part = load_corpus([path], lines=lines, chunk_bytes=chunk_bytes)
        assert part.vocab == whole.vocab
        assert np.array_equal(part.ids, whole.ids)
        assert np.array_equal(part.vocab.counts, whole.vocab.counts)
        assert (part.fingerprint, part.n_chars) == (whole.fingerprint, whole.n_chars)


def test_iter_codepoints_chunks_join_to_the_text(tmp_path):
    path = write(tmp_path, "m.txt", MIXED)
    for chunk_bytes in (1, 7, 1 << 24):
        chunks = list(iter_codepoints(Source(path, path, None), chunk_bytes=chunk_bytes))
        assert all(c.dtype == np.uint32 and c.size for c in chunks)
        assert "".join(chr(x) for c in chunks for x in c) == MIXED


def test_many_chunks_on_a_larger_corpus(tmp_path):
    rng = np.random.default_rng(0)
    alphabet = list("abcdefghij klmnop\n\r") + ["é", "漢", "😀"]
    text = "".join(rng.choice(alphabet, size=150_000))  # about 200 KB of UTF-8
    path = write(tmp_path, "big.txt", text)
    for lines in (False, True):
        small = load_corpus([path], lines=lines, chunk_bytes=4093)
        big = load_corpus([path], lines=lines, chunk_bytes=1 << 24)
        assert small.vocab == big.vocab
        assert np.array_equal(small.ids, big.ids)
    assert records(big)[0] == text.replace("\r\n", "\n").split("\n")[0]


# -- BOM and encoding errors --------------------------------------------------


def test_bom_dropped_only_at_start():
    c = from_bytes(b"\xef\xbb\xbfab\xef\xbb\xbfa", chunk_bytes=1)
    assert records(c) == ["ab\ufeffa"]
    assert c.n_chars == 4


def test_bom_only_file_is_empty(tmp_path):
    path = write(tmp_path, "bom.txt", b"\xef\xbb\xbf")
    with pytest.raises(CorpusError) as err:
        load_corpus([path])
    assert str(err.value) == f"{path}: corpus is empty"


@pytest.mark.parametrize(
    ("data", "chunk_bytes", "offset"),
    [
        (b"ab\xffcd", 1 << 20, 2),
        (b"abcdefghij\xffcd", 4, 10),  # in a later chunk
        (b"abcde\xe6\xbc\x41xyz", 6, 5),  # a broken 3-byte char split across chunks
        (b"abcde\xe6\xbc\x41xyz", 7, 5),
        ("héllo".encode() + b"\xc3", 2, 6),  # truncated at the end of the file
        (b"\xef\xbb\xbfab\x80", 1, 5),  # offsets count the BOM
    ],
)
def test_invalid_utf8_offset_is_exact(tmp_path, data, chunk_bytes, offset):
    path = write(tmp_path, "bad.txt", data)
    with pytest.raises(CorpusError) as err:
        load_corpus([path], chunk_bytes=chunk_bytes)
    assert str(err.value) == f"{path}: invalid UTF-8 at byte offset {offset} {UTF8_HINT}"


def test_invalid_utf8_on_stdin_names_stdin():
    with pytest.raises(CorpusError) as err:
        from_bytes(b"ok\xfe")
    assert str(err.value) == f"<stdin>: invalid UTF-8 at byte offset 2 {UTF8_HINT}"


def test_replace_and_ignore(tmp_path):
    path = write(tmp_path, "bad.txt", b"ab\xffba\xc3")
    replaced = load_corpus([path], encoding_errors="replace")
    assert records(replaced) == ["ab\ufffdba\ufffd"]
    assert "\ufffd" in replaced.vocab.tokens
    ignored = load_corpus([path], encoding_errors="ignore")
    assert records(ignored) == ["abba"]


def test_bad_encoding_errors_value():
    with pytest.raises(UsageError) as err:
        from_bytes(b"ab", encoding_errors="surrogateescape")
    assert str(err.value) == "--encoding-errors must be one of strict, replace, ignore (got 'surrogateescape')"


@pytest.mark.parametrize(("chunk_bytes", "errors"), [(1 << 20, "strict"), (3, "strict"), (3, "replace")])
def test_nul_byte(tmp_path, chunk_bytes, errors):
    path = write(tmp_path, "bin.txt", b"abcdefg\x00hij")
    with pytest.raises(CorpusError) as err:
        load_corpus([path], chunk_bytes=chunk_bytes, encoding_errors=errors)
    assert str(err.value) == f"{path}: NUL byte at offset 7; this looks like binary data, not text"


def test_earlier_invalid_byte_wins_over_nul(tmp_path):
    path = write(tmp_path, "bin.txt", b"ab\xffcd\x00")
    with pytest.raises(CorpusError) as err:
        load_corpus([path])
    assert str(err.value) == f"{path}: invalid UTF-8 at byte offset 2 {UTF8_HINT}"


# -- other errors -------------------------------------------------------------


def test_no_paths():
    with pytest.raises(UsageError) as err:
        open_sources([])
    assert str(err.value) == "no corpus given: name at least one file, or - for stdin"


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.txt")
    with pytest.raises(CorpusError) as err:
        load_corpus([path])
    assert str(err.value) == f"{path}: no such file"


def test_directory(tmp_path):
    with pytest.raises(CorpusError) as err:
        open_sources([str(tmp_path)])
    assert str(err.value) == f"{tmp_path}: is a directory, not a text file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_real(tmp_path):
    path = write(tmp_path, "secret.txt", "ab")
    os.chmod(path, 0)
    with pytest.raises(CorpusError) as err:
        open_sources([path])
    assert str(err.value) == f"{path}: permission denied"


def test_permission_denied(tmp_path, monkeypatch):
    path = write(tmp_path, "secret.txt", "ab")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(corpus_mod, "open", refuse, raising=False)
    with pytest.raises(CorpusError) as err:
        open_sources([path])
    assert str(err.value) == f"{path}: permission denied"


def test_empty_corpus(tmp_path):
    empty = write(tmp_path, "empty.txt", "")
    with pytest.raises(CorpusError) as err:
        load_corpus([empty])
    assert str(err.value) == f"{empty}: corpus is empty"
    with pytest.raises(CorpusError) as err:
        load_corpus([empty, "-"], stdin=io.BytesIO(b""))
    assert str(err.value) == "corpus is empty"


@pytest.mark.parametrize(("data", "lines"), [(b" \t\n \r\n", False), (b"\n\n\n", True), (b"  \n", True)])
def test_whitespace_only(data, lines):
    with pytest.raises(CorpusError) as err:
        from_bytes(data, lines=lines)
    assert str(err.value) == "<stdin>: corpus holds only whitespace"


def test_one_distinct_character(tmp_path):
    path = write(tmp_path, "a.txt", "aaaa")
    with pytest.raises(CorpusError) as err:
        load_corpus([path])
    assert str(err.value) == f"{path}: corpus has only one distinct character ('a'); a model needs at least two"
    # With --lines the newline is not a character, so this is one character too.
    with pytest.raises(CorpusError):
        from_bytes(b"a\na\n", lines=True)


def test_bad_min_count():
    with pytest.raises(UsageError) as err:
        from_bytes(b"ab", min_count=0)
    assert str(err.value) == "--min-count must be at least 1 (got 0)"


# -- encoding with a given vocabulary ------------------------------------------


def test_given_vocab_reports_unknown_characters(tmp_path):
    vocab = Vocab.from_tokens([UNK_TOKEN, EOS_TOKEN, "\n", "a", "b"])
    c = load_corpus([write(tmp_path, "e.txt", "abzay😀\n")], vocab=vocab, min_count=50)
    assert c.vocab is vocab
    assert c.ids.tolist() == [3, 4, UNK_ID, 3, UNK_ID, UNK_ID, 2, EOS_ID]
    assert c.unknown == "yz😀"


def test_given_vocab_in_lines_mode_never_calls_newline_unknown(tmp_path):
    vocab = Vocab.from_tokens([UNK_TOKEN, EOS_TOKEN, "a", "b"])
    c = load_corpus([write(tmp_path, "e.txt", "ab\r\nba\n")], vocab=vocab, lines=True)
    assert c.unknown == ""
    assert c.ids.tolist() == [2, 3, EOS_ID, 3, 2, EOS_ID]


def test_given_vocab_matches_built_vocab(tmp_path):
    path = write(tmp_path, "m.txt", MIXED)
    built = load_corpus([path])
    again = load_corpus([path], vocab=Vocab.from_tokens(built.vocab.tokens))
    assert np.array_equal(built.ids, again.ids) and again.unknown == ""


# -- fingerprint --------------------------------------------------------------


def test_fingerprint(tmp_path):
    a = write(tmp_path, "a.txt", "hello\nworld\n")
    same = write(tmp_path, "same.txt", "hello\nworld\n")
    other = write(tmp_path, "other.txt", "hello\nworld!\n")
    fp = load_corpus([a]).fingerprint
    assert fp.startswith("sha256:") and len(fp) == len("sha256:") + 64
    assert load_corpus([a]).fingerprint == fp
    assert load_corpus([same]).fingerprint == fp  # content, not path
    assert from_bytes(b"hello\nworld\n").fingerprint == fp
    assert load_corpus([other]).fingerprint != fp
    assert load_corpus([a], lines=True).fingerprint != fp
    assert load_corpus([a, a]).fingerprint != fp
    # Where one source ends matters, since it moves an EOS.
    x = write(tmp_path, "x.txt", "hello\n")
    y = write(tmp_path, "y.txt", "world\n")
    xy = write(tmp_path, "xy.txt", "hello\nw")
    z = write(tmp_path, "z.txt", "orld\n")
    assert load_corpus([x, y]).fingerprint != load_corpus([xy, z]).fingerprint
