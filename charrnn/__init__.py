"""charrnn: character-level recurrent language models, from Python or the command line.

    import charrnn
    charrnn.train("corpus.txt", "model.npz", cell="gru", time=60)
    print(charrnn.load("model.best.npz").sample("The ", length=200, seed=1))

`import charrnn` stays cheap: numpy and numba are imported by the first call that needs them, so
`charrnn --help` and this import take milliseconds. See charrnn.api for train, resume and load.
"""

from charrnn.errors import CharrnnError, CharrnnWarning, CheckpointError, CorpusError, UsageError

__version__ = "0.1.0"

# name -> the module that defines it, imported on first use (PEP 562)
_LAZY = {
    "train": "charrnn.api",
    "resume": "charrnn.api",
    "load": "charrnn.api",
    "Model": "charrnn.model",
    "Vocab": "charrnn.vocab",
    "TrainResult": "charrnn.train_loop",
    "EvalResult": "charrnn.evaluate",
    "get_corpus": "charrnn.catalogue",
}

__all__ = ["CharrnnError", "CharrnnWarning", "CheckpointError", "CorpusError", "UsageError", "__version__", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'charrnn' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
