"""The Python API: train, resume and load. The `charrnn` command is a thin face over these.

    import charrnn
    result = charrnn.train("corpus.txt", "model.npz", cell="gru", hidden=256, time=60)
    model = charrnn.load(result.best_checkpoint or result.checkpoint)
    print(model.sample("ROMEO:", length=200, temperature=0.8, seed=1))

Settings are the CLI's flags by their Python names (`--lr-schedule` is `lr_schedule`, `--time` is
`time`). Every mistake raises a charrnn.CharrnnError subclass whose message is the line the command
prints; warnings (characters a model does not know) are charrnn.CharrnnWarning through `warnings`.
"""

import warnings
from pathlib import Path

from charrnn.errors import UsageError, unknown_warning


def _paths(corpus):
    """A path, or a list of paths, as the list of str the corpus reader takes."""
    if corpus is None:
        return None
    if isinstance(corpus, (str, Path)):
        return [str(corpus)]
    try:
        paths = [str(p) if isinstance(p, (str, Path)) else None for p in corpus]
    except TypeError:
        paths = [None]
    if None in paths:
        raise UsageError(f"corpus must be a path or a list of paths (got {corpus!r})")
    return paths or None


def _read(paths, text, *, lines, encoding_errors, min_count=1, vocab=None):
    """The corpus from files (memory-mapped from the cache) or from the text itself."""
    if paths is not None and text is not None:
        raise UsageError("give a corpus (a path or a list of paths) or text=, not both")
    if text is not None:
        from charrnn.corpus import Source, load_corpus

        if not isinstance(text, str):
            raise UsageError(f"text must be a str (got {type(text).__name__})")
        source = Source("<text>", None, text.encode("utf-8", "surrogatepass"))
        return load_corpus([source], lines=lines, encoding_errors=encoding_errors, min_count=min_count, vocab=vocab)
    from charrnn.corpus_cache import load_corpus_cached

    return load_corpus_cached(paths, lines=lines, encoding_errors=encoding_errors, min_count=min_count, vocab=vocab)


def train(corpus=None, out="charrnn.npz", *, text=None, on_event=None, should_stop=None, device="auto",
          encoding_errors="strict", sample_every=0, sample_length=200, sample_prime="", log=None, log_every=10,
          **settings):  # fmt: skip
    """Train a new model on `corpus` (a path or a list of paths; "-" reads standard input) or on
    `text`, and save it to `out` (and the best-validated state to <stem>.best.npz).

    settings: the flags of `charrnn train` that charrnn.config.TrainConfig declares, by their
    Python names (cell, hidden, lr_schedule, ..., steps, epochs, time, threads; `charrnn train
    --help` lists them with their defaults). Stops after `steps`, `epochs` or `time` seconds,
    whichever comes first (none: 5 epochs).
    on_event(kind, info): progress, as charrnn.train_loop documents ("start", "step", "eval", "save").
    should_stop(): polled after every step; True stops the run and saves it (result.stopped_early).
    sample_every: report a "sample" event (info: step, text) every this many steps, `sample_length`
    characters after `sample_prime` at temperature 0.8 (0: none; None: with every validation).
    log: a JSON-lines file of the run's progress (charrnn.runlog), a line every `log_every` steps.
    Returns a charrnn.train_loop.TrainResult.
    """
    from charrnn.config import TrainConfig, from_options

    paths = _paths(corpus)
    if paths is None and text is None:
        raise UsageError("Missing argument 'corpus'.")
    cfg = TrainConfig(**from_options(settings))
    live = (sample_every, sample_length, sample_prime)
    return _run(paths, text, cfg, out, None, encoding_errors, on_event, should_stop, device, live, (log, log_every))


def resume(path, corpus=None, *, text=None, out=None, force=False, on_event=None, should_stop=None, device="auto",
           encoding_errors=None, sample_every=0, sample_length=200, sample_prime="", log=None, log_every=10,
           **settings):  # fmt: skip
    """Continue the run saved in `path` exactly where it stopped, on its own corpus by default.

    settings: as for train. Those of the model and the data (charrnn.config.FROM_CHECKPOINT), and
    encoding_errors, must equal the checkpoint's (a UsageError names the first that differs);
    steps / epochs / time are how much more (none: the rest of its original plan); threads None
    (not given) is the checkpoint's count, which keeps the result bitwise that of one
    uninterrupted run. `force=True` fine-tunes on another corpus. Writes to `path` unless `out`
    is given.
    """
    from charrnn.config import RUN_SETTINGS, TrainConfig, from_options
    from charrnn.resuming import corpus_matches, load_resume, resume_config

    given = from_options(settings)
    # This run's own settings first: their messages name the setting, as for a new run.
    TrainConfig(**{name: value for name, value in given.items() if name in RUN_SETTINGS and value is not None})
    resumed = load_resume(Path(path), force=force)
    cfg = resume_config(resumed, dict(given, encoding_errors=encoding_errors))
    paths = _paths(corpus)
    if paths is None and text is None:
        if not resumed.corpus_paths:
            raise UsageError(
                f"{path} was trained on standard input or a pipe; give its corpus: charrnn train --resume {path} CORPUS"
            )
        paths = list(resumed.corpus_paths)
    encoding_errors = encoding_errors or resumed.encoding_errors or "strict"
    live = (sample_every, sample_length, sample_prime)
    return _run(paths, text, cfg, Path(path) if out is None else out, resumed, encoding_errors, on_event,
                should_stop, device, live, (log, log_every), check=corpus_matches)  # fmt: skip


def _run(paths, text, cfg, out, resumed, encoding_errors, on_event, should_stop, device, live, log, check=None):
    from charrnn.device import resolve_device
    from charrnn.live import LiveSamples
    from charrnn.train_loop import check_writable, train as run_training

    every, length, prime = live
    live = LiveSamples(cfg.eval_every if every is None else every, length, prime)

    check_writable(out)
    device = resolve_device(device)
    vocab = None if resumed is None else resumed.vocab
    loaded = _read(paths, text, lines=cfg.lines, encoding_errors=encoding_errors, min_count=cfg.min_count, vocab=vocab)
    if resumed is not None:
        names = "<text>" if paths is None else ", ".join("<stdin>" if c == "-" else c for c in paths)
        if not check(resumed, loaded, names) and loaded.unknown:
            warnings.warn(unknown_warning(loaded.unknown, most=40), stacklevel=3)  # a corpus may hold thousands
    report = on_event or (lambda kind, info: None)
    runlog = None
    if log[0] is not None:
        from charrnn.runlog import RunLog

        runlog = RunLog(log[0], log[1], append=resumed is not None)

        def report(kind, info, user=report):
            runlog(kind, info)
            user(kind, info)

    try:
        return run_training(loaded, cfg, out, report=report, should_stop=should_stop or (lambda: False),
                            resume=resumed, device=device, live=live)  # fmt: skip
    finally:
        if runlog is not None:
            runlog.close()


def load(path):
    """The model saved in a checkpoint (charrnn.Model), validated: a CheckpointError on any problem."""
    from charrnn.model import load_model

    return load_model(path)
