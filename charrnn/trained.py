"""A trained model loaded from a checkpoint, ready for sampling, evaluation and inspection."""

from dataclasses import dataclass

from charrnn.checkpoint import load_checkpoint
from charrnn.params import FlatParams
from charrnn.vocab import Vocab


@dataclass
class Model:
    params: FlatParams
    vocab: Vocab
    meta: dict

    @property
    def lines(self):
        """Trained with --lines: every line is a record."""
        return bool(self.meta.get("lines", False))


def load_model(path):
    """Model from a checkpoint (validated; CheckpointError on any problem)."""
    ckpt = load_checkpoint(path)
    params = FlatParams(ckpt.arch).load(ckpt.params)
    return Model(params=params, vocab=Vocab.from_tokens(ckpt.vocab), meta=ckpt.meta)


def describe(model, path):
    """What `charrnn info` shows, as a JSON-ready dict."""
    meta = model.meta
    return {
        "path": str(path),
        "format": meta.get("version"),
        "cell": model.params.arch.cell,
        "layers": model.params.layers,
        "hidden": model.params.hidden,
        "dropout": meta["model"].get("dropout", 0.0),
        "vocab_size": model.vocab.size,
        "parameters": int(model.params.flat.size),
        "lines": model.lines,
        "steps": meta.get("step"),
        "device": meta.get("device"),  # where it was last trained (None: before --device existed)
        "best_val_loss": meta.get("best_val_loss"),
        "last_val_loss": meta.get("last_val_loss"),
        "corpus": meta.get("corpus", {}),
        "train": meta.get("train", {}),
        "vocab": [model.vocab.display(i) for i in range(model.vocab.size)],
        "charrnn_version": meta.get("charrnn_version"),
    }
