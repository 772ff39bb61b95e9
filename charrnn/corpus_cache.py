"""Encoded corpora cached on disk and memory-mapped, so that training on a large corpus neither
re-encodes it every run nor holds it in memory twice.

An entry is `<key>.npy` (the id array) and `<key>.json` (vocabulary, counts, fingerprint), where
the key hashes each file's path, size, modification time and inode with the encoding settings.
A file that changes gets a new key; the stale entries for the same files are deleted. Entries are
written to temporary names and renamed, so a crash never leaves a half-written entry in use.
stdin and pipes are never cached. Any trouble with the cache folder falls back to memory.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from charrnn.corpus import Corpus, load_corpus, open_sources, source_paths
from charrnn.paths import corpus_folder
from charrnn.vocab import Vocab

CACHE_VERSION = 1


def _identity(sources, settings):
    files = []
    for source in sources:
        st = os.stat(source.path)
        files.append([os.path.realpath(source.path), st.st_size, st.st_mtime_ns, st.st_ino])
    ident = {"version": CACHE_VERSION, "files": files, **settings}
    if "vocab" in settings:  # a given vocabulary: its tokens are part of the key
        ident["vocab"] = list(settings["vocab"].tokens)
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]
    return key, [f[0] for f in files], files


def load_corpus_cached(paths, *, lines=False, encoding_errors="strict", min_count=1, vocab=None, stdin=None, folder=None):
    """Like charrnn.corpus.load_corpus, with ids memory-mapped from the cache.

    With `vocab` None the vocabulary is built from the corpus; given one (a resumed model's), the
    corpus is encoded with it, characters it lacks becoming <unk> (listed in `Corpus.unknown`).
    """
    sources = open_sources(paths, stdin)
    settings = dict(lines=lines, encoding_errors=encoding_errors, min_count=min_count)
    if vocab is not None:
        settings["vocab"] = vocab
    if any(source.path is None for source in sources):
        return load_corpus(sources, **settings)
    folder = Path(folder) if folder is not None else corpus_folder()
    try:
        key, realpaths, files = _identity(sources, settings)
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return load_corpus(sources, **settings)
    cached = _read_entry(folder, key, sources, encoding_errors)
    if cached is not None:
        return cached
    return _build_entry(folder, key, realpaths, files, sources, settings)


def _read_entry(folder, key, sources, encoding_errors):
    try:
        meta = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        ids = np.load(folder / f"{key}.npy", mmap_mode="r", allow_pickle=False)
        counts = meta["counts"]
        vocab = Vocab(meta["tokens"], None if counts is None else np.asarray(counts, np.int64))
        if ids.shape != (meta["n_ids"],) or ids.dtype != vocab.id_dtype:
            return None
        unknown = meta.get("unknown", "")
        if not isinstance(unknown, str):
            return None
        return Corpus(ids, vocab, meta["fingerprint"], meta["n_chars"], unknown, source_paths(sources), encoding_errors)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: rebuild it


def _build_entry(folder, key, realpaths, files, sources, settings):
    tmp = folder / f".{key}.{os.getpid()}.tmp.npy"

    def allocate(n, dtype):
        ids = open_memmap(tmp, mode="w+", dtype=dtype, shape=(n,))
        with open(tmp, "r+b") as f:  # reserve the blocks now: a full disk fails here, not as SIGBUS later
            os.posix_fallocate(f.fileno(), 0, os.path.getsize(tmp))
        return ids

    try:
        corpus = load_corpus(sources, **settings, allocate=allocate)
    except OSError:
        tmp.unlink(missing_ok=True)
        return load_corpus(sources, **settings)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        corpus.ids.flush()
        counts = corpus.vocab.counts
        meta = {
            "sources": realpaths,
            "files": files,
            "tokens": list(corpus.vocab.tokens),
            "counts": None if counts is None else counts.tolist(),
            "n_ids": int(corpus.ids.size),
            "n_chars": corpus.n_chars,
            "fingerprint": corpus.fingerprint,
            "unknown": corpus.unknown,
        }
        _drop_stale(folder, realpaths, files)
        os.replace(tmp, folder / f"{key}.npy")
        meta_tmp = folder / f".{key}.{os.getpid()}.tmp.json"
        meta_tmp.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(meta_tmp, folder / f"{key}.json")
    except OSError:
        tmp.unlink(missing_ok=True)
        return Corpus(np.array(corpus.ids), corpus.vocab, corpus.fingerprint, corpus.n_chars, corpus.unknown,
                      corpus.paths, corpus.encoding_errors)
    return _read_entry(folder, key, sources, settings["encoding_errors"]) or corpus


def _drop_stale(folder, realpaths, files):
    """Delete entries made from the same files before they changed (entries of the same unchanged
    files with other settings, or another vocabulary, stay)."""
    for meta_path in folder.glob("*.json"):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("sources") == realpaths and meta.get("files") != files:
                meta_path.with_suffix(".npy").unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
        except (OSError, ValueError, AttributeError):
            continue
