"""The on-disk, memory-mapped cache of encoded corpora."""

import io
import os

import numpy as np

from charrnn.corpus import load_corpus
from charrnn.corpus_cache import load_corpus_cached


def entries(folder):
    return sorted(p.suffix for p in folder.iterdir())


def test_cache_is_built_then_reused(tmp_path):
    corpus_path = tmp_path / "c.txt"
    corpus_path.write_text("hello there, general reader\n" * 50)
    folder = tmp_path / "cache"
    first = load_corpus_cached([str(corpus_path)], folder=folder)
    assert entries(folder) == [".json", ".npy"]
    second = load_corpus_cached([str(corpus_path)], folder=folder)
    assert isinstance(second.ids, np.memmap) and not second.ids.flags.writeable
    plain = load_corpus([str(corpus_path)])
    for got in (first, second):
        np.testing.assert_array_equal(got.ids, plain.ids)
        assert got.vocab == plain.vocab and got.fingerprint == plain.fingerprint and got.n_chars == plain.n_chars
    np.testing.assert_array_equal(second.vocab.counts, plain.vocab.counts)


def test_changed_file_rebuilds_and_drops_the_stale_entry(tmp_path):
    corpus_path = tmp_path / "c.txt"
    corpus_path.write_text("abcabc\n")
    folder = tmp_path / "cache"
    old = load_corpus_cached([str(corpus_path)], folder=folder)
    corpus_path.write_text("xyzzy and more\n")
    os.utime(corpus_path, ns=(1, 10**18))  # a different modification time, whatever the clock's resolution
    new = load_corpus_cached([str(corpus_path)], folder=folder)
    assert new.fingerprint != old.fingerprint
    assert new.vocab == load_corpus([str(corpus_path)]).vocab
    assert entries(folder) == [".json", ".npy"]


def test_settings_are_part_of_the_key(tmp_path):
    corpus_path = tmp_path / "c.txt"
    corpus_path.write_text("one\ntwo\nthree\n")
    folder = tmp_path / "cache"
    by_file = load_corpus_cached([str(corpus_path)], folder=folder)
    by_line = load_corpus_cached([str(corpus_path)], folder=folder, lines=True)
    assert by_file.ids.size != by_line.ids.size


def test_damaged_entry_is_rebuilt(tmp_path):
    corpus_path = tmp_path / "c.txt"
    corpus_path.write_text("some text to encode\n")
    folder = tmp_path / "cache"
    load_corpus_cached([str(corpus_path)], folder=folder)
    for npy in folder.glob("*.npy"):
        npy.write_bytes(b"junk")
    again = load_corpus_cached([str(corpus_path)], folder=folder)
    np.testing.assert_array_equal(again.ids, load_corpus([str(corpus_path)]).ids)


def test_stdin_and_unusable_folders_fall_back_to_memory(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    corpus_path = tmp_path / "c.txt"
    corpus_path.write_text("plenty of characters\n")
    in_memory = load_corpus_cached([str(corpus_path)], folder=blocker / "cache")
    assert not isinstance(in_memory.ids, np.memmap)
    piped = load_corpus_cached(["-"], stdin=io.BytesIO(b"from a pipe\n"), folder=tmp_path / "cache")
    assert piped.n_chars == 12 and not (tmp_path / "cache").exists()


def test_given_vocabulary_is_cached_beside_the_built_one(tmp_path):
    """A resumed model encodes its corpus with its own vocabulary; that entry and the plain one coexist,
    and the characters the vocabulary lacks are remembered."""
    from charrnn.vocab import Vocab

    corpus_path = tmp_path / "c.txt"
    corpus_path.write_text("hello there, general reader\n" * 20)
    folder = tmp_path / "cache"
    plain = load_corpus_cached([str(corpus_path)], folder=folder)
    vocab = Vocab.from_tokens(["<unk>", "<eos>", " ", "e", "h", "l", "o"])
    first = load_corpus_cached([str(corpus_path)], folder=folder, vocab=vocab)
    again = load_corpus_cached([str(corpus_path)], folder=folder, vocab=vocab)
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".json", ".npy", ".npy"]
    direct = load_corpus([str(corpus_path)], vocab=vocab)
    for got in (first, again):
        np.testing.assert_array_equal(got.ids, direct.ids)
        assert got.vocab == vocab and got.unknown == direct.unknown == "\n,adgnrt"
        assert got.fingerprint == plain.fingerprint and got.paths == (os.path.abspath(corpus_path),)
    assert isinstance(again.ids, np.memmap)
