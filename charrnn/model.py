"""A trained model loaded from a checkpoint, ready for sampling, evaluation and inspection:
what `charrnn.load` returns and what `charrnn sample`, `eval` and `info` use."""

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from charrnn.checkpoint import load_checkpoint
from charrnn.errors import UsageError, unknown_warning
from charrnn.params import FlatParams
from charrnn.vocab import Vocab


@dataclass
class Model:
    params: FlatParams
    vocab: Vocab
    meta: dict
    path: str | None = None  # the checkpoint it was loaded from

    @property
    def lines(self):
        """Trained with --lines: every line is a record."""
        return bool(self.meta.get("lines", False))

    @property
    def settings(self):
        """The settings it was trained with, by their Python names (a dict; `time_limit` is --time).
        A rate recorded as null (older checkpoints: "the optimizer's default") is that default of then."""
        from charrnn.config import recorded_lr

        train = dict(self.meta.get("train", {}))
        if "lr" in train:
            train["lr"] = recorded_lr(train)
        return train

    def info(self):
        """What `charrnn info` shows, as a JSON-ready dict."""
        return describe(self, self.path)

    def stream(self, prime="", length=500, temperature=1.0, top_k=0, top_p=1.0, seed=None, stop=(), *,
               until_eos=None, prime_echo=True, device="cpu") -> Iterator[str]:  # fmt: skip
        """Yield one sample in pieces as it is generated: the prime first (unless prime_echo is
        False), then the new text. Its settings are checked at the call, before any text is made. seed: an int (the same text as `charrnn sample --seed`), a
        numpy Generator, or None (fresh entropy). stop: strings that end the sample right after them.
        until_eos None: records for a model trained with --lines, else exactly `length` characters."""
        import numpy as np

        from charrnn.device import resolve_device
        from charrnn.sample import Draw, StopScan, check_samplable, check_sampling_args, encode_prime, generate, sample_rngs

        Draw(temperature, top_k, top_p)  # the settings' checks, before anything runs
        check_sampling_args(length, 1)
        check_samplable(self, self.path)
        device = resolve_device(device)
        if isinstance(stop, str):
            stop = (stop,)
        stops = StopScan(tuple(stop)).stops
        rng = seed if isinstance(seed, np.random.Generator) else next(sample_rngs(seed))
        if not isinstance(prime, str):
            raise UsageError(f"prime must be a str (got {type(prime).__name__})")
        ids, unknown = encode_prime(self.vocab, prime, self.lines)
        if unknown:
            warnings.warn(unknown_warning(unknown), stacklevel=2)
        chunks = generate(self, ids, length, temperature, top_k, rng, device, top_p=top_p, until_eos=until_eos, stop=stops)
        return _after(prime if prime_echo else "", chunks)

    def sample(self, prime="", length=500, temperature=1.0, top_k=0, top_p=1.0, seed=None, stop=(), **more) -> str:
        """One sample as a str: the prime, then up to `length` new characters (see `stream`)."""
        return "".join(self.stream(prime, length, temperature, top_k, top_p, seed, stop, **more))

    def evaluate(self, text_or_paths, *, encoding_errors="strict", device="cpu"):
        """Loss of the model on a text (a str) or on files (a pathlib.Path, or a list of paths):
        charrnn.evaluate.EvalResult with loss (nats/char), bpc, perplexity and chars."""
        from charrnn.corpus import Source
        from charrnn.evaluate import evaluate_files

        if isinstance(text_or_paths, str):
            sources = [Source("<text>", None, text_or_paths.encode("utf-8", "surrogatepass"))]
        elif isinstance(text_or_paths, Path):
            sources = [str(text_or_paths)]
        else:
            sources = [str(p) for p in text_or_paths]
        result, unknown = evaluate_files(self, sources, encoding_errors, device=device)
        if unknown:
            warnings.warn(unknown_warning(unknown), stacklevel=2)
        return result


def _after(first, chunks):
    if first:
        yield first
    yield from chunks


LATEST = Path("charrnn.npz")  # what `charrnn train` writes without --out


def best_path(out):
    """`model.npz` -> `model.best.npz`: where training keeps the best-validated state."""
    out = Path(out)
    stem = out.name[: -len(".npz")] if out.name.endswith(".npz") else out.name
    return str(out.with_name(stem + ".best.npz"))


def default_model_path(latest=LATEST):
    """The checkpoint `charrnn sample` and `eval` use without --model: the best-validated state of
    the last run (<stem>.best.npz), which a long run's latest state may have overfit past, when it
    belongs to the same run as `latest` (the same corpus, model and seed, at a step not after its);
    else `latest`. A best file left by an earlier, other run is passed over."""
    latest = Path(latest)
    best = Path(best_path(latest))
    mine = _peek_meta(best)
    if mine is None:
        return latest
    if not latest.exists():
        return best
    return best if _same_run(mine, _peek_meta(latest)) else latest


def _same_run(best, latest):
    """Whether a best file's meta is an earlier state of the run whose latest state is `latest`."""
    if latest is None or not all(isinstance(m.get("step"), int) for m in (best, latest)):
        return False
    key = lambda m: (m.get("model"), m.get("lines"), (m.get("corpus") or {}).get("fingerprint"),  # noqa: E731
                     (m.get("train") or {}).get("seed"))  # fmt: skip
    return key(best) == key(latest) and best["step"] <= latest["step"]


def _peek_meta(path):
    """A checkpoint's meta dict, reading only that member (None when it cannot be read: the full,
    validated load then says why)."""
    import json

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
    except Exception:  # noqa: BLE001 - any unreadable file is simply not a candidate
        return None
    return meta if isinstance(meta, dict) else None


def load_model(path):
    """Model from a checkpoint (validated; CheckpointError on any problem)."""
    ckpt = load_checkpoint(path)
    params = FlatParams(ckpt.arch).load(ckpt.params)
    return Model(params=params, vocab=Vocab.from_tokens(ckpt.vocab), meta=ckpt.meta, path=str(path))


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
        "train": model.settings,
        "vocab": [model.vocab.display(i) for i in range(model.vocab.size)],
        "charrnn_version": meta.get("charrnn_version"),
    }
